"""Encoder of codec `xor` (docs/codecs/xor.md §9).

API:

* ``encode(q, options) -> Encoded`` - the codec interface. Policy "all" patches every error;
  policy "importance" leaves errors uncorrected within `options.error_budget` (below; None = 0).
* ``solve_tensor(q, options) -> SolvedTensor`` - everything expensive: rate scan, Gauss-Jordan
  elimination with restarts, the error sets of every candidate rate. Depends on `q`,
  `options.seed`, `options.effort` and `options.patch_policy` (not on the budget).
* ``finish(solved, error_budget=None, fallback=True) -> Encoded`` - cheap (no elimination):
  picks each plane's rate and which errors to patch for that budget, builds the streams, and falls
  back to codec `raw` when that is not larger (unless `fallback` is False). The trade-off points
  are computed on the first call and cached in `solved`, so later calls cost about one stream
  build. An accuracy search calls `solve_tensor` once per tensor and `finish` once per budget;
  ``encode(q, o) == finish(solve_tensor(q, o), budget)``.

Budget semantics (policy "importance"): an error's importance is
``importance(w) * |change of w in levels|``. For a trade-off lam each plane takes the rate
(among its candidates) and patch set minimising ``seed bits + patch bits + lam * importance left
uncorrected``; GRID log-spaced lams give GRID trade-off points, plus lam = inf (correct all).
``finish(solved, f)`` takes the smallest of them that leaves at most ``f * E`` errors
uncorrected, E being the number of errors the correct-all encoding patches (stats
"errors_if_all"). f may exceed 1: lower rates create more errors than correct-all has. The blob
can only shrink as f grows. Errors that would make a kept weight's magnitude 0 are always
patched. Budgets need ``patch_policy="importance"`` at solve time; a tensor solved for "all"
has only the correct-all point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.xor.finish import Candidate, SolvedTensor, finish
from xorc.codecs.xor.mask import encode_mask
from xorc.codecs.xor.network import (
    DEFAULT_M_SEED,
    MAX_N_IN,
    network,
    xor_outputs,
)
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import patch_run_length
from xorc.codecs.xor.solve import solve_group
from xorc.tensor import Encoded, QuantTensor

N_OUT_CHOICES = (64, 128, 256, 512, 1024)
MAX_MEAN_CARE = 52
"""Largest mean care count per slice for which an `n_out` is considered."""
SAMPLE_BLOCK = 1024
SAMPLE_BLOCKS = 128
"""The rate scan runs on at most this many evenly spaced blocks of SAMPLE_BLOCK weights."""
SCAN_FROM = 0.75
"""The scan tries rate 0 and the rates from SCAN_FROM x the mean care count per slice up."""
NEAR = 2
"""The full solve evaluates the scan's best rate +- NEAR exactly."""
LOW_RATES = (7 / 8, 3 / 4, 5 / 8, 1 / 2, 1 / 4, 0.0)
"""Reduced rates (fractions of the best correct-all rate) offered to policy "importance"."""


def _patch_estimate(errors: NDArray[np.float64], span: int) -> NDArray[np.float64]:
    """Expected Rice-coded bits of `errors` patches spread at random over `span` positions."""
    e = np.minimum(np.maximum(errors, 0.0), float(max(span, 1)))
    p = np.where(e > 0, e / max(span, 1), 1.0)
    best = np.full(e.shape, np.inf)
    for k in range(24):
        qk = (1.0 - p) ** (2.0**k)
        best = np.minimum(best, e * (k + 1) + e * qk / np.maximum(1.0 - qk, 1e-300))
    return np.where(e > 0, best, 0.0)  # type: ignore[no-any-return]


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


