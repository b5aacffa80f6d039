"""Encoder of codec `xor` (docs/codecs/xor.md §9).

API:

* ``encode(q, options) -> Encoded`` - the codec interface. Policy "all" patches every error;
  policy "importance" leaves `options.error_budget` (a fraction of the errors, None = 0) uncorrected.
* ``solve_tensor(q, options) -> SolvedTensor`` - everything expensive: rate scan, Gauss-Jordan
  elimination with restarts, the error sets of every candidate rate. Depends on `q`,
  `options.seed`, `options.effort` and `options.patch_policy` (not on the budget).
* ``finish(solved, error_budget=None, fallback=True) -> Encoded`` - cheap (no elimination):
  picks each plane's rate and which errors to patch for that budget, builds the streams, and falls
  back to codec `raw` when that is not larger (unless `fallback` is False). An accuracy search
  calls `solve_tensor` once per tensor and `finish` once per budget it tries;
  ``encode(q, o) == finish(solve_tensor(q, o), budget)``.

Budget semantics (policy "importance"): an error's importance is
``importance(w) * |change of w in levels|``. For a trade-off lam >= 0 each plane takes the rate
and patch set minimising ``seed bits + patch bits + lam * importance left uncorrected``; `finish`
uses the smallest lam (smallest blob) whose uncorrected errors are at most `error_budget` of all
errors at the chosen rates. Errors that would make a kept weight's magnitude 0 are always patched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.common import from_sign_magnitude, to_sign_magnitude
from xorc.codecs.raw.encode import encode as raw_encode
from xorc.codecs.xor.decode import VARIANT
from xorc.codecs.xor.mask import encode_mask
from xorc.codecs.xor.network import (
    DEFAULT_M_SEED,
    MAX_N_IN,
    network,
    network_crc32,
    xor_outputs,
)
from xorc.codecs.xor.patches import encode_patches, patch_run_length
from xorc.codecs.xor.solve import solve_group
from xorc.tensor import Encoded, EncodeOptions, QuantTensor

N_OUT_CHOICES = (64, 128, 256, 512, 1024)
MAX_MEAN_CARE = 52
"""Largest mean care count per slice for which an `n_out` is considered."""
SAMPLE_BLOCK = 1024
SAMPLE_BLOCKS = 128
"""The rate scan runs on at most this many evenly spaced blocks of SAMPLE_BLOCK weights."""
NEAR = 2
"""The full solve evaluates the scan's best rate +- NEAR exactly."""
LOW_RATES = (7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0)
"""Reduced rates (fractions of the best correct-all rate) offered to policy "importance"."""
POLICIES = ("all", "importance")


@dataclass(frozen=True)
class Candidate:
    """One plane solved at one rate.

    Attributes:
        n_in: the rate (seed bits per slice).
        seeds: (n_slices,) seed words.
        err: sorted care indices of the errors.
        imp: importance of each error (aligned with `err`).
        by_imp: argsort of `imp` (ascending).
        imp_sorted: `imp[by_imp]`; imp_cumsum: its running sum.
        all_bits: exact patch-run bits when every error is patched.
    """

    n_in: int
    seeds: NDArray[np.uint64]
    err: NDArray[np.int64]
    imp: NDArray[np.float64]
    by_imp: NDArray[np.int64]
    imp_sorted: NDArray[np.float64]
    imp_cumsum: NDArray[np.float64]
    all_bits: int

    @property
    def patch_cost(self) -> float:
        """Bits per patch when all are patched."""
        return self.all_bits / self.err.size if self.err.size else 0.0


@dataclass(frozen=True)
class SolvedTensor:
    """The expensive part of encoding one tensor; `finish` turns it into an `Encoded`.

    Attributes:
        q: the input tensor; options: the options it was solved with.
        n_out, m_seed: the network; n_slices: slices of the tensor.
        kept: positions of the kept weights (C order); codes: their sign-magnitude codes.
        candidates: per plane (sign first), the rates it may use.
        best_rate: per plane, the scan's best rate for correct-all.
        mask_coding, mask_k, mask_bits, mask_stream: the coded mask.
    """

    q: QuantTensor
    options: EncodeOptions
    n_out: int
    m_seed: int
    n_slices: int
    kept: NDArray[np.int64]
    codes: NDArray[np.uint16]
    candidates: list[list[Candidate]]
    best_rate: list[int]
    mask_coding: str
    mask_k: int
    mask_bits: int
    mask_stream: bytes


def _patch_estimate(errors: NDArray[np.float64], care: int) -> NDArray[np.float64]:
    """Expected Rice-coded bits of `errors` patches spread at random over `care` indices."""
    e = np.minimum(np.maximum(errors, 0.0), float(max(care, 1)))
    p = np.where(e > 0, e / max(care, 1), 1.0)
    best = np.full(e.shape, np.inf)
    for k in range(24):
        qk = (1.0 - p) ** (2.0**k)
        best = np.minimum(best, e * (k + 1) + e * qk / np.maximum(1.0 - qk, 1e-300))
    return np.where(e > 0, best, 0.0)


