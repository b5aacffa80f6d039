"""Group scales inside GPTQ (docs/reconstruction.md "Group scales"; docs/format.md §3.4).

GPTQ's groupsize handling: the columns go in their natural order, and a group's scale is fixed
when the sweep reaches the group's first column, from the weights the error updates of the
columns before it left. The clipping ratio is chosen then, per row, by the output error
d H_gg d^T of rounding the group's columns to nearest at that scale (H_gg: H of the group's
columns), so the search costs one small product per ratio instead of a GPTQ run per ratio.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.quantize import max_level, scales_of


class GroupScales:
    """The scales of every group of a [groups, rows, F] weight, set as the sweep reaches them.

    Attributes:
        group: G, columns per group.
        scales: [groups, rows, ceil(F / G)] float32, filled by the calls.
        ratios: the clipping ratio chosen for each group (1.0 where not searched).
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        h: NDArray[np.float64],
        bits: int,
        scale_dtype: str,
        group: int,
        ratios: tuple[float, ...] = (1.0,),
    ) -> None:
        self.group, self.h, self.bits, self.scale_dtype = group, h, bits, scale_dtype
        self.candidates = ratios
        n_groups = -(-shape[2] // group)
        self.scales = np.ones((shape[0], shape[1], n_groups), np.float32)
        self.ratios = np.ones((shape[0], shape[1], n_groups))

    def __call__(
        self, w: NDArray[np.float64], pruned: NDArray[np.bool_], start: int
    ) -> NDArray[np.float64]:
        """[groups, rows] scales of the group whose first column is `start` (`w`, `pruned`:
        the group's columns as the sweep has them): max|w| of the weights not pruned so far,
        times the ratio of least error."""
        peak = np.where(pruned, 0.0, np.abs(w)).max(axis=2)
        top = float(max_level(self.bits))
        h = self.h[:, start : start + w.shape[2], start : start + w.shape[2]]
        best, best_err = None, None
        chosen = np.ones(peak.shape)
        for ratio in self.candidates:
            s = scales_of(peak * ratio, self.bits, self.scale_dtype).astype(np.float64)
            if len(self.candidates) == 1:
                best = s
                break
            q = np.where(pruned, 0.0, np.clip(np.rint(w / s[:, :, None]), -top, top))
            d = q * s[:, :, None] - w
            err = (np.matmul(d, h) * d).sum(axis=2)
            take = np.ones(err.shape, bool) if best_err is None else err < best_err
            best = s if best is None else np.where(take, s, best)
            best_err = err if best_err is None else np.where(take, err, best_err)
            chosen = np.where(take, ratio, chosen)
        assert best is not None
        self.scales[:, :, start // self.group] = best
        self.ratios[:, :, start // self.group] = chosen
        return best
