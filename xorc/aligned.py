"""Crossbar-aligned pruning, `--prune-structure kernel-group|crossbar` (docs/crossbar.md §3).

The units of `xorc.tiles` (an input channel's kernel within a crossbar column block, or a whole
R x C tile) are ranked by saliency per weight and the least salient are pruned until the next
would take the tensor past `--sparsity` of zeros; the rest stay dense in their tiles.

* Without calibration data the saliency of a unit is the sum of its squared weights.
* With it (an H per group, xorc/hessian.py), the OBS cost of removing the unit's features Q from
  each output row o it covers, with the other weights of the row compensating:
  sum_o w_oQ^T ([H^-1]_QQ)^-1 w_oQ. The pipeline then quantizes with GPTQ / SparseGPT-style
  updates (xorc/reconstruct.py, the unit mask fixed), so the surviving weights compensate.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.hessian import Hessian, matrix_form
from xorc.tiles import Structure, unit_ids

DAMP = 0.01


def structure_for(
    shape: tuple[int, ...], axis: int, kind: str, rows: int, cols: int, groups: int
) -> Structure:
    """The units of a weight: a Conv kernel is everything after the first two axes (output
    channel axis 0); a matrix has kernels of one feature."""
    kernel = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 and axis == 0 else 1
    return Structure(kind, rows, cols, max(kernel, 1), groups)


def prune(
    values: NDArray[np.float32],
    axis: int,
    sparsity: float,
    st: Structure,
    hess: Hessian | None,
) -> tuple[NDArray[np.float32], dict]:
    """The weights with the least salient units zeroed, and what was done (record stats)."""
    ids = matrix_form(unit_ids(values.shape, axis, st), axis)
    n_units = st.n_units(values.shape, axis)
    rows = matrix_form(values.astype(np.float64), axis)
    use_obs = hess is not None and hess.moment is not None and hess.moment.shape[0] == st.groups
    if use_obs:
        assert hess is not None and hess.moment is not None
        cost = _obs_costs(rows, hess.moment, st)
    else:
        cost = rows * rows
    saliency = np.bincount(ids.ravel(), weights=cost.ravel(), minlength=n_units)
    size = np.bincount(ids.ravel(), minlength=n_units)
    order = np.argsort(saliency / np.maximum(size, 1), kind="stable")
    target = int(np.floor(sparsity * values.size + 1e-9))
    take = order[: int(np.searchsorted(np.cumsum(size[order]), target, side="right"))]
    absent = np.zeros(n_units, bool)
    absent[take] = True
    mask = absent[unit_ids(values.shape, axis, st)]
    out = np.where(mask, 0, values).astype(values.dtype)
    info = {
        **st.to_json(),
        "saliency": "obs" if use_obs else "magnitude",
        "units": n_units,
        "pruned_units": int(absent.sum()),
    }
    return out, info


def _obs_costs(
    rows: NDArray[np.float64], moment: NDArray[np.float64], st: Structure
) -> NDArray[np.float64]:
    """Per weight position, its row's share of the OBS cost of removing its unit's features:
    cost[o, f] sums to w_oQ^T ([H^-1]_QQ)^-1 w_oQ over the f of each unit's feature block Q."""
    groups, features = moment.shape[0], moment.shape[1]
    side = st.rows if st.kind == "crossbar" else st.kernel
    n_blocks = -(-features // side)
    padded = n_blocks * side
    per = rows.shape[0] // groups
    out = np.empty_like(rows)
    for g in range(groups):
        h = moment[g]
        mean = float(np.mean(np.diag(h))) or 1.0
        dead = np.diag(h) <= 0
        h = h + np.diag(np.where(dead, mean, 0.0)) + DAMP * mean * np.eye(features)
        hinv = np.linalg.inv(h)
        full = np.eye(padded)
        full[:features, :features] = hinv
        idx = np.arange(padded).reshape(n_blocks, side)
        blocks = full[idx[:, :, None], idx[:, None, :]]  # [n_blocks, side, side]
        binv = np.linalg.inv(blocks)
        w = np.zeros((per, padded))
        w[:, :features] = rows[g * per : (g + 1) * per]
        w3 = w.reshape(per, n_blocks, side)
        share = w3 * np.einsum("bst,obt->obs", binv, w3)  # sums over s to the block's cost
        out[g * per : (g + 1) * per] = share.reshape(per, padded)[:, :features]
    return out


def prune_tensor(
    values: NDArray[np.float32],
    axis: int | None,
    sparsity: float,
    kind: str,
    preset: str,
    stats: object | None,
) -> tuple[NDArray[np.float32], tuple[Structure, dict] | None]:
    """`prune` for one pipeline tensor: its groups and H from the calibration statistics
    (`xorc.calibrate.InputStats`, or None), tiles from the crossbar preset. A weight without a
    channel axis, a vector, or (kernel-group) one whose rows fit one crossbar, so that pruning
    kernels frees no crossbar, is left as it is (None)."""
    from xorc.datapath.crossbar import get_preset

    if axis is None or values.ndim < 2 or sparsity <= 0:
        return values, None
    layer = getattr(stats, "layer", None)
    groups = max(getattr(layer, "group", 1), 1) if values.ndim > 2 else 1
    if values.shape[axis] % groups:
        groups = 1
    cfg = get_preset(preset)
    st = structure_for(values.shape, axis, kind, cfg.rows, cfg.cols, groups)
    if kind == "kernel-group" and st.grid(values.shape, axis)[2] <= cfg.rows:
        return values, None  # one row block: removing kernels frees no crossbar
    pruned, info = prune(values, axis, sparsity, st, getattr(stats, "hessian", None))
    return pruned, (st, info)
