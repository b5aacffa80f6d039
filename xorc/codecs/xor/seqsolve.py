"""The variant-2 solver: sequential GF(2) elimination over shift-register windows
(docs/codecs/xor.md §11.6).

A *lane* is one stream of T busy slices solved with one (n_in, n_stages) configuration and one
row order. Lanes are independent and are processed together, vectorised: the Python loops run
over steps and window columns only, so the cost in numpy calls depends on T and the window
width, not on the tensor size. Lanes may differ in n_in and n_stages, so a rate scan solves
every candidate rate in one call.

Internally a window is held *oldest block first*: bits [k n, (k + 1) n) hold x_{t - N_s + 1 + k}
(the decoder's layout reversed block-wise). Per step t:

1. the slice's care rows (M words in internal layout, columns of blocks before the stream start
   cleared) arrive in pivot order;
2. columns j = 0, 1, ... ascending: if the basis has a pivot row for column j it is XORed into
   every new row with bit j; otherwise the first new row with bit j becomes that pivot (lowest set
   bit = pivot, so rows with a pivot in the oldest block involve no older column);
3. new rows left with no pivot are all-zero: their remaining target bits are the errors;
4. the basis rows of the oldest block are retired (kept for back-substitution) and the basis
   shifts down by n_in.

Back-substitution runs from the last window backwards, one plane per target bit; free columns
are 0. This is greedy selection in row order (every error lies on a row spanned by earlier rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.xor.seqsolve_jit import compiled_solver

ONE = np.uint64(1)
ZERO64 = np.uint64(0)


@dataclass(frozen=True)
class Lanes:
    """The systems of L lanes, T steps, up to K care rows per step.

    Attributes:
        coef: (L, T, K) M words of the care rows in the decoder's window layout (block k =
            x_{t-k}), already masked to the lane's window; padding rows 0.
        rhs: (L, T, K) target bits, bit p = plane p.
        counts: (L, T) rows per step.
        n_in, stages: (L,) the lane's rate and number of stages (n_in >= 1, n_in * stages <= 64).
    """

    coef: NDArray[np.uint64]
    rhs: NDArray[np.uint8]
    counts: NDArray[np.int64]
    n_in: NDArray[np.int64]
    stages: NDArray[np.int64]


def internal_words(
    words: NDArray[np.uint64], n_in: NDArray[np.int64], stages: NDArray[np.int64], step: int
) -> NDArray[np.uint64]:
    """Decoder-layout words (L, K) to the internal layout, columns before the stream start
    (blocks x_{t-k} with k > step) cleared."""
    n = n_in.astype(np.uint64)[:, None]
    block = low_mask(n_in)[:, None]
    out = np.zeros_like(words)
    for k in range(int(stages.max())):
        live = (k < stages) & (k <= step)
        part = (words >> (np.uint64(k) * n)) & block
        dest = np.maximum(stages - 1 - k, 0).astype(np.uint64)[:, None] * n
        out |= np.where(live[:, None], part << dest, ZERO64)
    return out


@dataclass
class _Basis:
    coef: NDArray[np.uint64]  # (L, 64)
    rhs: NDArray[np.uint8]  # (L, 64)
    has: NDArray[np.bool_]  # (L, 64)

    @staticmethod
    def empty(n_lanes: int) -> _Basis:
        return _Basis(
            np.zeros((n_lanes, 64), np.uint64),
            np.zeros((n_lanes, 64), np.uint8),
            np.zeros((n_lanes, 64), bool),
        )


def add_errors(errors: NDArray[np.int64], err: NDArray[np.uint8]) -> None:
    """Add one step's error rows (target bits, (L, K)) to the per-plane counts (L, P)."""
    for p in range(errors.shape[1]):
        errors[:, p] += ((err >> np.uint8(p)) & np.uint8(1)).sum(axis=1, dtype=np.int64)


def _eliminate_step(
    basis: _Basis, coef: NDArray[np.uint64], rhs: NDArray[np.uint8], width: int
) -> NDArray[np.uint8]:
    """Reduce one step's new rows (in place) against the basis, adding pivots; the target bits
    of the rows left without a pivot (the errors), (L, K)."""
    lanes, k = coef.shape
    ar = np.arange(lanes)
    unused = np.ones((lanes, k), dtype=bool)
    hb = np.empty((lanes, k), dtype=bool)
    cand = np.empty((lanes, k), dtype=bool)
    tmp64 = np.empty((lanes, k), dtype=np.uint64)
    tmp8 = np.empty((lanes, k), dtype=np.uint8)
    for j in range(width):
        np.bitwise_and(coef, np.uint64(1 << j), out=tmp64)
        np.not_equal(tmp64, 0, out=hb)
        if not hb.any():
            continue
        np.logical_and(hb, unused, out=cand)
        piv = cand.argmax(axis=1)
        found = cand[ar, piv]
        exist = basis.has[:, j]
        new = found & ~exist
        prow = np.where(exist, basis.coef[:, j], np.where(new, coef[ar, piv], ZERO64))
        prhs = np.where(exist, basis.rhs[:, j], np.where(new, rhs[ar, piv], np.uint8(0)))
        np.multiply(hb, prow[:, None], out=tmp64)
        np.bitwise_xor(coef, tmp64, out=coef)
        np.multiply(hb, prhs[:, None], out=tmp8)
        np.bitwise_xor(rhs, tmp8, out=rhs)
        unused[ar, piv] &= ~new
        basis.coef[:, j] = np.where(new, prow, basis.coef[:, j])
        basis.rhs[:, j] = np.where(new, prhs, basis.rhs[:, j])
        basis.has[:, j] |= new
    return rhs * unused  # type: ignore[no-any-return]


