"""Encoder of codec `xor`, variant 3 (mask-adaptive seed widths, docs/codecs/xor.md §12.5): from
a tensor to a `SolvedTensor` that `finish` turns into streams as for variants 1 and 2.

Per tensor: the rate scan (a sample of register streams, every candidate `n_out` and rate as
lanes of one solve), each plane's best rate against its two rate-0 modes, then one full solve
per plane group over every register stream with the chosen rates as lanes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.xor.adaptive import field_widths, register_windows
from xorc.codecs.xor.adaptsolve import AdaptLanes, solve_adaptive
from xorc.codecs.xor.encode import (
    LOW_RATES,
    _patch_estimate,
    _plane_targets,
)
from xorc.codecs.xor.finish import Candidate, SolvedTensor
from xorc.codecs.xor.mask import encode_mask
from xorc.codecs.xor.network import DEFAULT_M_SEED, MAX_N_IN, xor_outputs
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import patch_run_length
from xorc.codecs.xor.schema import MAX_RATE, VARIANT_ADAPT
from xorc.codecs.xor.seqencode import (
    N_OUT_STEP,
    SCAN_LEN,
    Slicing,
    _rate_zero_costs,
    _Rows,
    _rows,
    _sample,
    best_per_stream,
    group_candidates,
    plane_errors,
    slicing,
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
    busy: dict[int, int] = {}
    for target in CARE_TARGETS:
        n_out = N_OUT_STEP
        for _ in range(8):  # busy slices depend on n_out: iterate the estimate
            if n_out not in busy:
                slice_of = kept // n_out
                busy[n_out] = int(slice_of.size > 0) + int(np.count_nonzero(np.diff(slice_of)))
            n_busy = busy[n_out]
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


@dataclass
class _Scan:
    """The rate scan of one tensor: the targets, the rate-0 cost per plane (inf where
    PATCH_SHARE forbids it), and per `n_out` the sample, the care counts of the busy slices
    and the sample's errors per rate (S, P), filled as rates are solved."""

    kept: NDArray[np.int64]
    bits: int
    targets: NDArray[np.uint8]
    zero: NDArray[np.float64]
    rows: dict[int, tuple[_Rows, NDArray[np.int64], int]] = field(default_factory=dict)
    errors: dict[tuple[int, int], NDArray[np.int64]] = field(default_factory=dict)


def _scan_state(kept: NDArray[np.int64], codes: NDArray[np.uint16], bits: int) -> _Scan:
    zero = _rate_zero_costs(codes, bits, kept.size).min(axis=1)
    ones = np.array([float(((codes >> np.uint16(bits - 1 - i)) & 1).mean()) for i in range(bits)])
    zero[np.minimum(ones, 1.0 - ones) > PATCH_SHARE] = np.inf
    return _Scan(kept, bits, _plane_targets(codes, bits, list(range(bits))), zero)


def _scan(state: _Scan, n_out: int, rates: Sequence[int] = SCAN_RATES) -> tuple[float, list[int]]:
    """Estimated bits and best rate per plane (0: a rate-0 mode) for `n_out` among `rates`,
    policy all. A rate's lanes do not depend on the other rates', so each (n_out, rate) is
    solved once."""
    if n_out not in state.rows:
        rows = _rows(state.kept, n_out, state.targets)
        care = np.bincount(rows.busy, minlength=rows.n_busy)
        state.rows[n_out] = (_sample(rows), care, rows.n_busy)
    sample, care, n_busy = state.rows[n_out]
    todo = [r for r in rates if (n_out, r) not in state.errors]
    if todo:
        rank = _ranks(sample.busy, np.bincount(sample.busy), np.arange(sample.busy.size))
        _, err = _solve(sample, [rank], todo, min(SCAN_LEN, sample.n_busy), state.bits)
        state.errors |= {(n_out, r): err[r] for r in todo}
    scale = n_busy / max(sample.n_busy, 1)
    k = state.kept.size
    cost = np.stack(
        [
            float(field_widths(care, [r], [REG]).sum())
            + _patch_estimate(state.errors[n_out, r].sum(axis=0) * scale, k)
            for r in rates
        ]
    )  # (rates, P)
    best, total = [], 0.0
    for i in range(state.bits):
        j = int(cost[:, i].argmin())
        best.append(rates[j] if float(cost[j, i]) < state.zero[i] else 0)
        total += min(float(cost[j, i]), float(state.zero[i]))
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
    q: QuantTensor,
    sl: Slicing,
    rate: int,
    fields: NDArray[np.uint64],
    truth: NDArray[np.uint8],
    plane: int,
    invert: int = 0,
) -> Candidate:
    """Decode one plane at one rate (one field per busy slice) and record its errors."""
    reg = REG if rate else 0
    widths = field_widths(sl.care, [rate], [reg])
    if rate:
        win = register_windows(fields[None, :], widths, [reg], sl.length)[0]
        got = xor_outputs(win[sl.index], sl.row_words) ^ np.uint8(invert)
    else:  # rate 0: the plane decodes to `invert` everywhere
        got = np.uint8(invert)
    err, by_imp, imp, full = plane_errors(q, sl, plane, truth, got, fields)
    _, bits = patch_run_length(err)  # variant 3 patches are care indices
    return Candidate(reg, full, err, by_imp, imp, bits, 1, invert, rate, widths[0])


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
        state = _scan_state(kept, codes, q.bits)
        scans = [(*_scan(state, c, [FIRST_RATE]), c) for c in choices]
        _, _, n_out = min(scans, key=lambda s: (s[0], -s[2]))
        _, best = _scan(state, n_out)
    sl = slicing(kept, n, n_out)
    make = functools.partial(_candidate, q, sl)
    steps = (_rates_for, _solve, make)
    cands = group_candidates(q, options, codes, sl, best, steps, PATCH_SHARE)
    length, n_busy = sl.length, sl.n_busy
    coding, mask_k, mask_bits, mask_stream = encode_mask(flat != 0)
    return SolvedTensor(
        q, options, n_out, DEFAULT_M_SEED, -(-n // n_out), n_busy, kept, codes,
        cands, best,
        coding, mask_k, mask_bits, mask_stream, variant=VARIANT_ADAPT, stream_len=length,
    )  # fmt: skip
