"""The variant-3 solver (docs/codecs/xor.md §12.5): sequential GF(2) elimination over a register
that shifts by a per-slice width. Encoder only.

A *lane* is one register stream solved at one rate with one row order. Internally the window is
always 64 variables, *oldest first*: internal bit b of step t is the stream's variable
E_t - 64 + b, E_t being the number of seed bits of the stream's slices 0 .. t; decoder column j
(bit j of the register) is internal bit 63 - j. Per step the basis moves down by the step's
width (rows whose pivot falls below it are retired for back-substitution), then the slice's
care rows are inserted one at a time at their lowest set bit (`seqsolve_jit._insert`), which
keeps the pivots on the oldest variables. Back-substitution runs from the last window backwards;
free variables are 0. Compiled with numba when the optional `fast` extra is installed; without
it (or with XORC_JIT=0) `solve_adaptive_numpy` runs the same elimination vectorised over lanes,
column by column as `seqsolve.solve_lanes_numpy` (the same pivots, hence the same seeds and
errors, bit for bit; `tests/test_codec_xor_v3.py` checks both against each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.xor.seqsolve import (
    _back_substitute,
    _Basis,
    _eliminate_step,
    _retire,
    add_errors,
    low_mask,
)
from xorc.codecs.xor.seqsolve_jit import _insert, _jit, _shift, _solve_column, compiled_solver

ONE = np.uint64(1)
ALL = np.uint64(2**64 - 1)
_SWAPS = (
    (np.uint64(1), np.uint64(0x5555555555555555)),
    (np.uint64(2), np.uint64(0x3333333333333333)),
    (np.uint64(4), np.uint64(0x0F0F0F0F0F0F0F0F)),
    (np.uint64(8), np.uint64(0x00FF00FF00FF00FF)),
    (np.uint64(16), np.uint64(0x0000FFFF0000FFFF)),
)


@dataclass(frozen=True)
class AdaptLanes:
    """The systems of L lanes, T steps, up to K care rows per step.

    Attributes:
        coef: (L, T, K) M words of the care rows (decoder layout); padding rows 0.
        rhs: (L, T, K) target bits, bit p = plane p.
        counts: (L, T) rows per step.
        widths: (L, T) seed bits of each step (the slice's field width).
        reg: (L,) register width W (1 .. 64).
    """

    coef: NDArray[np.uint64]
    rhs: NDArray[np.uint8]
    counts: NDArray[np.int64]
    widths: NDArray[np.int64]
    reg: NDArray[np.int64]


def solve_adaptive(
    lanes: AdaptLanes, n_planes: int
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """Seeds (L, T, P) (each step's field) and errors (L, P) of every lane (compiled kernel
    with numba, else `solve_adaptive_numpy`: the same result)."""
    if compiled_solver() is None:
        return solve_adaptive_numpy(lanes, n_planes)
    n_lanes, steps, _ = lanes.coef.shape
    seeds = np.zeros((n_lanes, steps, n_planes), dtype=np.uint64)
    errors = np.zeros((n_lanes, n_planes), dtype=np.int64)
    _solve(
        np.ascontiguousarray(lanes.coef),
        np.ascontiguousarray(lanes.rhs),
        np.ascontiguousarray(lanes.counts, dtype=np.int64),
        np.ascontiguousarray(lanes.widths, dtype=np.int64),
        np.ascontiguousarray(lanes.reg, dtype=np.int64),
        n_planes,
        seeds,
        errors,
    )
    return seeds, errors


def _reverse(x):  # type: ignore[no-untyped-def]
    """x with its 64 bits in reverse order (swap halves of ever larger blocks); x a uint64 or
    an array of them."""
    for sh, m in _SWAPS:
        x = ((x >> sh) & m) | ((x & m) << sh)
    return (x >> np.uint64(32)) | (x << np.uint64(32))


_rev64 = _jit(_reverse)


def solve_adaptive_numpy(
    lanes: AdaptLanes, n_planes: int
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """`solve_adaptive` in numpy, vectorised over lanes: per step the basis moves down by each
    lane's width (`seqsolve._retire`), then the step's rows are eliminated column by column
    (`seqsolve._eliminate_step`: the pivots of inserting them one at a time)."""
    n_lanes, steps, _ = lanes.coef.shape
    widths = np.asarray(lanes.widths, dtype=np.int64)
    valid = low_mask(np.minimum(np.cumsum(widths, axis=1), lanes.reg[:, None]))  # (L, T)
    basis = _Basis.empty(n_lanes)
    errors = np.zeros((n_lanes, n_planes), dtype=np.int64)
    retired: list[_Basis] = []
    for t in range(steps):
        if t > 0:
            retired.append(_retire(basis, widths[:, t]))
        k = int(lanes.counts[:, t].max()) if n_lanes else 0
        if k:
            coef = _reverse(lanes.coef[:, t, :k] & valid[:, t, None])
            rhs = lanes.rhs[:, t, :k].copy()
            add_errors(errors, _eliminate_step(basis, coef, rhs, 64))
    return _fields(basis, retired, widths, n_planes), errors


def _fields(
    last: _Basis, retired: list[_Basis], widths: NDArray[np.int64], n_planes: int
) -> NDArray[np.uint64]:
    """Back-substitution from the last window backwards (as `_back`): each step's field."""
    n_lanes, steps = widths.shape
    seeds = np.zeros((n_lanes, steps, n_planes), dtype=np.uint64)
    x = np.zeros((n_lanes, n_planes), dtype=np.uint64)
    if steps == 0:
        return seeds
    _back_substitute(last, x, 0, 64, n_planes)
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:
            w1 = widths[:, t + 1, None]
            x = np.where(w1 >= 64, np.uint64(0), x << np.minimum(w1, 63).astype(np.uint64))
            _back_substitute(retired[t], x, 0, int(w1.max()), n_planes)
        seeds[:, t] = _reverse(x) & low_mask(widths[:, t])[:, None]
    return seeds


@_jit
def _low(n):  # type: ignore[no-untyped-def]  # pragma: no cover
    return (ONE << np.uint64(n)) - ONE if n < 64 else ALL


@_jit
def _back(seeds, lane, b, r, widths, n_planes):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Back-substitution of one lane: the last basis b, the retired snapshots r."""
    steps = seeds.shape[1]
    for p in range(n_planes):
        x = np.uint64(0)
        for j in range(63, -1, -1):
            x = _solve_column(x, b[0][j], b[1][j], b[2][j], p, j)
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                w1 = widths[t + 1]
                x = x << np.uint64(w1) if w1 < 64 else np.uint64(0)
                for j in range(w1 - 1, -1, -1):
                    x = _solve_column(x, r[0][t, j], r[1][t, j], r[2][t, j], p, j)
            if widths[t]:
                seeds[lane, t, p] = _rev64(x) & _low(widths[t])


@_jit
def _solve(coef, rhs, counts, widths, reg, n_planes, seeds, errors):  # type: ignore[no-untyped-def]  # pragma: no cover
    n_lanes, steps, _ = coef.shape
    for lane in range(n_lanes):
        b = (np.zeros(64, np.uint64), np.zeros(64, np.uint8), np.zeros(64, np.bool_))
        r = (
            np.zeros((steps, 64), np.uint64),
            np.zeros((steps, 64), np.uint8),
            np.zeros((steps, 64), np.bool_),
        )
        end = 0
        for t in range(steps):
            w = widths[lane, t]
            if t > 0:
                r[0][t - 1, :] = b[0]
                r[1][t - 1, :] = b[1]
                r[2][t - 1, :] = b[2]
                _shift(b[0], b[1], b[2], w)
            end += w
            valid = _low(min(end, reg[lane]))
            for i in range(counts[lane, t]):
                word = _rev64(coef[lane, t, i] & valid)
                left = _insert(word, rhs[lane, t, i], b[0], b[1], b[2])
                for p in range(n_planes):
                    errors[lane, p] += (left >> p) & 1
        _back(seeds, lane, b, r, widths[lane], n_planes)