def _retire(basis: _Basis, n_in: NDArray[np.int64]) -> _Basis:
    """Take out the oldest block's pivot rows and shift the basis down by n_in (per lane)."""
    cols = np.arange(64)[None, :]
    src = cols + n_in[:, None]
    ok = src < 64
    src = np.minimum(src, 63)
    old = _Basis(basis.coef.copy(), basis.rhs.copy(), basis.has & (cols < n_in[:, None]))
    shift = n_in.astype(np.uint64)[:, None]
    basis.coef[:] = np.where(ok, np.take_along_axis(basis.coef, src, axis=1) >> shift, ZERO64)
    basis.rhs[:] = np.where(ok, np.take_along_axis(basis.rhs, src, axis=1), 0)
    basis.has[:] = ok & np.take_along_axis(basis.has, src, axis=1)
    return old


def low_mask(bits: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Words with the low `bits` bits set (0 <= bits <= 64)."""
    b = np.asarray(bits, dtype=np.int64)
    safe = (ONE << np.minimum(b, 63).astype(np.uint64)) - ONE
    return np.where(b >= 64, ~ZERO64, safe)


def _parity(a: NDArray[np.uint64]) -> NDArray[np.uint64]:
    return (np.bitwise_count(a) & np.uint8(1)).astype(np.uint64)


def _back_substitute(basis: _Basis, x: NDArray[np.uint64], lo: int, hi: int, n_planes: int) -> None:
    """Solve the pivot columns hi-1 .. lo of `basis` into the window values x (L, P), in place:
    x_j = target_j XOR parity(row_j AND x) (the row's higher columns are already solved)."""
    planes = np.arange(n_planes, dtype=np.uint8)
    for j in range(hi - 1, lo - 1, -1):
        has = basis.has[:, j]
        if not has.any():
            continue
        t = ((basis.rhs[:, j, None] >> planes) & np.uint8(1)).astype(np.uint64)
        bit = t ^ _parity(basis.coef[:, j, None] & x)
        x |= np.where(has[:, None], bit << np.uint64(j), ZERO64)


def solve_lanes(lanes: Lanes, n_planes: int) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """Seeds (L, T, P) (decoder blocks x_t, n_in bits each) and error counts (L, P); with numba
    the compiled kernel of `seqsolve_jit` (the same result), else numpy."""
    kernel = compiled_solver()
    if kernel is None:
        return solve_lanes_numpy(lanes, n_planes)
    n_lanes, steps, _ = lanes.coef.shape
    seeds = np.zeros((n_lanes, steps, n_planes), dtype=np.uint64)
    errors = np.zeros((n_lanes, n_planes), dtype=np.int64)
    kernel(
        np.ascontiguousarray(lanes.coef),
        np.ascontiguousarray(lanes.rhs),
        np.ascontiguousarray(lanes.counts, dtype=np.int64),
        np.ascontiguousarray(lanes.n_in, dtype=np.int64),
        np.ascontiguousarray(lanes.stages, dtype=np.int64),
        n_planes,
        seeds,
        errors,
    )
    return seeds, errors


def solve_lanes_numpy(lanes: Lanes, n_planes: int) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """`solve_lanes` in numpy, vectorised over lanes."""
    n_lanes, steps, _ = lanes.coef.shape
    n_in, stages = lanes.n_in, lanes.stages
    width = int((n_in * stages).max()) if n_lanes else 0
    basis = _Basis.empty(n_lanes)
    errors = np.zeros((n_lanes, n_planes), dtype=np.int64)
    retired: list[_Basis] = []
    for t in range(steps):
        k = int(lanes.counts[:, t].max()) if n_lanes else 0
        if k:
            coef = internal_words(np.ascontiguousarray(lanes.coef[:, t, :k]), n_in, stages, t)
            rhs = np.ascontiguousarray(lanes.rhs[:, t, :k])
            add_errors(errors, _eliminate_step(basis, coef, rhs, width))
        if t < steps - 1:
            retired.append(_retire(basis, n_in))
    return _seeds(basis, retired, n_in, stages, steps, n_planes, width), errors


def _seeds(
    last: _Basis,
    retired: list[_Basis],
    n_in: NDArray[np.int64],
    stages: NDArray[np.int64],
    steps: int,
    n_planes: int,
    width: int,
) -> NDArray[np.uint64]:
    """Back-substitution from the last window backwards; the decoder blocks x_t (L, T, P)."""
    n_lanes = n_in.size
    seeds = np.zeros((n_lanes, steps, n_planes), dtype=np.uint64)
    if steps == 0:
        return seeds
    n = n_in.astype(np.uint64)[:, None]
    block = low_mask(n_in)[:, None]
    x = np.zeros((n_lanes, n_planes), dtype=np.uint64)
    _back_substitute(last, x, 0, width, n_planes)
    # window of step T-1: internal block k holds x_{T - stages + k}
    for k in range(int(stages.max())):
        t = steps - stages + k  # (L,)
        ok = (k < stages) & (t >= 0)
        val = (x >> (np.uint64(k) * n)) & block
        li = np.flatnonzero(ok)
        seeds[li, t[li]] = val[li]
    wmask = low_mask(n_in * stages)[:, None]
    for t in range(steps - 2, -1, -1):
        x = np.where(n >= 64, ZERO64, (x << np.minimum(n, 63)) & wmask)
        _back_substitute(retired[t], x, 0, int(n_in.max()), n_planes)
        b = t - stages + 1
        li = np.flatnonzero(b >= 0)
        seeds[li, b[li]] = (x & block)[li]
    return seeds
