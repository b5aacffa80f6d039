"""Encoder of codec `xor`, variant 3 (mask-adaptive seed widths, docs/codecs/xor.md §12.5): from
a tensor to a `SolvedTensor` that `finish` turns into streams as for variants 1 and 2.

Per tensor: the rate scan (a sample of register streams, every candidate `n_out` and rate as
lanes of one solve), each plane's best rate against its two rate-0 modes, then one full solve
per plane group over every register stream with the chosen rates as lanes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.xor.adaptive import field_widths, register_windows
from xorc.codecs.xor.adaptsolve import AdaptLanes, solve_adaptive
from xorc.codecs.xor.decode import busy_slices
from xorc.codecs.xor.encode import (
    LOW_RATES,
    _error_importance,
    _groups,
    _keys,
    _patch_estimate,
    _plane_targets,
)
from xorc.codecs.xor.finish import Candidate, SolvedTensor
from xorc.codecs.xor.mask import encode_mask
from xorc.codecs.xor.network import DEFAULT_M_SEED, MAX_N_IN, network, xor_outputs
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import patch_run_length
from xorc.codecs.xor.schema import MAX_RATE, VARIANT_ADAPT
from xorc.codecs.xor.seqencode import (
    N_OUT_STEP,
    SCAN_LEN,
    _rate_zero_costs,
    _Rows,
    _rows,
    _sample,
    best_per_stream,
    stream_length,
)
from xorc.codecs.xor.solve import _ranks
from xorc.tensor import QuantTensor

REG = MAX_N_IN
"""The encoder's register width W: the whole 64-column network."""
CARE_TARGETS = (16.0, 24.0, 32.0)
"""Mean care counts per busy slice the scan tries (about 4, 3 and 2 slices per register)."""
SCAN_RATES = (252, 256, 260, 264)
"""Scanned rates in 1/256 seed bit per care bit, on the chosen `n_out`."""
FIRST_RATE = 256
"""The rate at which the candidate `n_out` are compared first."""
PATCH_SHARE = 0.25
"""A plane is coded at rate 0 (its ones or zeros patched) only when that takes at most this
share of its care bits as patches, so the patch unit never carries a plane's bulk."""
MAX_N_OUT_ENC = 1024


