"""Layer-wise reconstruction: GPTQ quantization and SparseGPT-style OBS pruning, in numpy.

A layer's output error for a weight change dW of its rows is dW H dW^T, H = E[x x^T] over the
calibration inputs (xorc/hessian.py). GPTQ (Frantar et al., 2022) quantizes one input column at
a time and spreads each column's rounding error over the columns not yet quantized with the row
of the upper Cholesky factor U of H^-1 (H^-1 = U^T U); columns go in blocks of BLOCK with lazy
updates of the rest. OBS pruning (SparseGPT, Frantar & Alistarh, 2023) chooses, per block of
columns, the weights of least saliency w^2 / U_jj^2 and updates the others the same way, jointly
with quantization: unstructured (at least S zeros) or N:M (at most N nonzeros in each M
consecutive input features of a row).

Scales are xorc's own (`quantize.quantize`: max|w| per output channel over the original weights,
bfloat16 rounding included) and stay fixed; the levels land in the same range as
round-to-nearest, so every codec downstream is unchanged. With group scales (`Method.group` G)
the columns go in their natural order and a group's scale is fixed when the sweep reaches the
group's first column, from the weights the error updates left (GPTQ's groupsize), its clipping
ratio chosen then by the output error of the group's columns. Everything runs over all output
channels and all groups of a layer at once. See docs/reconstruction.md.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.groupscale import GroupScales
from xorc.hessian import TARGET_DAMP, Hessian, dead_fixed, matrix_form, original_target
from xorc.quantize import max_level, quantize

BLOCK = 128
DAMP_TRIES = 6
CLIP_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
"""Clipping search: each row's scale is max|w| times the ratio whose GPTQ result has the least
output error d H d^T (1.0 first, so a tie keeps the unclipped scale)."""
CLIP_MAX_BITS = 6
"""The search runs at this many bits or fewer (at 8 bits clipping gains nothing)."""

_factor_memo: dict[tuple, tuple] | None = None  # set by shared_factors()


@dataclass(frozen=True)
class Method:
    """How one tensor is pruned and quantized with its H.

    Attributes:
        bits: Q.
        sparsity: at least this fraction of zeros (unstructured), when `pattern` is None.
        pattern: (N, M): at most N nonzeros in every M consecutive input features, or None.
        prune: "obs" (saliency from H, with updates) or "magnitude" (a fixed mask up front).
        rounding: True: GPTQ (errors of rounding are compensated); False: OBS updates only,
            then round to nearest.
        act_order: columns by decreasing diag(H) when only quantizing (pruning keeps the
            natural order, as SparseGPT does; an N:M pattern needs it).
        damp: dampening, as a fraction of the mean of diag(H).
        scale_dtype: "float32", "bfloat16" or "pow2", as `quantize` (GPTQ rounds against it).
        clip: search each row's clipping ratio (CLIP_RATIOS) at CLIP_MAX_BITS or fewer
            (with rounding only); with `group`, each group's.
        group: G, one scale per G consecutive input features of a row (docs/format.md §3.4
            "Group scales"; per-channel scales only), or None: one per row.
    """

    bits: int
    sparsity: float = 0.0
    pattern: tuple[int, int] | None = None
    prune: str = "obs"
    rounding: bool = True
    act_order: bool = True
    damp: float = 0.01
    scale_dtype: str = "bfloat16"
    clip: bool = False
    group: int | None = None


def reconstruct(
    weight: NDArray[np.floating],
    out_axis: int,
    per_channel: bool,
    hess: Hessian,
    method: Method,
    mask: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.int16], NDArray[np.float32], dict]:
    """Levels and scales of `weight` (as `quantize` returns them) and what was done.

    `mask` (same shape, True = pruned) are weights that end up zero in any case (magnitude
    pruning's choice, or zeros of the model); with `method.prune` "obs" the OBS saliency
    chooses the rest up to the sparsity or pattern. Raises ValueError when H does not fit.
    """
    if hess.moment is None:
        raise ValueError(f"no H: {hess.reason}")
    w = np.asarray(weight, np.float64)
    rows = matrix_form(w, out_axis)
    groups, width = hess.moment.shape[0], hess.moment.shape[1]
    if rows.shape[1] != width or rows.shape[0] % groups:
        raise ValueError(f"H of {groups} x {width} features does not fit a weight {w.shape}")
    shape3 = (groups, rows.shape[0] // groups, width)
    fixed = None if mask is None else matrix_form(mask, out_axis).reshape(shape3)
    if hess.cross is not None:  # asymmetric order: GPTQ approximates the original output
        rows = original_target(rows.reshape(shape3), hess, TARGET_DAMP).reshape(rows.shape)
        moved = np.moveaxis(w, out_axis, 0).shape
        w = np.moveaxis(rows.reshape(moved), 0, out_axis)
    if method.group is not None:
        if not per_channel:
            raise ValueError("group scales need per-channel scales")
        levels3, scales, info = _solve_grouped(rows.reshape(shape3), hess, method, fixed)
        return _finish(levels3, scales, info, w.shape, out_axis, hess)
    search = method.clip and method.rounding and method.bits <= CLIP_MAX_BITS
    best = None
    for ratio in CLIP_RATIOS if search else (1.0,):
        axis = out_axis if per_channel else None
        _, scales = quantize(w * ratio, method.bits, axis, method.scale_dtype)
        per_row = np.broadcast_to(scales.astype(np.float64), (rows.shape[0],)).reshape(shape3[:2])
        levels3, info = _solve(rows.reshape(shape3), per_row, hess, method, fixed)
        if not search:
            break
        err = _row_error(rows.reshape(shape3), levels3 * per_row[:, :, None], hess.moment)
        err = err if per_channel else np.broadcast_to(err.sum(), err.shape)
        best = _better(best, (levels3, scales, err, ratio), per_channel)
    if best is not None:
        levels3, scales, _, ratios = best
        info["clip"] = {"ratios": list(CLIP_RATIOS), "mean_ratio": float(np.mean(ratios))}
    return _finish(levels3, scales, info, w.shape, out_axis, hess)


def _finish(
    levels3: NDArray[np.int16],
    scales: NDArray[np.float32],
    info: dict,
    shape: tuple[int, ...],
    out_axis: int,
    hess: Hessian,
) -> tuple[NDArray[np.int16], NDArray[np.float32], dict]:
    """[groups, rows, F] levels back in the weight's shape; the sample count noted."""
    moved = (shape[out_axis], *(d for i, d in enumerate(shape) if i != out_axis))
    levels = np.moveaxis(levels3.reshape(moved), 0, out_axis).astype(np.int16)
    info["n_samples"] = hess.n_samples
    if hess.cross is not None:
        info["target"] = "original"  # asymmetric order (original_target)
    return np.ascontiguousarray(levels), scales, info


def _solve_grouped(
    w: NDArray[np.float64], hess: Hessian, method: Method, fixed: NDArray[np.bool_] | None
) -> tuple[NDArray[np.int16], NDArray[np.float32], dict]:
    """[groups, rows, F] levels and the group scales (C x ceil(F / G), channel major): the
    columns in natural order, each group's scale fixed at its first column (`GroupScales`)."""
    h = np.array(hess.moment, dtype=np.float64)
    u, damp = _inverse_factor(h, method.damp)
    search = method.clip and method.rounding and method.bits <= CLIP_MAX_BITS
    ratios = CLIP_RATIOS if search else (1.0,)
    pick = GroupScales(w.shape, h, method.bits, method.scale_dtype, method.group, ratios)
    scales = np.zeros(w.shape)
    levels = _columns(w.copy(), scales, u, method, fixed, pick)
    info = {
        "method": "gptq" if method.rounding else "none",
        "prune": None if (method.sparsity <= 0 and method.pattern is None) else method.prune,
        "damp": damp,
        "act_order": False,
        "group_size": method.group,
    }
    if search:
        info["clip"] = {"ratios": list(CLIP_RATIOS), "mean_ratio": float(np.mean(pick.ratios))}
    return levels, pick.scales.reshape(-1), info


def _row_error(
    rows: NDArray[np.float64], deq: NDArray[np.float64], h: NDArray[np.float64]
) -> NDArray[np.float64]:
    """[groups, rows]: each row's output error d H d^T, d = deq - rows."""
    d = deq - rows
    return (np.matmul(d, h) * d).sum(axis=2)


def _better(best: tuple | None, trial: tuple, per_channel: bool) -> tuple:
    """Per row (or, per tensor, as a whole), the levels, scale and error of the smaller error
    of `best` and `trial` ((levels [g, r, F], scales, error [g, r], ratio per row))."""
    levels, scales, err, ratio = trial
    if best is None:
        return levels, scales.copy(), err.copy(), np.full(err.size, ratio)
    b_levels, b_scales, b_err, b_ratio = best
    take = err < b_err
    b_levels = np.where(take[:, :, None], levels, b_levels)
    flat = take.reshape(-1)
    if per_channel:
        b_scales = np.where(flat, scales, b_scales)
    elif flat.all():
        b_scales = scales.copy()
    return b_levels, b_scales, np.where(take, err, b_err), np.where(flat, ratio, b_ratio)


def _solve(
    w: NDArray[np.float64],
    scales: NDArray[np.float64],
    hess: Hessian,
    method: Method,
    fixed: NDArray[np.bool_] | None,
) -> tuple[NDArray[np.int16], dict]:
    """[groups, rows, F] levels by GPTQ / OBS, in the original column order."""
    h = np.array(hess.moment, dtype=np.float64)
    order = _column_order(h, method)
    idx = np.arange(h.shape[0])[:, None]
    w = np.take_along_axis(w, order[:, None, :], axis=2).copy()
    h = h[idx[:, :, None], order[:, :, None], order[:, None, :]]
    if fixed is not None:
        fixed = np.take_along_axis(fixed, order[:, None, :], axis=2)
    u, damp = _inverse_factor(h, method.damp)
    levels = _columns(w, scales[:, :, None], u, method, fixed)
    out = np.empty_like(levels)
    np.put_along_axis(out, np.broadcast_to(order[:, None, :], out.shape), levels, axis=2)
    info = {
        "method": "gptq" if method.rounding else "none",
        "prune": None if (method.sparsity <= 0 and method.pattern is None) else method.prune,
        "damp": damp,
        "act_order": _act_order(method),
    }
    return out, info


def _act_order(method: Method) -> bool:
    return method.act_order and method.pattern is None and method.sparsity <= 0


def _column_order(h: NDArray[np.float64], method: Method) -> NDArray[np.intp]:
    """Per group, the order the columns are processed in (stable, so deterministic)."""
    diag = np.diagonal(h, axis1=1, axis2=2)
    if _act_order(method):
        return np.argsort(-diag, axis=1, kind="stable")
    return np.broadcast_to(np.arange(h.shape[1]), diag.shape).copy()


@contextmanager
def shared_factors() -> Iterator[None]:
    """Within the block, GPTQ's factor of (H + lambda I)^-1 is computed once per H, column
    order and damp, not once per call (the sensitivity analysis tries one layer, one H, at many
    settings). The memo returns the same arrays, which no caller modifies."""
    global _factor_memo
    outer = _factor_memo
    _factor_memo = {} if outer is None else outer
    try:
        yield
    finally:
        _factor_memo = outer


def _inverse_factor(h: NDArray[np.float64], damp: float) -> tuple[NDArray[np.float64], float]:
    """`_factor`, memoized inside `shared_factors()`."""
    if _factor_memo is None:
        return _factor(h, damp)
    key = (hashlib.blake2b(np.ascontiguousarray(h).data).digest(), h.shape, damp)
    if key not in _factor_memo:
        _factor_memo[key] = _factor(h, damp)
    return _factor_memo[key]


def _factor(h: NDArray[np.float64], damp: float) -> tuple[NDArray[np.float64], float]:
    """Upper Cholesky factor U of (H + lambda I)^-1 per group, lambda = damp x mean diag(H)
    (raised tenfold while H + lambda I is not positive definite); and the damp used."""
    h, mean = dead_fixed(h)
    eye = np.eye(h.shape[1])
    for _ in range(DAMP_TRIES):
        try:
            lower = np.linalg.cholesky(h + (damp * mean)[:, None, None] * eye)
            inv_lower = np.linalg.inv(lower)
            hinv = np.matmul(inv_lower.transpose(0, 2, 1), inv_lower)
            u = np.linalg.cholesky(hinv).transpose(0, 2, 1)
            if np.isfinite(u).all():
                return u, float(damp)
        except np.linalg.LinAlgError:
            pass
        damp *= 10
    raise ValueError(f"H is not positive definite even with dampening {damp / 10:g}")


def _columns(
    w: NDArray[np.float64],
    scales: NDArray[np.float64],
    u: NDArray[np.float64],
    method: Method,
    fixed: NDArray[np.bool_] | None,
    pick: GroupScales | None = None,
) -> NDArray[np.int16]:
    """The GPTQ / SparseGPT loop over blocks of columns, lazy updates between blocks.

    `scales`: [groups, rows, 1] per row; with `pick` (group scales), [groups, rows, F] filled
    group by group as the sweep reaches each group's first column."""
    top = float(max_level(method.bits))
    width = w.shape[2]
    block = _block_width(method)
    levels = np.zeros(w.shape, np.int16)
    for i1 in range(0, width, block):
        i2 = min(i1 + block, width)
        w1 = w[:, :, i1:i2].copy()
        u1 = u[:, i1:i2, i1:i2]
        pruned = _block_mask(w1, u1, method, None if fixed is None else fixed[:, :, i1:i2])
        diag = np.diagonal(u1, axis1=1, axis2=2)
        err = np.zeros_like(w1)
        for i in range(i2 - i1):
            if method.pattern is not None and method.prune == "obs" and i % method.pattern[1] == 0:
                j = slice(i, i + method.pattern[1])
                pruned[:, :, j] = _pattern_mask(
                    w1[:, :, j], diag[:, j], method.pattern[0], pruned[:, :, j]
                )
            if pick is not None and (i1 + i) % pick.group == 0:
                j = slice(i, i + pick.group)
                scales[:, :, i1 + i : i1 + i + pick.group] = pick(
                    w1[:, :, j], pruned[:, :, j], i1 + i
                )[:, :, None]
            sc = scales[:, :, 0 if pick is None else i1 + i]
            col = w1[:, :, i]
            q = np.clip(np.rint(col / sc), -top, top) if method.rounding else col
            q = np.where(pruned[:, :, i], 0.0, q)
            deq = q * sc if method.rounding else q
            e = (col - deq) / u1[:, i, i][:, None]
            w1[:, :, i:] -= e[:, :, None] * u1[:, None, i, i:]
            w1[:, :, i] = deq
            err[:, :, i] = e
        divisor = scales if pick is None else scales[:, :, i1:i2]
        q_block = np.clip(np.rint(w1 / divisor), -top, top)  # GPTQ: w1 holds q x scale already
        levels[:, :, i1:i2] = np.where(pruned, 0, q_block).astype(np.int16)
        w[:, :, i2:] -= np.matmul(err, u[:, i1:i2, i2:])
    return levels


def _block_width(method: Method) -> int:
    """Columns per lazy-update block: BLOCK, rounded to a multiple of the N:M pattern's M and
    of the group size G (so a group's columns are all in the block when its scale is set)."""
    unit = math.lcm(method.pattern[1] if method.pattern else 1, method.group or 1)
    return unit * max(1, BLOCK // unit)


def _block_mask(
    w1: NDArray[np.float64],
    u1: NDArray[np.float64],
    method: Method,
    fixed: NDArray[np.bool_] | None,
) -> NDArray[np.bool_]:
    """Pruned weights of one block: the `fixed` ones, and with unstructured OBS pruning, per
    group, the ceil(S x block) weights of least saliency w^2 / U_jj^2 (fixed ones first; the
    sum over blocks is at least S of all weights)."""
    mask = np.zeros(w1.shape, bool) if fixed is None else fixed.copy()
    if method.pattern is not None or method.sparsity <= 0 or method.prune != "obs":
        return mask
    diag = np.diagonal(u1, axis1=1, axis2=2)[:, None, :]
    saliency = np.where(mask, -1.0, w1 * w1 / (diag * diag)).reshape(w1.shape[0], -1)
    k = int(np.ceil(method.sparsity * saliency.shape[1] - 1e-9))
    if k > 0:
        least = np.argsort(saliency, axis=1, kind="stable")[:, :k]
        flat = mask.reshape(w1.shape[0], -1)
        np.put_along_axis(flat, least, True, axis=1)
    return mask


def _pattern_mask(
    w: NDArray[np.float64], diag: NDArray[np.float64], n: int, fixed: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """N:M mask of M columns (fewer at the end): per row, all but the N of most saliency
    w^2 / U_jj^2 (`diag`: [groups, columns] of U); `fixed` weights are pruned in any case."""
    mask = fixed.copy()
    drop = w.shape[2] - n
    if drop <= 0:
        return mask
    saliency = np.where(fixed, -1.0, w * w / (diag * diag)[:, None, :])
    least = np.argsort(saliency, axis=2, kind="stable")[:, :, :drop]
    np.put_along_axis(mask, least, True, axis=2)
    return mask


def for_tensor(
    values: NDArray[np.float32],
    pruned: NDArray[np.float32],
    out_axis: int | None,
    per_channel: bool,
    hess: Hessian | None,
    method: Method,
) -> tuple[tuple[NDArray[np.int16], NDArray[np.float32]] | None, dict]:
    """One tensor through GPTQ / OBS, or why not (then the caller rounds to nearest).

    `values` are the model's weights, `pruned` the same after magnitude pruning (its zeros are
    kept as zeros with `method.prune` "magnitude"; with "obs" only the model's own zeros are).
    Returns ((levels, scales) or None, the record's `reconstruction` entry).
    """
    if hess is None or hess.moment is None or out_axis is None:
        reason = "no output-channel axis" if out_axis is None else "no calibration statistics"
        return None, {"method": "none", "reason": hess.reason if hess and hess.reason else reason}
    if not np.isfinite(values).all() or not np.isfinite(hess.moment).all():
        return None, {"method": "none", "reason": "non-finite weights or H"}
    mask = (pruned if method.prune == "magnitude" else values) == 0
    try:
        levels, scales, info = reconstruct(values, out_axis, per_channel, hess, method, mask)
    except ValueError as exc:
        return None, {"method": "none", "reason": str(exc)}
    return (levels, scales), info
