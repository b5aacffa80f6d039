"""Optimal weighted 1-D k-means over integer levels, with nonzero integer centroids.

Spec: docs/codecs/dictionary.md, section 7.1. Encoder side only; the decoder never imports it.

In one dimension the optimal clusters are contiguous runs of the sorted points, so the exact
optimum for every k comes from a dynamic programme over split points (Ckmeans.1d.dp without the
speed-ups; at most 2**(Q-1)*2 - 2 <= 254 distinct points per group, so an O(k * U^2) table built
with numpy is cheap). A cluster's centroid is the integer closest to its weighted mean (halves
away from zero), except that 0 is replaced by +1 or -1 (the sign of the mean, + for a zero mean):
zero is reserved for pruned weights. That centroid is the best nonzero integer for the cluster,
so the programme is exact over all choices of nonzero integer centroids.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def nonzero_centroid(mean: NDArray[np.float64]) -> NDArray[np.int64]:
    """The best nonzero integer centroid for clusters with these weighted means."""
    rounded = np.sign(mean) * np.floor(np.abs(mean) + 0.5)
    fallback = np.where(mean < 0, -1.0, 1.0)
    return np.where(rounded == 0, fallback, rounded).astype(np.int64)


class LevelKMeans:
    """Optimal weighted k-means of distinct sorted nonzero integer points, extended lazily in k.

    Memory is O(k * U): the U x U cluster-cost matrix is recomputed from prefix sums at each
    step of the programme instead of being kept, so many groups can be held at once.

    Args:
        x: the distinct points, ascending (int).
        w: their positive weights (for the squared error).
        counts: how many weights each point stands for (for the rate of `entropy_constrained`);
            defaults to `w`.
    """

    def __init__(
        self,
        x: NDArray[np.int64],
        w: NDArray[np.float64],
        counts: NDArray[np.float64] | None = None,
    ) -> None:
        self.x = np.asarray(x, dtype=np.int64)
        self.w = np.asarray(w, dtype=np.float64)
        self.counts = self.w if counts is None else np.asarray(counts, dtype=np.float64)
        self._s0 = np.concatenate([[0.0], np.cumsum(self.w)])
        self._s1 = np.concatenate([[0.0], np.cumsum(self.w * self.x)])
        self._s2 = np.concatenate([[0.0], np.cumsum(self.w * self.x * self.x)])
        self._best: list[NDArray[np.float64]] = []  # best[k-1][i]: points 0..i in k clusters
        self._split: list[NDArray[np.int64]] = []  # first point of the last cluster

    @property
    def n_points(self) -> int:
        return int(self.x.size)

    def _moments(
        self, first: NDArray[np.int64], last: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        return (
            self._s0[last + 1] - self._s0[first],
            self._s1[last + 1] - self._s1[first],
            self._s2[last + 1] - self._s2[first],
        )

    def centroids(self, first: NDArray[np.int64], last: NDArray[np.int64]) -> NDArray[np.int64]:
        """Centroid of the clusters made of points first..last (inclusive)."""
        c0, c1, _ = self._moments(first, last)
        return nonzero_centroid(c1 / np.where(c0 > 0, c0, 1.0))

    def _cost(self) -> NDArray[np.float64]:
        """cost[j, i]: squared error of one cluster of points j..i; inf when j > i."""
        u = self.n_points
        first = np.arange(u)[:, None]
        last = np.arange(u)[None, :]
        valid = first <= last
        first_v = np.where(valid, first, last)
        c0, c1, c2 = self._moments(first_v, last)
        c = self.centroids(first_v, last).astype(np.float64)
        cost = np.maximum(c2 - 2.0 * c * c1 + c * c * c0, 0.0)
        return np.where(valid, cost, np.inf)

    def _clusters(
        self, firsts: NDArray[np.int64], lasts: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Distinct centroids and per-point labels of a partition into runs first..last."""
        per_point = np.repeat(self.centroids(firsts, lasts), lasts - firsts + 1)
        distinct, labels = np.unique(per_point, return_inverse=True)
        return distinct.astype(np.int64), labels.astype(np.int64).ravel()

    def entropy_constrained(
        self, lam: float, total: float, entry_bits: float
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Entropy-constrained scalar quantizer: minimise error + lam * bits.

        A cluster of count n costs its weighted squared error plus
        ``lam * (n * log2(total / n) + entry_bits)``: its share of an ideal entropy code over
        `total` symbols and its codebook entry. The cells of the optimum are
        still runs of sorted points, so a programme over the last split point finds it exactly,
        with no limit on the number of clusters: one vectorized step per point.
        """
        u = self.n_points
        if u == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        n0 = np.concatenate([[0.0], np.cumsum(self.counts)])
        cost = self._cost()
        first = np.arange(u)[:, None]
        last = np.arange(u)[None, :]
        n = np.where(first <= last, n0[last + 1] - n0[np.minimum(first, last)], 0.0)
        safe = np.where(n > 0, n, 1.0)
        cost = cost + lam * (np.where(n > 0, n * np.log2(total / safe), 0.0) + entry_bits)
        best = np.zeros(u + 1)
        split = np.zeros(u, dtype=np.int64)
        for i in range(u):  # one step per distinct level (at most 254)
            options = best[: i + 1] + cost[: i + 1, i]
            split[i] = int(np.argmin(options))
            best[i + 1] = options[split[i]]
        firsts, lasts = [], []
        end = u - 1
        while end >= 0:  # one step per cluster
            firsts.append(int(split[end]))
            lasts.append(end)
            end = firsts[-1] - 1
        return self._clusters(np.array(firsts[::-1]), np.array(lasts[::-1]))

    def _extend(self, k: int) -> None:
        if len(self._best) >= k:
            return
        cost = self._cost()
        while len(self._best) < k:
            if not self._best:
                self._best.append(cost[0].copy())
                self._split.append(np.zeros(self.n_points, dtype=np.int64))
                continue
            prev = np.concatenate([[np.inf], self._best[-1][:-1]])  # best with the split at j
            total = prev[:, None] + cost
            split = np.argmin(total, axis=0)
            self._best.append(total[split, np.arange(self.n_points)])
            self._split.append(split)

    def sse(self, k: int) -> float:
        """The smallest weighted squared error with at most k clusters (0 when k >= points)."""
        if k >= self.n_points:
            return 0.0
        self._extend(k)
        return float(self._best[k - 1][-1])

    def solve(self, k: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Centroids (ascending, distinct) and, per point, the index of its centroid."""
        u = self.n_points
        if k >= u:
            return self.x.copy(), np.arange(u, dtype=np.int64)
        self._extend(k)
        firsts = np.zeros(k, dtype=np.int64)
        lasts = np.zeros(k, dtype=np.int64)
        last = u - 1
        for level in range(k, 0, -1):  # one step per cluster, not per point
            first = int(self._split[level - 1][last])
            firsts[level - 1], lasts[level - 1] = first, last
            last = first - 1
        return self._clusters(firsts, lasts)
