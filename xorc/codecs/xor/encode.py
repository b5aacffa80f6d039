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

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.common import from_sign_magnitude, to_sign_magnitude
from xorc.codecs.raw.encode import encode as raw_encode
from xorc.codecs.raw.options import RawOptions
from xorc.codecs.xor.decode import VARIANT
from xorc.codecs.xor.mask import encode_mask
from xorc.codecs.xor.network import (
    DEFAULT_M_SEED,
    MAX_N_IN,
    network,
    network_crc32,
    xor_outputs,
)
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import encode_patches, patch_run_length
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
GRID = 48
"""Policy "importance": trade-off points evaluated per tensor (log-spaced lam)."""


@dataclass(frozen=True)
class Candidate:
    """One plane solved at one rate.

    Attributes:
        n_in: the rate (seed bits per slice).
        seeds: (n_slices,) seed words.
        err: sorted care indices of the errors (int32).
        by_imp: the errors in ascending importance (indices into `err`, int32).
        imp_sorted: their importances, ascending (float32).
        all_bits: exact patch-run bits when every error is patched.
    """

    n_in: int
    seeds: NDArray[np.uint64]
    err: NDArray[np.int32]
    by_imp: NDArray[np.int32]
    imp_sorted: NDArray[np.float32]
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
        n_out, m_seed: the network; n_slices: slices of the tensor; n_busy: slices holding a
            kept weight (only those store seeds).
        kept: positions of the kept weights (C order); codes: their sign-magnitude codes.
        candidates: per plane (sign first), the rates it may use.
        best_rate: per plane, the scan's best rate for correct-all.
        mask_coding, mask_k, mask_bits, mask_stream: the coded mask.
        cache: trade-off points computed by `finish` (filled on first use).
    """

    q: QuantTensor
    options: XorOptions
    n_out: int
    m_seed: int
    n_slices: int
    n_busy: int
    kept: NDArray[np.int64]
    codes: NDArray[np.uint16]
    candidates: list[list[Candidate]]
    best_rate: list[int]
    mask_coding: str
    mask_k: int
    mask_bits: int
    mask_stream: bytes
    cache: dict[str, list[_Option]] = field(default_factory=dict, compare=False, repr=False)


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


# --- finish: rate and patch choice for a budget --------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """One trade-off point: per plane the chosen candidate and how many of its least important
    errors stay uncorrected (before forced patches); the resulting seed + patch bits, errors
    left uncorrected (after forced patches) and errors in all."""

    choice: tuple[int, ...]
    left: tuple[int, ...]
    bits: int
    n_left: int
    n_errors: int


def _plan(solved: SolvedTensor, lam: float, cums: list[list[NDArray[np.float64]]]) -> _Option:
    """Each plane's rate and patch set minimising bits + lam * importance left (lam=inf: all)."""
    choice, left = [], []
    for cands, csums in zip(solved.candidates, cums, strict=True):
        best = (math.inf, 0, 0)
        for ci, (c, cum) in enumerate(zip(cands, csums, strict=True)):
            if math.isinf(lam) or c.err.size == 0:
                m, cost = 0, c.n_in * solved.n_busy + c.all_bits
            else:
                m = int(np.searchsorted(c.imp_sorted, c.patch_cost / lam, side="left"))
                damage = float(cum[m - 1]) if m else 0.0
                cost = c.n_in * solved.n_busy + c.patch_cost * (c.err.size - m) + lam * damage
            if cost < best[0]:
                best = (cost, ci, m)
        choice.append(best[1])
        left.append(best[2])
    return _measure(solved, tuple(choice), tuple(left))