def _n_out_choices(n: int, kept: NDArray[np.int64]) -> list[int]:
    """Multiples of N_OUT_STEP whose mean care count per busy slice is near CARE_TARGETS."""
    cap = max(N_OUT_STEP, -(-n // N_OUT_STEP) * N_OUT_STEP)
    picks = set()
    for target in CARE_TARGETS:
        n_out = N_OUT_STEP
        for _ in range(8):  # busy slices depend on n_out: iterate the estimate
            n_busy, _ = busy_slices(kept, n_out)
            mean = kept.size / max(n_busy, 1)
            guess = round(n_out * target / max(mean, 1e-9) / N_OUT_STEP) * N_OUT_STEP
            guess = int(min(cap, MAX_N_OUT_ENC, max(N_OUT_STEP, guess)))
            if guess == n_out:
                break
            n_out = guess
        picks.add(n_out)
    return sorted(picks)


def _lanes(
    rows: _Rows, ranks: Sequence[NDArray[np.int64]], rates: Sequence[int], length: int
) -> tuple[AdaptLanes, int]:
    """Lanes (rate, restart, stream): lane (c, r, s) is index (c * R + r) * S + s."""
    n_streams = -(-rows.n_busy // length) if rows.n_busy else 0
    counts = np.bincount(rows.busy, minlength=n_streams * length).reshape(n_streams, length)
    k = max(int(counts.max()) if counts.size else 0, 1)
    n_r = len(ranks)
    n_lanes = len(rates) * n_r * n_streams
    coef = np.zeros((n_lanes, length, k), dtype=np.uint64)
    rhs = np.zeros((n_lanes, length, k), dtype=np.uint8)
    s_of, t_of = rows.busy // length, rows.busy % length
    for c in range(len(rates)):
        for r, rank in enumerate(ranks):
            lane = (c * n_r + r) * n_streams + s_of
            coef[lane, t_of, rank] = rows.words
            rhs[lane, t_of, rank] = rows.targets
    widths = np.concatenate(
        [np.repeat(field_widths(counts.ravel(), [rate], [REG]), n_r, axis=0) for rate in rates]
    ).reshape(n_lanes, length)
    all_counts = np.tile(counts, (len(rates) * n_r, 1))
    reg = np.full(n_lanes, REG, dtype=np.int64)
    return AdaptLanes(coef, rhs, all_counts, widths, reg), n_streams


def _solve(
    rows: _Rows, ranks: Sequence[NDArray[np.int64]], rates: Sequence[int], length: int, n_p: int
) -> tuple[dict[int, NDArray[np.uint64]], dict[int, NDArray[np.int64]]]:
    """Per rate: the seed field of every busy slice (B, P), best restart per stream and plane,
    and the errors per stream (S, P)."""
    lanes, n_streams = _lanes(rows, ranks, rates, length)
    seeds, errors = solve_adaptive(lanes, n_p)
    return best_per_stream(seeds, errors, rates, len(ranks), n_streams, rows.n_busy)


def _scan(
    kept: NDArray[np.int64],
    codes: NDArray[np.uint16],
    bits: int,
    n: int,
    n_out: int,
    rates: Sequence[int] = SCAN_RATES,
) -> tuple[float, list[int]]:
    """Estimated bits and best rate per plane (0: a rate-0 mode) for `n_out` among `rates`,
    policy all."""
    rows = _rows(kept, n_out, _plane_targets(codes, bits, list(range(bits))))
    sample = _sample(rows)
    scale = rows.n_busy / max(sample.n_busy, 1)
    care = np.bincount(rows.busy, minlength=rows.n_busy)
    rank = _ranks(sample.busy, np.bincount(sample.busy), np.arange(sample.busy.size))
    _, err = _solve(sample, [rank], rates, min(SCAN_LEN, sample.n_busy), bits)
    cost = np.stack(
        [
            float(field_widths(care, [r], [REG]).sum())
            + _patch_estimate(err[r].sum(axis=0) * scale, kept.size)
            for r in rates
        ]
    )  # (rates, P)
    zero = _rate_zero_costs(codes, bits, kept.size).min(axis=1)
    ones = np.array([float(((codes >> np.uint16(bits - 1 - i)) & 1).mean()) for i in range(bits)])
    zero[np.minimum(ones, 1.0 - ones) > PATCH_SHARE] = np.inf
    best, total = [], 0.0
    for i in range(bits):
        j = int(cost[:, i].argmin())
        best.append(rates[j] if float(cost[j, i]) < zero[i] else 0)
        total += min(float(cost[j, i]), float(zero[i]))
    return total, best


def _rates_for(best: list[int], planes: list[int], policy: str) -> dict[int, list[int]]:
    out = {}
    for i in planes:
        r = {best[i]} if best[i] else set()
        if policy == "importance" and best[i]:
            r |= {min(MAX_RATE, max(1, round(best[i] * f))) for f in LOW_RATES if f > 0}
        out[i] = sorted(r)
    return out


def _candidate(
    rate: int,
    fields: NDArray[np.uint64],
    truth: NDArray[np.uint8],
    ctx: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint64], int, int],
    kept: NDArray[np.int64],
    importance: NDArray[np.float64],
    invert: int = 0,
) -> Candidate:
    """Decode one plane at one rate (one field per busy slice) and record its errors."""
    busy_ids, index, row_words, stream_len, n_slices = ctx
    care = np.bincount(index, minlength=busy_ids.size)
    widths = field_widths(care, [rate], [REG if rate else 0])
    win = register_windows(fields[None, :], widths, [REG if rate else 0], stream_len)[0]
    got = xor_outputs(win[index], row_words) ^ np.uint8(invert)
    err = np.flatnonzero(got != truth)
    imp = importance[err].astype(np.float32)
    by_imp = np.argsort(imp, kind="stable").astype(np.int32)
    _, bits = patch_run_length(err)  # variant 3 patches are care indices
    full = np.zeros(n_slices, dtype=np.uint64)
    full[busy_ids] = fields
    reg = REG if rate else 0
    return Candidate(
        reg, full, err.astype(np.int32), by_imp, imp[by_imp], bits, 1, invert, rate, widths[0]
    )


def _plane_candidates(
    q: QuantTensor, options: XorOptions, kept: NDArray[np.int64], best: list[int], n_out: int
) -> tuple[list[list[Candidate]], int, int]:
    """Every plane's candidates (its seeded rates, rate 0 and rate 0 inverted); stream length
    and busy slices."""
    codes = to_sign_magnitude(q.values.ravel()[kept], q.bits)
    rng = np.random.default_rng(options.seed)
    n_busy, index = busy_slices(kept, n_out)
    length = stream_length(n_busy)
    row_words = network(DEFAULT_M_SEED, n_out)[kept % n_out]
    ctx = (np.unique(kept // n_out), index, row_words, length, -(-q.values.size // n_out))
    importance = _error_importance(q, kept)
    cands: list[list[Candidate]] = [[] for _ in range(q.bits)]
    fields_at: dict[int, NDArray[np.uint64]] = {}
    for g in _groups(q, kept, options.patch_policy):
        tries = _rates_for(best, g.planes, options.patch_policy)
        rates = sorted(set().union(*tries.values()))
        if rates and kept.size:
            rows = _Rows(index, row_words, _plane_targets(codes, q.bits, g.planes), n_busy)
            counts = np.bincount(index, minlength=n_busy)
            keys = _keys(g.base, kept.size, max(1, int(options.effort)), rng)
            ranks = [_ranks(index, counts, key) for key in keys]
            fields_at, _ = _solve(rows, ranks, rates, length, len(g.planes))
        for j, i in enumerate(g.planes):
            truth = ((codes >> np.uint16(q.bits - 1 - i)) & np.uint16(1)).astype(np.uint8)
            for r in tries[i]:
                sd = np.ascontiguousarray(fields_at[r][:, j])
                cands[i].append(_candidate(r, sd, truth, ctx, kept, importance[i]))
            zero = np.zeros(n_busy, dtype=np.uint64)
            for inv in (0, 1):
                patched = int((truth != inv).sum())
                if not tries[i] or patched <= PATCH_SHARE * kept.size:
                    cands[i].append(_candidate(0, zero, truth, ctx, kept, importance[i], inv))
    return cands, length, n_busy


def solve_tensor_adapt(q: QuantTensor, options: XorOptions) -> SolvedTensor:
    """Variant 3's `solve_tensor` (docs/codecs/xor.md §12.5)."""
    flat = q.values.ravel()
    n = flat.size
    kept = np.flatnonzero(flat != 0).astype(np.int64)
    codes = to_sign_magnitude(flat[kept], q.bits)
    choices = _n_out_choices(n, kept)
    if kept.size == 0:
        n_out, best = choices[-1], [0] * q.bits
    else:
        scans = [(*_scan(kept, codes, q.bits, n, c, [FIRST_RATE]), c) for c in choices]
        _, _, n_out = min(scans, key=lambda s: (s[0], -s[2]))
        _, best = _scan(kept, codes, q.bits, n, n_out)
    cands, length, n_busy = _plane_candidates(q, options, kept, best, n_out)
    coding, mask_k, mask_bits, mask_stream = encode_mask(flat != 0)
    return SolvedTensor(
        q, options, n_out, DEFAULT_M_SEED, -(-n // n_out), n_busy, kept, codes,
        cands, best,
        coding, mask_k, mask_bits, mask_stream, variant=VARIANT_ADAPT, stream_len=length,
    )  # fmt: skip
