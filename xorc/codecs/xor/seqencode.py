"""Encoder of codec `xor`, variant 2 (sequential, docs/codecs/xor.md §11.4): the expensive part,
from a tensor to a `SolvedTensor` that `finish` turns into streams exactly as for variant 1.

Per tensor: the rate scan (a sample of register streams, every candidate `n_out` and rate as
lanes of one solve), each plane's mode (seeds, rate 0 with its ones patched, or rate 0 inverted
with its zeros patched), then one full solve per plane group over every register stream, with
the distinct chosen rates (and, for policy importance, the reduced rates) as lanes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.xor.decode import busy_ids, busy_slices, seed_windows
from xorc.codecs.xor.encode import (
    LOW_RATES,
    _groups,
    _keys,
    _patch_estimate,
    _plane_importance,
    _plane_targets,
)
from xorc.codecs.xor.finish import Candidate, SolvedTensor
from xorc.codecs.xor.mask import encode_mask
from xorc.codecs.xor.network import DEFAULT_M_SEED, MAX_N_IN, network, xor_outputs
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import patch_run_length
from xorc.codecs.xor.schema import VARIANT_SEQ
from xorc.codecs.xor.seqsolve import Lanes, low_mask, solve_lanes
from xorc.codecs.xor.solve import _ranks
from xorc.tensor import QuantTensor

N_OUT_STEP = 8
"""Slice lengths are multiples of 8 (whole bytes of a plane per slice)."""
MAX_N_OUT_ENC = 1024
CARE_TARGETS = (15.6, 20.5, 31.2)
"""The scan tries the `n_out` whose mean care count is about each: rates 13, 16, 21 and 32
with 4, 4, 3 and 2 stages fill 52, 64, 63 and 64 of the network's 64 columns."""
SCAN_RATES = (0.94, 0.98, 1.02, 1.05, 1.08)
"""Scanned rates, as fractions of the mean care count per busy slice."""
SCAN_STREAMS = 4
SCAN_LEN = 256
"""The scan solves at most SCAN_STREAMS evenly spaced streams of SCAN_LEN busy slices."""
NEAR = 0
"""The full solve also tries the scan's best rate +- NEAR; `finish` picks on exact bits."""
MIN_STREAM = 1024
STREAM_LANES = 16
"""Stream length T = min(B, max(MIN_STREAM, ceil(B / STREAM_LANES))) busy slices."""