def _left_after_forcing(
    solved: SolvedTensor, choice: tuple[int, ...], left: tuple[int, ...]
) -> tuple[list[NDArray[np.bool_]], int]:
    """Per plane, which errors of the chosen candidate stay uncorrected (a mask over its `err`),
    after patching those that would zero a kept weight's magnitude; and how many were forced."""
    bits = solved.q.bits
    flips = np.zeros(solved.kept.size, dtype=np.uint16)
    masks = []
    for i, (ci, m) in enumerate(zip(choice, left, strict=True)):
        c = solved.candidates[i][ci]
        mask = np.zeros(c.err.size, dtype=bool)
        mask[c.by_imp[:m]] = True
        masks.append(mask)
        flips[c.err[mask]] |= np.uint16(1 << (bits - 1 - i))
    mag_mask = np.uint16((1 << (bits - 1)) - 1)
    zeroed = ((solved.codes ^ flips) & mag_mask) == 0
    forced = 0
    if zeroed.any():
        for i in range(1, bits):
            c = solved.candidates[i][choice[i]]
            hit = masks[i] & zeroed[c.err]
            forced += int(hit.sum())
            masks[i] &= ~hit
    return masks, forced


def _patches(
    solved: SolvedTensor, choice: tuple[int, ...], masks: list[NDArray[np.bool_]]
) -> list[NDArray[np.int64]]:
    """Per plane, the sorted positions to patch: the errors not left uncorrected."""
    return [solved.kept[solved.candidates[i][ci].err[~masks[i]]] for i, ci in enumerate(choice)]


def _measure(solved: SolvedTensor, choice: tuple[int, ...], left: tuple[int, ...]) -> _Option:
    """Exact seed + patch bits and uncorrected errors of a plan (forced patches included)."""
    if not any(left):
        masks = [np.zeros(solved.candidates[i][ci].err.size, bool) for i, ci in enumerate(choice)]
    else:
        masks, _ = _left_after_forcing(solved, choice, left)
    seed_bits = sum(solved.candidates[i][ci].n_in for i, ci in enumerate(choice)) * solved.n_busy
    patch_bits = sum(patch_run_length(p)[1] for p in _patches(solved, choice, masks))
    total = sum(solved.candidates[i][ci].err.size for i, ci in enumerate(choice))
    n_left = sum(int(m.sum()) for m in masks)
    return _Option(choice, left, seed_bits + patch_bits, n_left, total)


def _options(solved: SolvedTensor) -> list[_Option]:
    """The trade-off points of a tensor: lam = inf (correct all) and GRID log-spaced lams.

    `finish` picks the smallest among those within the budget, so the blob size can only
    shrink as the budget grows. Cached on the SolvedTensor.
    """
    if "options" in solved.cache:
        return solved.cache["options"]
    cums = [
        [np.cumsum(c.imp_sorted, dtype=np.float64) for c in cands] for cands in solved.candidates
    ]
    options = [_plan(solved, math.inf, cums)]
    imps = [c.imp_sorted for cands in solved.candidates for c in cands if c.err.size]
    positive = np.concatenate([i[i > 0] for i in imps]) if imps else np.zeros(0)
    if solved.options.patch_policy == "importance" and positive.size:
        costs = [c.patch_cost for cands in solved.candidates for c in cands if c.err.size]
        lo = math.log(min(costs) / float(positive.max())) - 1.0
        hi = math.log(max(costs) / float(positive.min())) + 1.0
        options += [_plan(solved, math.exp(float(x)), cums) for x in np.linspace(lo, hi, GRID)]
    solved.cache["options"] = options
    return options


def _seeds_stream(seeds: list[NDArray[np.uint64]], n_in: list[int], n_slices: int) -> bytes:
    """Slice-interleaved seed fields of the given (busy) slices (docs/codecs/xor.md §4)."""
    per_slice = sum(n_in)
    out = np.zeros((n_slices, per_slice), dtype=np.uint8)
    start = 0
    for s, width in zip(seeds, n_in, strict=True):
        if width:
            out[:, start : start + width] = bitio.fields_to_bits(s, width).reshape(n_slices, width)
        start += width
    return bitio.pack_bits(out)