def _plane_importance(
    q: QuantTensor, kept: NDArray[np.int64], plane: int, at: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Row `plane` of `_error_importance(q, kept)` at the care indices `at` (the same values,
    computed for those weights only)."""
    pos = kept[at]
    imp = (
        np.ones(pos.size, dtype=np.float64)
        if q.importance is None
        else np.asarray(q.importance, dtype=np.float64).ravel()[pos]
    )
    if plane == 0:
        return imp * 2.0 * np.abs(q.values.ravel()[pos].astype(np.float64))  # type: ignore[no-any-return]
    return imp * float(2 ** (q.bits - 1 - plane))  # type: ignore[no-any-return]


def _n_out_choices(n: int, kept: NDArray[np.int64]) -> list[int]:
    """Slice lengths worth scanning: the three largest (not above n rounded up to a power of
    two) whose mean care count per busy slice is <= MAX_MEAN_CARE; else the smallest."""
    cap = max(64, 1 << max(0, (n - 1).bit_length()))
    allowed = [c for c in N_OUT_CHOICES if c <= cap]
    fit = [c for c in allowed if kept.size <= MAX_MEAN_CARE * np.unique(kept // c).size]
    return fit[-3:] if fit else [allowed[0]]


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
    n_busy = int(np.unique(kept // n_out).size)
    s_slices = pick.size * (SAMPLE_BLOCK // n_out)
    slice_of = pos // n_out
    rows = network(DEFAULT_M_SEED, n_out)
    words = rows[pos % n_out]
    counts = np.bincount(slice_of, minlength=s_slices)
    n_hi = int(min(MAX_N_IN, counts.max() if counts.size else 0))
    n_lo = max(1, int(SCAN_FROM * sel.size / max(s_slices, 1)))
    rates = [0, *range(min(n_lo, n_hi), n_hi + 1)]
    scale = kept.size / max(sel.size, 1)
    total = 0.0
    best = [0] * q.bits
    for g in groups:
        sol = solve_group(
            slice_of,
            words,
            _plane_targets(codes[sel], q.bits, g.planes),
            _keys(None if g.base is None else g.base[sel], sel.size, restarts, rng),
            s_slices,
            len(g.planes),
            rates,
            with_seeds=False,
        )
        errs = np.stack([sol.errors[r] for r in rates]).astype(np.float64) * scale  # (rates, P)
        cost = np.asarray(rates, dtype=np.float64)[:, None] * n_busy + _patch_estimate(errs, n)
        for j, i in enumerate(g.planes):
            best[i] = rates[int(cost[:, j].argmin())]
            total += float(cost[:, j].min())
    return total, best


def _candidate(
    kept: NDArray[np.int64],
    n_in: int,
    seeds: NDArray[np.uint64],
    truth: NDArray[np.uint8],
    slice_of: NDArray[np.int64],
    row_words: NDArray[np.uint64],
    importance: NDArray[np.float64],
) -> Candidate:
    """Decode one plane at one rate and record its errors."""
    got = xor_outputs(seeds[slice_of], row_words)
    err = np.flatnonzero(got != truth)
    imp = importance[err].astype(np.float32)
    by_imp = np.argsort(imp, kind="stable").astype(np.int32)
    _, bits = patch_run_length(kept[err])
    return Candidate(n_in, seeds, err.astype(np.int32), by_imp, imp[by_imp], bits)


def _rates_to_try(best: int, policy: str) -> list[int]:
    near = {r for r in range(best - NEAR, best + NEAR + 1) if 0 <= r <= MAX_N_IN}
    if policy == "importance":
        near |= {round(best * f) for f in LOW_RATES}
    return sorted(near)


def solve_tensor(q: QuantTensor, options: XorOptions) -> SolvedTensor:
    """Run the expensive part of the encoder (module docstring): rates, eliminations, errors."""
    if options.variant == 2:
        from xorc.codecs.xor.seqencode import solve_tensor_seq  # it imports this module

        return solve_tensor_seq(q, options)
    if options.variant == 3:
        from xorc.codecs.xor.adaptencode import solve_tensor_adapt  # it imports this module

        return solve_tensor_adapt(q, options)
    restarts = max(1, int(options.effort))
    rng = np.random.default_rng(options.seed)
    flat = q.values.ravel()
    n = flat.size
    kept = np.flatnonzero(flat != 0).astype(np.int64)
    codes = to_sign_magnitude(flat[kept], q.bits)
    groups = _groups(q, kept, options.patch_policy)
    choices = _n_out_choices(n, kept)
    if kept.size == 0:
        n_out, best = choices[-1], [0] * q.bits
    else:
        scans = [(*_scan(q, kept, codes, groups, c, restarts, rng), c) for c in choices]
        _, best, n_out = min(scans, key=lambda s: (s[0], -s[2]))
    n_slices = -(-n // n_out)
    rows = network(DEFAULT_M_SEED, n_out)
    slice_of = kept // n_out
    row_words = rows[kept % n_out]
    importance = _error_importance(q, kept)
    candidates: list[list[Candidate]] = [[] for _ in range(q.bits)]
    for g in groups:
        tries = {i: _rates_to_try(best[i], options.patch_policy) for i in g.planes}
        rates = sorted(set().union(*tries.values()))
        by_weight = {r: np.array([abs(r - best[i]) > NEAR for i in g.planes]) for r in rates}
        if kept.size:
            importance_policy = options.patch_policy == "importance"
            sol = solve_group(
                slice_of,
                row_words,
                _plane_targets(codes, q.bits, g.planes),
                _keys(g.base, kept.size, restarts, rng),
                n_slices,
                len(g.planes),
                rates,
                weights=g.weights if importance_policy and restarts > 1 else None,
                by_weight=by_weight if importance_policy and restarts > 1 else None,
            )
            seeds_at = sol.seeds
        else:
            seeds_at = {r: np.zeros((n_slices, len(g.planes)), dtype=np.uint64) for r in rates}
        for j, i in enumerate(g.planes):
            truth = ((codes >> np.uint16(q.bits - 1 - i)) & np.uint16(1)).astype(np.uint8)
            for r in tries[i]:
                seeds = np.ascontiguousarray(seeds_at[r][:, j])
                candidates[i].append(
                    _candidate(kept, r, seeds, truth, slice_of, row_words, importance[i])
                )
    coding, mask_k, mask_bits, mask_stream = encode_mask(flat != 0)
    return SolvedTensor(
        q, options, n_out, DEFAULT_M_SEED, n_slices, int(np.unique(slice_of).size), kept, codes,
        candidates, best,
        coding, mask_k, mask_bits, mask_stream,
    )  # fmt: skip


def encode(q: QuantTensor, options: XorOptions) -> Encoded:
    """Encode one tensor with codec `xor` (or `raw` when that is not larger)."""
    budget = options.error_budget if options.patch_policy == "importance" else None
    return finish(solve_tensor(q, options), budget)


def encoder_at(
    quantized: list[QuantTensor], options: list[XorOptions], fixed: list[Encoded | None]
) -> Callable[[float], list[Encoded]]:
    """A search's trial function over the error budget f (policy importance, xorc/policies.py):
    each tensor not `fixed` is solved once here, and every trial only finishes it."""
    work: list[SolvedTensor | Encoded] = [
        solve_tensor(q, o) if f is None else f
        for q, o, f in zip(quantized, options, fixed, strict=True)
    ]

    def encode_at(budget: float) -> list[Encoded]:
        return [finish(w, budget) if isinstance(w, SolvedTensor) else w for w in work]

    return encode_at
