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
    """Per requested rate n: the winning seeds and their error counts and weights.

    Attributes:
        seeds: n -> (n_slices, planes) uint64 seed words.
        errors: n -> (planes,) total errors over all slices with the winning orders.
        weight: n -> (planes,) total error weight with the winning orders.
    """

    seeds: dict[int, NDArray[np.uint64]]
    errors: dict[int, NDArray[np.int64]]
    weight: dict[int, NDArray[np.float64]]


def _snapshot(
    rhs: NDArray[np.uint8],
    used: NDArray[np.bool_],
    pivots: NDArray[np.int64],
    weights: NDArray[np.float32],
    n_planes: int,
) -> tuple[NDArray[np.uint64], NDArray[np.int32], NDArray[np.float32]]:
    """Seeds (B, P), error counts (B, P) and error weights (B, P) of the current state."""
    b = rhs.shape[0]
    n = pivots.shape[1]
    if n:
        g = np.take_along_axis(rhs, np.maximum(pivots, 0), axis=1)
        g[pivots < 0] = 0
        gbits = np.unpackbits(g[..., None], axis=-1, bitorder="little")[..., :n_planes]
        seeds = bitio.to_words(gbits.transpose(0, 2, 1))[..., 0]
    else:
        seeds = np.zeros((b, n_planes), dtype=np.uint64)
    err = np.where(used, np.uint8(0), rhs)
    ebits = np.unpackbits(err[..., None], axis=-1, bitorder="little")[..., :n_planes]
    counts = ebits.sum(axis=1, dtype=np.int32)
    wsum = np.einsum("bkp,bk->bp", ebits, weights, dtype=np.float32)
    return seeds, counts, wsum


def eliminate(
    coef: NDArray[np.uint64],
    rhs: NDArray[np.uint8],
    weights: NDArray[np.float32],
    rates: Sequence[int],
    n_planes: int,
) -> dict[int, tuple[NDArray[np.uint64], NDArray[np.int32], NDArray[np.float32]]]:
    """Gauss-Jordan over GF(2) on a batch; snapshot (seeds, counts, weights) at each rate.

    `coef` (B, K) holds each row's M word, `rhs` (B, K) its target bits (bit i = plane i),
    `weights` (B, K) its error weight. Padding rows are all-zero and never pivot. Modifies
    `coef` and `rhs` in place.
    """
    b, k = coef.shape
    ar = np.arange(b)
    unused = np.ones((b, k), dtype=bool)
    n_cols = max(rates)
    pivots = np.full((b, n_cols), -1, dtype=np.int64)
    want = set(rates)
    out = {}
    if 0 in want:
        out[0] = _snapshot(rhs, ~unused, pivots[:, :0], weights, n_planes)
    has_bit = np.empty((b, k), dtype=bool)
    cand = np.empty((b, k), dtype=bool)
    for j in range(n_cols):
        np.not_equal(coef & np.uint64(1 << j), 0, out=has_bit)
        np.logical_and(has_bit, unused, out=cand)
        piv = cand.argmax(axis=1)
        has = cand[ar, piv]
        prow = coef[ar, piv]
        prhs = rhs[ar, piv]
        has_bit[ar, piv] = False
        has_bit &= has[:, None]
        np.bitwise_xor(coef, prow[:, None], out=coef, where=has_bit)
        np.bitwise_xor(rhs, prhs[:, None], out=rhs, where=has_bit)
        unused[ar, piv] &= ~has
        pivots[:, j] = np.where(has, piv, -1)
        if j + 1 in want:
            out[j + 1] = _snapshot(rhs, ~unused, pivots[:, : j + 1], weights, n_planes)
    return out


def _chunks(counts: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Slices with care rows, sorted by care count, split into <= MAX_CHUNKS batches."""
    busy = np.flatnonzero(counts > 0)
    if busy.size == 0:
        return []
    order = busy[np.argsort(counts[busy], kind="stable")]
    n_chunks = min(MAX_CHUNKS, max(1, order.size // 256))
    return [c for c in np.array_split(order, n_chunks) if c.size]


def solve_group(
    slice_of: NDArray[np.int64],
    words: NDArray[np.uint64],
    targets: NDArray[np.uint8],
    weights: NDArray[np.float32],
    keys: Sequence[NDArray[np.float64]],
    n_slices: int,
    n_planes: int,
    rates: Sequence[int],
    by_weight: dict[int, NDArray[np.bool_]] | None = None,
) -> GroupSolution:
    """Solve every slice for every rate in `rates`, with one pivot order per key array.

    Args:
        slice_of: slice index of each care row (ascending is not required).
        words: M word of each care row (already cut to the largest rate's columns).
        targets: target bits of each care row, bit i = plane i (i < n_planes <= 8).
        weights: error weight of each care row (used for `by_weight` selection and reports).
        keys: one float array per restart; within a slice, rows are pivoted in ascending key.
        n_slices: number of slices (rows may leave some slices empty).
        n_planes: planes in `targets`.
        rates: the `n_in` values to solve for (0 .. 64).
        by_weight: n -> (n_planes,) bool: choose the winning order by error weight instead of
            error count for that rate and plane.
    """
    counts = np.bincount(slice_of, minlength=n_slices).astype(np.int64)
    rates = sorted(set(rates))
    seeds = {n: np.zeros((n_slices, n_planes), dtype=np.uint64) for n in rates}
    errors = {n: np.zeros(n_planes, dtype=np.int64) for n in rates}
    wsums = {n: np.zeros(n_planes, dtype=np.float64) for n in rates}
    n_restarts = len(keys)
    # Rank of each row inside its slice, per restart.
    ranks = []
    for key in keys:
        order = np.lexsort((key, slice_of))
        start = np.cumsum(counts) - counts
        rank = np.empty(slice_of.size, dtype=np.int64)
        rank[order] = np.arange(slice_of.size) - start[slice_of[order]]
        ranks.append(rank)
    local = np.full(n_slices, -1, dtype=np.int64)
    for chunk in _chunks(counts):
        bc, kc = chunk.size, int(counts[chunk].max())
        local[:] = -1
        local[chunk] = np.arange(bc)
        rows = np.flatnonzero(local[slice_of] >= 0)
        lb = local[slice_of[rows]]
        coef = np.zeros((n_restarts * bc, kc), dtype=np.uint64)
        rhs = np.zeros((n_restarts * bc, kc), dtype=np.uint8)
        wts = np.zeros((n_restarts * bc, kc), dtype=np.float32)
        for r in range(n_restarts):
            at = (r * bc + lb, ranks[r][rows])
            coef[at] = words[rows]
            rhs[at] = targets[rows]
            wts[at] = weights[rows]
        snaps = eliminate(coef, rhs, wts, rates, n_planes)
        for n, (sd, cnt, ws) in snaps.items():
            sd = sd.reshape(n_restarts, bc, n_planes)
            cnt = cnt.reshape(n_restarts, bc, n_planes)
            ws = ws.reshape(n_restarts, bc, n_planes)
            score = cnt.astype(np.float64)
            if by_weight is not None and n in by_weight:
                score = np.where(by_weight[n][None, None, :], ws, score)
            best = score.argmin(axis=0)[None]
            seeds[n][chunk] = np.take_along_axis(sd, best, axis=0)[0]
            errors[n] += np.take_along_axis(cnt, best, axis=0)[0].sum(axis=0)
            wsums[n] += np.take_along_axis(ws, best, axis=0)[0].sum(axis=0, dtype=np.float64)
    return GroupSolution(seeds, errors, wsums)