def finish(
    solved: SolvedTensor, error_budget: float | None = None, fallback: bool = True
) -> Encoded:
    """Build the `Encoded` for an error budget (module docstring); no elimination is re-run."""
    q = solved.q
    options = _options(solved)
    best = options[0]
    if error_budget is not None and error_budget > 0:
        allowed = error_budget * options[0].n_errors
        best = min((o for o in options if o.n_left <= allowed), key=lambda o: (o.bits, o.n_left))
    chosen = [solved.candidates[i][ci] for i, ci in enumerate(best.choice)]
    k = solved.kept.size
    masks, forced = _left_after_forcing(solved, best.choice, best.left)
    flips = np.zeros(k, dtype=np.uint16)
    left_idx = [c.err[m] for c, m in zip(chosen, masks, strict=True)]
    for i, idx in enumerate(left_idx):
        flips[idx] |= np.uint16(1 << (q.bits - 1 - i))
    patch_stream, counts, ks, lengths = encode_patches(_patches(solved, best.choice, masks))
    n_in = [c.n_in for c in chosen]
    busy = np.unique(solved.kept // solved.n_out)
    seeds_stream = _seeds_stream([c.seeds[busy] for c in chosen], n_in, busy.size)
    rows = network(solved.m_seed, solved.n_out)
    params = {
        "variant": VARIANT,
        "n_out": solved.n_out,
        "m_seed": solved.m_seed,
        "m_crc32": network_crc32(rows),
        "n_in": n_in,
        "n_kept": int(k),
        "mask_coding": solved.mask_coding,
        "mask_k": solved.mask_k,
        "mask_bits": solved.mask_bits,
        "patches": counts,
        "patch_k": ks,
        "patch_bits": lengths,
    }
    streams = {"mask": solved.mask_stream, "seeds": seeds_stream, "patches": patch_stream}
    decoded = np.zeros(q.values.size, dtype=np.int16)
    decoded[solved.kept] = from_sign_magnitude(solved.codes ^ flips, q.bits)
    decoded = decoded.reshape(q.values.shape)
    n = max(q.values.size, 1)
    plane_bits = [r * solved.n_busy for r in n_in]
    stats = {
        "policy": solved.options.patch_policy,
        "restarts": max(1, int(solved.options.effort)),
        "n_out": solved.n_out,
        "n_in": n_in,
        "planes": q.bits,
        "plane_bits": plane_bits,
        "patch_bits": lengths,
        "mask_bits": solved.mask_bits,
        "mask_coding": solved.mask_coding,
        "patches": counts,
        "errors": [int(c.err.size) for c in chosen],
        "errors_left": [int(x.size) for x in left_idx],
        "errors_if_all": options[0].n_errors,
        "forced": forced,
        "bits_per_weight": {
            "total": round((sum(plane_bits) + sum(lengths) + solved.mask_bits) / n, 5),
            "planes": round(sum(plane_bits) / n, 5),
            "patches": round(sum(lengths) / n, 5),
            "mask": round(solved.mask_bits / n, 5),
        },
        "fallback": None,
    }
    encoded = Encoded(CodecId.XOR, params, streams, decoded, stats)
    if not fallback:
        return encoded
    raw = raw_encode(q, RawOptions())
    xor_bytes = sum(len(s) for s in streams.values())
    raw_bytes = sum(len(s) for s in raw.streams.values())
    if raw_bytes <= xor_bytes:
        why = f"raw: xor needs {xor_bytes} bytes, raw {raw_bytes}"
        stats = {**raw.stats, "fallback": why}
        return Encoded(raw.codec, raw.params, raw.streams, raw.decoded, stats)
    return encoded


def encode(q: QuantTensor, options: XorOptions) -> Encoded:
    """Encode one tensor with codec `xor` (or `raw` when that is not larger)."""
    budget = options.error_budget if options.patch_policy == "importance" else None
    return finish(solve_tensor(q, options), budget)
