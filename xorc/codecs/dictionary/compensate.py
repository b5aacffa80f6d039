"""Error-compensated assignment of weights to codebook entries (docs/codecs/dictionary.md, 7.3).

Encoder only: the codebooks, the streams and the decoder are unchanged; what changes is which
entry each weight gets. Nearest-entry trimming minimises each weight's own error. A layer's
output error for an input x is (W - Q) x, so with the input's second moment H = E[x x^T]
(from `--calib`) the error that matters is the trace of (W - Q) H (W - Q)^T. The optimal brain
compression / GPTQ procedure (Frantar et al., ICLR 2023) lowers it: columns (input features)
are assigned one at a time, and the error of each is pushed onto the columns not assigned yet
through the inverse of H, so later columns absorb what earlier ones got wrong.

Here a column's weights are assigned to the nearest entry of their own row's codebook (rows of
one group share one), pruned weights stay zero and kept ones stay nonzero, as trimming
guarantees. Columns go in order of decreasing H diagonal (the most active inputs first), in
blocks whose updates to the later columns are one matrix product.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

DAMPING = 0.01
"""Added to H's diagonal, as a fraction of its mean diagonal, so its inverse exists."""

BLOCK = 128
"""Columns per block: inside a block the updates are rank-1; across blocks, one product."""


class Compensator:
    """One [rows, cols] weight matrix and its input moment, ready to assign to any codebooks.

    Args:
        exact: the weights in level units (the float weight over its scale, not rounded).
        nonzero: which weights are kept; the others are assigned 0.
        moment: [cols, cols] second moment of the layer's input over the calibration data.
        group: rows per codebook.
    """

    def __init__(
        self,
        exact: NDArray[np.floating],
        nonzero: NDArray[np.bool_],
        moment: NDArray[np.floating],
        group: int,
    ) -> None:
        rows, cols = exact.shape
        h = np.array(moment, dtype=np.float64)
        dead = np.diag(h) <= 0  # an input that is always zero: its weights cannot matter
        h[dead, dead] = 1.0
        self.order = np.argsort(-np.diag(h), kind="stable")
        h = h[np.ix_(self.order, self.order)]
        h[np.diag_indices(cols)] += DAMPING * float(np.mean(np.diag(h)))
        # upper Cholesky factor of H^-1: row j holds how column j's error spreads to columns > j
        self.u = np.linalg.cholesky(np.linalg.inv(h)).T
        self.exact = np.where(dead[None, :], 0.0, exact.astype(np.float64))[:, self.order]
        self.keep = nonzero[:, self.order]
        self.group_of = np.arange(rows) // group

    def assign(self, books: list[NDArray[np.int64]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Assign every weight to an entry of its group's codebook (`books[g]`, ascending
        nonzero levels). Returns (values, index): the levels and their positions in the
        codebooks (0 for pruned weights), both [rows, cols] in the original column order."""
        rows, cols = self.exact.shape
        nearest = _Nearest(books, self.group_of)
        w = self.exact.copy()
        u = self.u
        values = np.zeros((rows, cols), dtype=np.int64)
        index = np.zeros((rows, cols), dtype=np.int64)
        for start in range(0, cols, BLOCK):
            stop = min(start + BLOCK, cols)
            err_block = np.zeros((rows, stop - start))
            for j in range(start, stop):
                column = w[:, j]
                level, pos = nearest(column)
                keep = self.keep[:, j]
                chosen = np.where(keep, level, 0)
                values[:, j] = chosen
                index[:, j] = np.where(keep, pos, 0)
                err = (column - chosen) / u[j, j]
                w[:, j + 1 : stop] -= np.outer(err, u[j, j + 1 : stop])
                err_block[:, j - start] = err
            w[:, stop:] -= err_block @ u[start:stop, stop:]
        inverse = np.argsort(self.order)
        return values[:, inverse], index[:, inverse]


class _Nearest:
    """Nearest entry of each row's codebook to a column of values, by one sorted search: the
    codebooks are laid end to end, group g shifted by g * span so that groups never mix."""

    def __init__(self, books: list[NDArray[np.int64]], group_of: NDArray[np.intp]) -> None:
        sizes = np.array([b.size for b in books], dtype=np.int64)
        self.first = (np.cumsum(sizes) - sizes)[group_of]  # each row's first entry
        self.size = sizes[group_of]
        levels = np.concatenate([b.astype(np.int64) for b in books]) if books else np.zeros(0)
        top = int(np.abs(levels).max(initial=0))
        self.span = 4 * top + 4
        self.top = top
        shift = np.repeat(np.arange(len(books), dtype=np.int64) * self.span, sizes)
        self.flat = (levels + shift).astype(np.float64)
        self.levels = levels
        self.offset = (group_of * self.span).astype(np.float64)

    def __call__(self, column: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(level, position in the row's codebook) per row; rows whose codebook is empty get
        level 0 (they hold no kept weight)."""
        if not self.levels.size:
            zeros = np.zeros(column.size, dtype=np.int64)
            return zeros, zeros
        last = np.maximum(self.size - 1, 0)
        first = np.minimum(self.first, self.flat.size - 1)  # empty codebooks: any valid index
        key = np.clip(column, -self.top - 1, self.top + 1) + self.offset
        right = np.clip(np.searchsorted(self.flat, key) - first, 0, last)
        left = np.maximum(right - 1, 0)
        at_left = self.flat[first + left]
        at_right = self.flat[first + right]
        pos = np.where(np.abs(key - at_left) <= np.abs(at_right - key), left, right)
        level = np.where(self.size > 0, self.levels[first + pos], 0)
        return level, np.where(self.size > 0, pos, 0)