def stream_length(n_busy: int) -> int:
    """Busy slices per register stream (docs/codecs/xor.md §11.4)."""
    return max(1, min(n_busy, max(MIN_STREAM, -(-n_busy // STREAM_LANES))))


def stages_for(n_in: int) -> int:
    """The widest register the 64-column network allows at this rate."""
    return max(1, MAX_N_IN // n_in) if n_in else 1


@dataclass(frozen=True)
class _Rows:
    """The care rows of one slicing: busy index, M word and target bits of each kept weight."""

    busy: NDArray[np.int64]
    words: NDArray[np.uint64]
    targets: NDArray[np.uint8]
    n_busy: int


def _rows(kept: NDArray[np.int64], n_out: int, targets: NDArray[np.uint8]) -> _Rows:
    n_busy, index = busy_slices(kept, n_out)
    words = network(DEFAULT_M_SEED, n_out)[kept % n_out]
    return _Rows(index.astype(np.int64), words, targets, n_busy)


def _lanes(
    rows: _Rows, ranks: Sequence[NDArray[np.int64]], rates: Sequence[int], length: int
) -> tuple[Lanes, int]:
    """Lanes (rate, restart, stream) of every stream of `length` busy slices; and the stream
    count S. Lane (c, r, s) is index (c * R + r) * S + s."""
    n_streams = -(-rows.n_busy // length) if rows.n_busy else 0
    counts = np.bincount(rows.busy, minlength=n_streams * length).reshape(n_streams, length)
    k = int(counts.max()) if counts.size else 0
    n_r = len(ranks)
    n_lanes = len(rates) * n_r * n_streams
    coef = np.zeros((n_lanes, length, max(k, 1)), dtype=np.uint64)
    rhs = np.zeros((n_lanes, length, max(k, 1)), dtype=np.uint8)
    s_of, t_of = rows.busy // length, rows.busy % length
    for c, rate in enumerate(rates):
        word = rows.words & low_mask(np.array(rate * stages_for(rate)))
        for r, rank in enumerate(ranks):
            lane = (c * n_r + r) * n_streams + s_of
            coef[lane, t_of, rank] = word
            rhs[lane, t_of, rank] = rows.targets
    all_counts = np.tile(counts, (len(rates) * n_r, 1))
    n_in = np.repeat(np.asarray(rates, dtype=np.int64), n_r * n_streams)
    stages = np.array([stages_for(int(r)) for r in n_in], dtype=np.int64)
    return Lanes(coef, rhs, all_counts, n_in, stages), n_streams


def _solve(
    rows: _Rows,
    ranks: Sequence[NDArray[np.int64]],
    rates: Sequence[int],
    length: int,
    n_planes: int,
) -> tuple[dict[int, NDArray[np.uint64]], dict[int, NDArray[np.int64]]]:
    """Per rate: the seeds of every busy slice (B, P), best restart per stream and plane, and
    the errors per stream (S, P)."""
    lanes, n_streams = _lanes(rows, ranks, rates, length)
    seeds, errors = solve_lanes(lanes, n_planes)
    return best_per_stream(seeds, errors, rates, len(ranks), n_streams, rows.n_busy)


def best_per_stream(
    seeds: NDArray[np.uint64],
    errors: NDArray[np.int64],
    rates: Sequence[int],
    n_r: int,
    n_streams: int,
    n_busy: int,
) -> tuple[dict[int, NDArray[np.uint64]], dict[int, NDArray[np.int64]]]:
    """From lanes (rate, restart, stream) = index (c * R + r) * S + s of seeds (L, T, P) and
    errors (L, P): per rate the seeds (B, P) of the restart with the fewest errors per stream
    and plane, and those errors (S, P)."""
    length, n_planes = seeds.shape[1], seeds.shape[2]
    out_seeds, out_err = {}, {}
    for c, rate in enumerate(rates):
        at = slice(c * n_r * n_streams, (c + 1) * n_r * n_streams)
        err = errors[at].reshape(n_r, n_streams, n_planes)
        best = err.argmin(axis=0)  # (S, P)
        sd = seeds[at].reshape(n_r, n_streams, length, n_planes)
        pick = np.take_along_axis(sd, best[None, :, None, :], axis=0)[0]
        out_seeds[rate] = pick.reshape(n_streams * length, n_planes)[:n_busy]
        out_err[rate] = np.take_along_axis(err, best[None], axis=0)[0]
    return out_seeds, out_err


def _n_out_choices(n: int, kept: NDArray[np.int64]) -> list[int]:
    """Multiples of N_OUT_STEP whose mean care count per busy slice is nearest each of
    CARE_TARGETS (windows of almost 64 bits), not above the tensor size rounded up."""
    cap = max(N_OUT_STEP, -(-n // N_OUT_STEP) * N_OUT_STEP)
    density = max(kept.size, 1) / max(n, 1)
    picks = set()
    for target in CARE_TARGETS:
        guess = round(target / density / N_OUT_STEP) * N_OUT_STEP
        picks.add(int(min(cap, MAX_N_OUT_ENC, max(N_OUT_STEP, guess))))
    return sorted(picks)


def _sample(rows: _Rows) -> _Rows:
    """At most SCAN_STREAMS evenly spaced runs of SCAN_LEN busy slices, renumbered."""
    n_runs = -(-rows.n_busy // SCAN_LEN)
    if n_runs <= SCAN_STREAMS:
        return rows
    pick = (np.arange(SCAN_STREAMS) * n_runs) // SCAN_STREAMS
    run_rank = np.full(n_runs, -1, dtype=np.int64)
    run_rank[pick] = np.arange(pick.size)
    rank = run_rank[rows.busy // SCAN_LEN]
    sel = np.flatnonzero(rank >= 0)
    busy = rank[sel] * SCAN_LEN + rows.busy[sel] % SCAN_LEN
    return _Rows(busy, rows.words[sel], rows.targets[sel], int(pick.size) * SCAN_LEN)


def _rate_zero_costs(codes: NDArray[np.uint16], bits: int, n: int) -> NDArray[np.float64]:
    """(planes, 2): estimated patch bits of rate 0 plain (ones) and inverted (zeros)."""
    out = np.zeros((bits, 2))
    for i in range(bits):
        ones = float(((codes >> np.uint16(bits - 1 - i)) & np.uint16(1)).sum())
        out[i] = _patch_estimate(np.array([ones, codes.size - ones]), n)
    return out


def _scan(
    kept: NDArray[np.int64], codes: NDArray[np.uint16], bits: int, n: int, n_out: int
) -> tuple[float, list[int]]:
    """Estimated bits and best rate per plane (0: a rate-0 mode) for `n_out`, policy all."""
    rows = _rows(kept, n_out, _plane_targets(codes, bits, list(range(bits))))
    sample = _sample(rows)
    mean = kept.size / max(rows.n_busy, 1)
    rates = sorted({min(MAX_N_IN, max(1, round(mean * f))) for f in SCAN_RATES})
    scale = rows.n_busy / max(sample.n_busy, 1)
    rank = _ranks(sample.busy, np.bincount(sample.busy), np.arange(sample.busy.size))
    length = min(SCAN_LEN, sample.n_busy)
    _, err = _solve(sample, [rank], rates, length, bits)
    cost = np.stack(
        [r * rows.n_busy + _patch_estimate(err[r].sum(axis=0) * scale, n) for r in rates]
    )  # (rates, P)
    zero = _rate_zero_costs(codes, bits, n).min(axis=1)
    best, total = [], 0.0
    for i in range(bits):
        j = int(cost[:, i].argmin())
        seeded = float(cost[j, i]) < zero[i]
        best.append(rates[j] if seeded else 0)
        total += min(float(cost[j, i]), float(zero[i]))
    return total, best


def _rates_for(best: list[int], planes: list[int], policy: str) -> dict[int, list[int]]:
    out = {}
    for i in planes:
        r = {x for x in range(best[i] - NEAR, best[i] + NEAR + 1) if 1 <= x <= MAX_N_IN}
        r = r if best[i] else set()
        if policy == "importance" and best[i]:
            r |= {max(1, round(best[i] * f)) for f in LOW_RATES if f > 0}
        out[i] = sorted(r)
    return out


def _candidate(
    q: QuantTensor,
    sl: Slicing,
    n_in: int,
    seeds: NDArray[np.uint64],
    truth: NDArray[np.uint8],
    plane: int,
    invert: int = 0,
) -> Candidate:
    """Decode one plane at one rate (seeds per busy slice) and record its errors."""
    stages = stages_for(n_in)
    if n_in:
        win = seed_windows(seeds[None, :], [n_in], [stages], sl.length)[0]
        got = xor_outputs(win[sl.index], sl.row_words) ^ np.uint8(invert)
    else:  # rate 0: the plane decodes to `invert` everywhere
        got = np.uint8(invert)
    err, by_imp, imp, full = plane_errors(q, sl, plane, truth, got, seeds)
    _, bits = patch_run_length(sl.kept[err])
    return Candidate(n_in, full, err, by_imp, imp, bits, stages, invert)


def plane_errors(
    q: QuantTensor,
    sl: Slicing,
    plane: int,
    truth: NDArray[np.uint8],
    got: NDArray[np.uint8] | np.uint8,
    fields: NDArray[np.uint64],
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float32], NDArray[np.uint64]]:
    """A candidate's parts common to variants 2 and 3: the care bits where the decoded plane
    `got` differs from `truth`, their order by importance and the sorted importances, and the
    busy slices' seed `fields` scattered over all slices."""
    err = np.flatnonzero(got != truth)
    imp = _plane_importance(q, sl.kept, plane, err).astype(np.float32)
    by_imp = np.argsort(imp, kind="stable").astype(np.int32)
    full = np.zeros(sl.n_slices, dtype=np.uint64)
    full[sl.busy_ids] = fields
    return err.astype(np.int32), by_imp, imp[by_imp], full


@dataclass(frozen=True)
class Slicing:
    """The full solve's slicing of one tensor: kept positions, busy index and M word of each
    kept weight, busy slices B, stream length T, busy slice ids, slices, care count of each
    busy slice."""

    kept: NDArray[np.int64]
    index: NDArray[np.int64]
    row_words: NDArray[np.uint64]
    n_busy: int
    length: int
    busy_ids: NDArray[np.int64]
    n_slices: int
    care: NDArray[np.int64]


def slicing(kept: NDArray[np.int64], n: int, n_out: int) -> Slicing:
    n_busy, index = busy_slices(kept, n_out)
    words = network(DEFAULT_M_SEED, n_out)[kept % n_out]
    ids = busy_ids(kept, n_out)
    care = np.bincount(index, minlength=n_busy)
    length = stream_length(n_busy)
    return Slicing(kept, index, words, n_busy, length, ids, -(-n // n_out), care)


RatesFor = Callable[[list[int], list[int], str], dict[int, list[int]]]
Solve = Callable[
    [_Rows, Sequence[NDArray[np.int64]], Sequence[int], int, int],
    tuple[dict[int, NDArray[np.uint64]], dict[int, NDArray[np.int64]]],
]
MakeCandidate = Callable[[int, NDArray[np.uint64], NDArray[np.uint8], int, int], Candidate]
"""(rate, seed field per busy slice, target bits, plane, invert) -> the plane's candidate."""


def group_candidates(
    q: QuantTensor,
    options: XorOptions,
    codes: NDArray[np.uint16],
    sl: Slicing,
    best: list[int],
    steps: tuple[RatesFor, Solve, MakeCandidate],
    zero_cap: float | None = None,
) -> list[list[Candidate]]:
    """Every plane's candidates (variants 2 and 3): per plane group one full solve over every
    register stream with the group's rates as lanes, then per plane its seeded rates, rate 0
    and rate 0 inverted (those two only when they patch at most `zero_cap` x K care bits, or
    when the plane has no seeded rate; always if `zero_cap` is None)."""
    rates_for, solve, make = steps
    restarts = max(1, int(options.effort))
    rng = np.random.default_rng(options.seed)
    cands: list[list[Candidate]] = [[] for _ in range(q.bits)]
    seeds_at: dict[int, NDArray[np.uint64]] = {}
    for g in _groups(q, sl.kept, options.patch_policy):
        tries = rates_for(best, g.planes, options.patch_policy)
        rates = sorted(set().union(*tries.values()))
        if rates and sl.kept.size:
            rows = _Rows(sl.index, sl.row_words, _plane_targets(codes, q.bits, g.planes), sl.n_busy)
            keys = _keys(g.base, sl.kept.size, restarts, rng)
            ranks = [_ranks(sl.index, sl.care, key) for key in keys]
            seeds_at, _ = solve(rows, ranks, rates, sl.length, len(g.planes))
        for j, i in enumerate(g.planes):
            truth = ((codes >> np.uint16(q.bits - 1 - i)) & np.uint16(1)).astype(np.uint8)
            for r in tries[i]:
                cands[i].append(make(r, np.ascontiguousarray(seeds_at[r][:, j]), truth, i, 0))
            zero = np.zeros(sl.n_busy, dtype=np.uint64)
            for inv in (0, 1):
                patched = int((truth != inv).sum())
                if zero_cap is None or not tries[i] or patched <= zero_cap * sl.kept.size:
                    cands[i].append(make(0, zero, truth, i, inv))
    return cands


def solve_tensor_seq(q: QuantTensor, options: XorOptions) -> SolvedTensor:
    """Variant 2's `solve_tensor` (docs/codecs/xor.md §11.4)."""
    flat = q.values.ravel()
    n = flat.size
    kept = np.flatnonzero(flat != 0).astype(np.int64)
    codes = to_sign_magnitude(flat[kept], q.bits)
    choices = _n_out_choices(n, kept)
    if kept.size == 0:
        n_out, best = choices[-1], [0] * q.bits
    else:
        scans = [(*_scan(kept, codes, q.bits, n, c), c) for c in choices]
        _, best, n_out = min(scans, key=lambda s: (s[0], -s[2]))
    sl = slicing(kept, n, n_out)
    make = functools.partial(_candidate, q, sl)
    cands = group_candidates(q, options, codes, sl, best, (_rates_for, _solve, make))
    length, n_busy = sl.length, sl.n_busy
    coding, mask_k, mask_bits, mask_stream = encode_mask(flat != 0)
    return SolvedTensor(
        q, options, n_out, DEFAULT_M_SEED, -(-n // n_out), n_busy, kept, codes,
        cands, best,
        coding, mask_k, mask_bits, mask_stream, variant=VARIANT_SEQ, stream_len=length,
    )  # fmt: skip
