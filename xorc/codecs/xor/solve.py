"""The encoder's solver: batched Gauss-Jordan elimination over GF(2) (docs/codecs/xor.md §9).

One call solves every slice of a tensor, for several planes and several rates at once:

* rows are the care rows of M (uint64 words, column j = bit j), compacted per slice into a
  `(slices, K)` array in pivot order; the planes' target bits ride along in a parallel uint8
  array (bit i = plane i of the group), so one elimination serves all planes of the group;
* columns are processed in order 0, 1, ...; the pivot of column j is the first unused row with
  bit j set (so rows early in the pivot order are satisfied first), and it is XORed into every
  other row with bit j;
* M's rates are column prefixes, so the state after column k solves `n_in = k`; the solver
  snapshots it at each requested rate: seed bit j = target bits of column j's pivot row (free
  columns 0); errors = unused rows whose target bits are still 1;
* restarts: R pivot orders are stacked along the slice axis; per slice, plane and rate the order
  with the fewest errors (or least error weight) wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio

MAX_CHUNKS = 4
"""Slices are grouped by care count into at most this many batches, to limit padding."""


@dataclass(frozen=True)
class GroupSolution:
    """Per requested rate n: the winning seeds and their total error counts.

    Attributes:
        seeds: n -> (n_slices, planes) uint64 seed words (empty dict without seeds).
        errors: n -> (planes,) total errors over all slices with the winning orders.
    """

    seeds: dict[int, NDArray[np.uint64]]
    errors: dict[int, NDArray[np.int64]]


def _snapshot(
    rhs: NDArray[np.uint8],
    unused: NDArray[np.bool_],
    pivots: NDArray[np.int64] | None,
    weights: NDArray[np.float32] | None,
    n_planes: int,
) -> tuple[NDArray[np.uint64] | None, NDArray[np.int32], NDArray[np.float32] | None]:
    """Seeds (B, P) (when `pivots` is given), error counts (B, P) and error weights (B, P,
    when `weights` is given) of the current state."""
    b = rhs.shape[0]
    seeds = None
    if pivots is not None:
        seeds = np.zeros((b, n_planes), dtype=np.uint64)
        if pivots.shape[1]:
            g = np.take_along_axis(rhs, np.maximum(pivots, 0), axis=1)
            g[pivots < 0] = 0
            for p in range(n_planes):
                seeds[:, p] = bitio.to_words((g >> np.uint8(p)) & np.uint8(1))[:, 0]
    err = rhs * unused
    counts = np.empty((b, n_planes), dtype=np.int32)
    wsum = None if weights is None else np.empty((b, n_planes), dtype=np.float32)
    for p in range(n_planes):
        bit = (err >> np.uint8(p)) & np.uint8(1)
        counts[:, p] = bit.sum(axis=1, dtype=np.int32)
        if wsum is not None:
            wsum[:, p] = np.einsum("bk,bk->b", bit, weights, dtype=np.float32)
    return seeds, counts, wsum


def eliminate(
    coef: NDArray[np.uint64],
    rhs: NDArray[np.uint8],
    weights: NDArray[np.float32] | None,
    rates: Sequence[int],
    n_planes: int,
    with_seeds: bool = True,
) -> dict[int, tuple[NDArray[np.uint64] | None, NDArray[np.int32], NDArray[np.float32] | None]]:
    """Gauss-Jordan over GF(2) on a batch; snapshot (seeds, counts, weights) at each rate.

    `coef` (B, K) holds each row's M word, `rhs` (B, K) its target bits (bit i = plane i),
    `weights` (B, K) its error weight (None: no weights). Padding rows are all-zero and never
    pivot. Modifies `coef` and `rhs` in place. Without `with_seeds` only errors are reported.
    """
    b, k = coef.shape
    ar = np.arange(b)
    unused = np.ones((b, k), dtype=bool)
    n_cols = max(rates)
    pivots = np.full((b, n_cols), -1, dtype=np.int64)
    want = set(rates)
    out = {}
    if 0 in want:
        out[0] = _snapshot(rhs, unused, pivots[:, :0] if with_seeds else None, weights, n_planes)
    has_bit = np.empty((b, k), dtype=bool)
    cand = np.empty((b, k), dtype=bool)
    tmp64 = np.empty((b, k), dtype=np.uint64)
    tmp8 = np.empty((b, k), dtype=np.uint8)
    zero64, zero8 = np.uint64(0), np.uint8(0)
    for j in range(n_cols):
        np.bitwise_and(coef, np.uint64(1 << j), out=tmp64)
        np.not_equal(tmp64, 0, out=has_bit)
        np.logical_and(has_bit, unused, out=cand)
        piv = cand.argmax(axis=1)
        has = cand[ar, piv]
        prow = np.where(has, coef[ar, piv], zero64)
        prhs = np.where(has, rhs[ar, piv], zero8)
        # XOR the pivot row into every row with bit j (itself included), then restore it.
        np.multiply(has_bit, prow[:, None], out=tmp64)
        np.bitwise_xor(coef, tmp64, out=coef)
        np.multiply(has_bit, prhs[:, None], out=tmp8)
        np.bitwise_xor(rhs, tmp8, out=rhs)
        coef[ar, piv] ^= prow
        rhs[ar, piv] ^= prhs
        unused[ar, piv] &= ~has
        pivots[:, j] = np.where(has, piv, -1)
        if j + 1 in want:
            piv_now = pivots[:, : j + 1] if with_seeds else None
            out[j + 1] = _snapshot(rhs, unused, piv_now, weights, n_planes)
    return out


def _chunks(counts: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Slices with care rows, sorted by care count, split into <= MAX_CHUNKS batches."""
    busy = np.flatnonzero(counts > 0)
    if busy.size == 0:
        return []
    order = busy[np.argsort(counts[busy], kind="stable")]
    n_chunks = min(MAX_CHUNKS, max(1, order.size // 256))
    return [c for c in np.array_split(order, n_chunks) if c.size]


def _ranks(slice_of: NDArray[np.int64], counts: NDArray[np.int64], key: NDArray) -> NDArray:
    """Rank of each row inside its slice when the slice's rows are sorted by `key` (ties in
    row order). When `slice_of` is nondecreasing (rows in C order, as the encoders give them)
    the rows are laid out as a (slices, max count) matrix padded with +inf and each matrix row
    is sorted stably: the same ranks as the lexsort, about 3x faster."""
    start = np.cumsum(counts) - counts
    if bool(np.any(slice_of[1:] < slice_of[:-1])):
        order = np.lexsort((key, slice_of))
        rank = np.empty(slice_of.size, dtype=np.int64)
        rank[order] = np.arange(slice_of.size) - start[slice_of[order]]
        return rank
    col = np.arange(slice_of.size) - start[slice_of]
    if slice_of.size == 0 or bool(np.all(key[1:] >= key[:-1])):
        return col  # type: ignore[no-any-return]
    width = int(counts.max())
    pad = np.full((counts.size, width), np.inf)
    pad[slice_of, col] = key
    order = np.argsort(pad, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(width)[None, :], axis=1)
    return rank[slice_of, col]  # type: ignore[no-any-return]


def _chunk_system(
    rows: NDArray[np.int64],
    lb: NDArray[np.int64],
    size: tuple[int, int],
    ranks: list[NDArray[np.int64]],
    words: NDArray[np.uint64],
    targets: NDArray[np.uint8],
    weights: NDArray[np.float32] | None,
    by_weight: dict[int, NDArray[np.bool_]] | None,
) -> tuple[NDArray[np.uint64], NDArray[np.uint8], NDArray[np.float32] | None]:
    """The stacked systems of one chunk of slices, one copy per restart, rows in pivot order:
    M words, targets and (for `by_weight`) error weights, shape (restarts x slices, rows)."""
    bc, kc = size
    n = len(ranks) * bc
    coef = np.zeros((n, kc), dtype=np.uint64)
    rhs = np.zeros((n, kc), dtype=np.uint8)
    wts = None if by_weight is None else np.zeros((n, kc), dtype=np.float32)
    for r, rank in enumerate(ranks):
        at = (r * bc + lb, rank[rows])
        coef[at] = words[rows]
        rhs[at] = targets[rows]
        if wts is not None and weights is not None:
            wts[at] = weights[rows]
    return coef, rhs, wts


def solve_group(
    slice_of: NDArray[np.int64],
    words: NDArray[np.uint64],
    targets: NDArray[np.uint8],
    keys: Sequence[NDArray[np.float64]],
    n_slices: int,
    n_planes: int,
    rates: Sequence[int],
    weights: NDArray[np.float32] | None = None,
    by_weight: dict[int, NDArray[np.bool_]] | None = None,
    with_seeds: bool = True,
) -> GroupSolution:
    """Solve every slice for every rate in `rates`, with one pivot order per key array.

    Args:
        slice_of: slice index of each care row.
        words: M word of each care row.
        targets: target bits of each care row, bit i = plane i (i < n_planes <= 8).
        keys: one float array per restart; within a slice, rows are pivoted in ascending key.
        n_slices: number of slices (some may have no rows).
        n_planes: planes in `targets`.
        rates: the `n_in` values to solve for (0 .. 64).
        weights: error weight of each care row, for `by_weight`.
        by_weight: n -> (n_planes,) bool: for that rate and plane, the winning order is the one
            with the least error weight instead of the fewest errors.
        with_seeds: False to report error counts only (rate scans).
    """
    counts = np.bincount(slice_of, minlength=n_slices).astype(np.int64)
    rates = sorted(set(rates))
    seeds = (
        {n: np.zeros((n_slices, n_planes), dtype=np.uint64) for n in rates} if with_seeds else {}
    )
    errors = {n: np.zeros(n_planes, dtype=np.int64) for n in rates}
    n_restarts = len(keys)
    ranks = [_ranks(slice_of, counts, key) for key in keys]
    local = np.full(n_slices, -1, dtype=np.int64)
    for chunk in _chunks(counts):
        bc, kc = chunk.size, int(counts[chunk].max())
        local[:] = -1
        local[chunk] = np.arange(bc)
        rows = np.flatnonzero(local[slice_of] >= 0)
        coef, rhs, wts = _chunk_system(
            rows, local[slice_of[rows]], (bc, kc), ranks, words, targets, weights, by_weight
        )
        snaps = eliminate(coef, rhs, wts, rates, n_planes, with_seeds)
        for n, (sd, cnt, ws) in snaps.items():
            cnt = cnt.reshape(n_restarts, bc, n_planes)
            score = cnt.astype(np.float64)
            if ws is not None and by_weight is not None and n in by_weight:
                ws = ws.reshape(n_restarts, bc, n_planes)
                score = np.where(by_weight[n][None, None, :], ws, score)
            best = score.argmin(axis=0)[None]
            errors[n] += np.take_along_axis(cnt, best, axis=0)[0].sum(axis=0)
            if sd is not None:
                sd = sd.reshape(n_restarts, bc, n_planes)
                seeds[n][chunk] = np.take_along_axis(sd, best, axis=0)[0]
    return GroupSolution(seeds, errors)