def _plane_targets(codes: NDArray[np.uint16], bits: int, planes: list[int]) -> NDArray[np.uint8]:
    """Target bits of the given planes: bit j = plane planes[j] (code bit bits-1-plane)."""
    out = np.zeros(codes.size, dtype=np.uint8)
    for j, i in enumerate(planes):
        out |= (((codes >> np.uint16(bits - 1 - i)) & np.uint16(1)).astype(np.uint8)) << np.uint8(j)
    return out


@dataclass(frozen=True)
class _Group:
    """Planes solved in one elimination, with their pivot-order base and error weights."""

    planes: list[int]
    base: NDArray[np.float64] | None
    weights: NDArray[np.float32]


def _groups(q: QuantTensor, kept: NDArray[np.int64], policy: str) -> list[_Group]:
    imp = (
        np.ones(kept.size, dtype=np.float64)
        if q.importance is None
        else np.asarray(q.importance, dtype=np.float64).ravel()[kept]
    )
    if policy == "all":
        return [_Group(list(range(q.bits)), None, np.ones(kept.size, dtype=np.float32))]
    mag = np.abs(q.values.ravel()[kept].astype(np.float64))
    sign_imp = imp * 2.0 * mag
    return [
        _Group([0], sign_imp, sign_imp.astype(np.float32)),
        _Group(list(range(1, q.bits)), imp, imp.astype(np.float32)),
    ]


def _keys(
    base: NDArray[np.float64] | None, size: int, restarts: int, rng: np.random.Generator
) -> list[NDArray[np.float64]]:
    """One pivot-order key array per restart (ascending key = pivot first)."""
    keys = []
    for r in range(restarts):
        noise = rng.random(size)
        if base is None:
            keys.append(noise)
        elif r == 0:
            keys.append(-base)
        else:
            keys.append(-(np.log2(np.maximum(base, 1e-300)) + noise))
    return keys


def _error_importance(q: QuantTensor, kept: NDArray[np.int64]) -> NDArray[np.float64]:
    """(planes, K): the importance of an error in each plane of each kept weight."""
    imp = (
        np.ones(kept.size, dtype=np.float64)
        if q.importance is None
        else np.asarray(q.importance, dtype=np.float64).ravel()[kept]
    )
    mag = np.abs(q.values.ravel()[kept].astype(np.float64))
    out = np.empty((q.bits, kept.size), dtype=np.float64)
    out[0] = imp * 2.0 * mag
    for i in range(1, q.bits):
        out[i] = imp * float(2 ** (q.bits - 1 - i))
    return out


def _n_out_choices(n: int, n_kept: int) -> list[int]:
    cap = max(64, 1 << max(0, (n - 1).bit_length()))
    allowed = [c for c in N_OUT_CHOICES if c <= cap]
    density = n_kept / n if n else 0.0
    fit = [c for c in allowed if density * c <= MAX_MEAN_CARE]
    return fit[-2:] if fit else [allowed[0]]


def _scan(
    q: QuantTensor,
    kept: NDArray[np.int64],
    codes: NDArray[np.uint16],
    groups: list[_Group],
    n_out: int,
    restarts: int,
    rng: np.random.Generator,
) -> tuple[float, list[int]]:
    """Estimated bits (seeds + patches) and the best correct-all rate per plane for `n_out`."""
    n = q.values.size
    n_blocks = -(-n // SAMPLE_BLOCK)
    if n_blocks <= SAMPLE_BLOCKS:
        pick = np.arange(n_blocks)
    else:
        pick = (np.arange(SAMPLE_BLOCKS) * n_blocks) // SAMPLE_BLOCKS
    block_rank = np.full(n_blocks, -1, dtype=np.int64)
    block_rank[pick] = np.arange(pick.size)
    rank = block_rank[kept // SAMPLE_BLOCK]
    sel = np.flatnonzero(rank >= 0)
    pos = rank[sel] * SAMPLE_BLOCK + kept[sel] % SAMPLE_BLOCK
    n_slices = -(-n // n_out)
    s_slices = pick.size * (SAMPLE_BLOCK // n_out)
    slice_of = pos // n_out
    rows = network(DEFAULT_M_SEED, n_out)
    words = rows[pos % n_out]
    counts = np.bincount(slice_of, minlength=s_slices)
    n_hi = int(min(MAX_N_IN, counts.max() if counts.size else 0))
    rates = list(range(n_hi + 1))
    scale = kept.size / max(sel.size, 1)
    total = 0.0
    best = [0] * q.bits
    for g in groups:
        targets = _plane_targets(codes[sel], q.bits, g.planes)
        sol = solve_group(
            slice_of,
            words,
            targets,
            g.weights[sel],
            _keys(g.base if g.base is None else g.base[sel], sel.size, restarts, rng),
            s_slices,
            len(g.planes),
            rates,
        )
        errs = np.stack([sol.errors[r] for r in rates]).astype(np.float64) * scale  # (rates, P)
        cost = np.asarray(rates, dtype=np.float64)[:, None] * n_slices + _patch_estimate(
            errs, kept.size
        )
        for j, i in enumerate(g.planes):
            best[i] = rates[int(cost[:, j].argmin())]
            total += float(cost[:, j].min())
    return total, best
