"""Optional compiled variant-2 solver: the same sequential elimination as `seqsolve`, one lane
and one care row at a time, compiled with numba (docs/codecs/xor.md §11.4).

`seqsolve.solve_lanes` eliminates column by column over all new rows of all lanes at once
(pivot = first unused row with the bit). Inserting the rows one at a time in pivot order, each
reduced against the basis at its lowest set bit until it becomes a pivot or vanishes, selects
the same pivot rows with the same contents (a row can only be reduced by pivots of earlier rows
or of the basis, in both orders), so the errors, the back-substitution and the seeds are
identical; `tests/test_codec_xor_seq.py` checks that bit for bit.

When numba is installed (`pip install 'xorc[fast]'`) `solve_lanes` uses this kernel;
XORC_JIT=0 forces the numpy solver. numba stays optional, as for the EBPC parser
(`xorc/codecs/ebpc/parse_jit.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

try:  # imported by the encoder only (never by a decoder)
    import numba

    _jit: Callable[[Any], Any] = numba.njit(cache=True, nogil=True)
    HAVE_NUMBA = True
except Exception:  # a missing or broken numba: the numpy solver takes over
    HAVE_NUMBA = False

    def _jit(f: Any) -> Any:
        return f


Kernel = Callable[..., None]
SHIFTS = (32, 16, 8, 4, 2, 1)
"""Parity of a word by folding."""
ONE = np.uint64(1)
DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
"""Index of the lowest set bit: table[((x & -x) * DEBRUIJN) >> 58]."""
_TABLE = np.zeros(64, dtype=np.int64)
for _j in range(64):
    _TABLE[((((1 << _j) * 0x03F79D71B4CB0A89) % 2**64) >> 58)] = _j


def compiled_solver() -> Kernel | None:
    """The compiled kernel, or None if numba is missing or XORC_JIT=0."""
    if not HAVE_NUMBA or os.environ.get("XORC_JIT", "1").strip() == "0":
        return None
    return _solve  # type: ignore[no-any-return]


@_jit
def _internal(word: np.uint64, n: int, st: int, t: int) -> np.uint64:  # pragma: no cover
    """A decoder-layout M word in the internal layout (oldest seed first), seeds before the
    stream start cleared (as `seqsolve.internal_words`)."""
    block = (ONE << np.uint64(n)) - ONE if n < 64 else ~np.uint64(0)
    w = np.uint64(0)
    for k in range(min(st, t + 1)):
        w |= ((word >> np.uint64(k * n)) & block) << np.uint64((st - 1 - k) * n)
    return w


@_jit
def _insert(w, r, b_coef, b_rhs, b_has):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Reduce row (w, r) at its lowest set bit until it becomes a pivot (returns 0) or
    vanishes (returns its target bits: errors where nonzero); visiting only the
    set bits (the lowest by a de Bruijn multiply)."""
    while w:
        j = _TABLE[((w & (~w + ONE)) * DEBRUIJN) >> np.uint64(58)]
        if not b_has[j]:
            b_coef[j] = w
            b_rhs[j] = r
            b_has[j] = True
            return np.uint8(0)
        w ^= b_coef[j]
        r ^= b_rhs[j]
    return r


@_jit
def _shift(b_coef, b_rhs, b_has, n):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Retire the oldest seed: the basis moves down by n columns."""
    for j in range(64):
        src = j + n
        if src < 64:
            b_coef[j] = b_coef[src] >> np.uint64(n)
            b_rhs[j] = b_rhs[src]
            b_has[j] = b_has[src]
        else:
            b_coef[j] = 0
            b_rhs[j] = 0
            b_has[j] = False


@_jit
def _solve_column(x, coef, rhs, has, p, j):  # type: ignore[no-untyped-def]  # pragma: no cover
    """x with column j, the pivot of row (coef, rhs), solved for plane p."""
    if not has:
        return x
    v = coef & x
    for sh in SHIFTS:
        v ^= v >> np.uint64(sh)
    return x | (((np.uint64((rhs >> p) & 1) ^ v) & ONE) << np.uint64(j))


@_jit
def _back(seeds, lane, b, r, n, st, n_planes):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Back-substitution of one lane (as `seqsolve._seeds`); b: last basis, r: retired."""
    steps = seeds.shape[1]
    block = (ONE << np.uint64(n)) - ONE if n < 64 else ~np.uint64(0)
    wmask = (ONE << np.uint64(n * st)) - ONE if n * st < 64 else ~np.uint64(0)
    for p in range(n_planes):
        x = np.uint64(0)
        for j in range(63, -1, -1):
            x = _solve_column(x, b[0][j], b[1][j], b[2][j], p, j)
        for k in range(st):
            if steps - st + k >= 0:
                seeds[lane, steps - st + k, p] = (x >> np.uint64(k * n)) & block
        for t in range(steps - 2, -1, -1):
            x = (x << np.uint64(n)) & wmask if n < 64 else np.uint64(0)
            for j in range(n - 1, -1, -1):
                x = _solve_column(x, r[0][t, j], r[1][t, j], r[2][t, j], p, j)
            if t - st + 1 >= 0:
                seeds[lane, t - st + 1, p] = x & block


@_jit
def _solve(coef, rhs, counts, n_in, stages, n_planes, seeds, errors):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Fill seeds (L, T, P) and errors (L, P); the algorithm of `seqsolve.solve_lanes`."""
    n_lanes, steps, _ = coef.shape
    for lane in range(n_lanes):
        n, st = n_in[lane], stages[lane]
        b = (np.zeros(64, np.uint64), np.zeros(64, np.uint8), np.zeros(64, np.bool_))
        r = (
            np.zeros((steps, 64), np.uint64),
            np.zeros((steps, 64), np.uint8),
            np.zeros((steps, 64), np.bool_),
        )
        for t in range(steps):
            for i in range(counts[lane, t]):
                w = _internal(coef[lane, t, i], n, st, t)
                left = _insert(w, rhs[lane, t, i], b[0], b[1], b[2])
                for p in range(n_planes):
                    errors[lane, p] += (left >> p) & 1
            if t < steps - 1:
                r[0][t, :] = b[0]
                r[1][t, :] = b[1]
                r[2][t, :n] = b[2][:n]
                _shift(b[0], b[1], b[2], n)
        _back(seeds, lane, b, r, n, st, n_planes)
