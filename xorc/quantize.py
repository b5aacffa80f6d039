"""Quantization and pruning, in numpy (docs/format.md §4 "Integer weights").

Symmetric quantization to Q bits: scale = max|w| / (2^(Q-1) - 1) per output channel (or per
tensor), level = clip(round_half_even(w / scale), ±(2^(Q-1) - 1)). A channel that is all zero
gets scale 1. With bfloat16 scales (docs/format.md §3.4) each scale is rounded up to bfloat16
before the levels are computed; with pow2 scales each is rounded up to a power of two 2^-n
(n in [POW2_MIN, POW2_MAX]), so a decoder rescales with a shift. With group scales (`group`
G, docs/format.md §3.4 "Group scales") each channel's row (the channel axis first, the rest
flattened in C order) has one scale per G consecutive weights. Zeros are pruned weights;
magnitude pruning sets the smallest weights to zero before quantization, and a weight that
rounds to level 0 is pruned as well.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def max_level(bits: int) -> int:
    """Largest level magnitude of a symmetric Q-bit code."""
    return (1 << (bits - 1)) - 1


def bfloat16_ceil(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """The smallest bfloat16 value (a float32 whose lower 16 bits are zero) at or above each
    positive finite value (docs/format.md §3.4)."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    up = (u & np.uint32(0xFFFF0000)) + np.where(u & np.uint32(0xFFFF), 0x10000, 0).astype(np.uint32)
    return up.view(np.float32)


POW2_MIN = -127
"""Smallest shift n of a pow2 scale 2^-n (the largest scale, 2^127; docs/format.md §3.4)."""
POW2_MAX = 126
"""Largest shift n of a pow2 scale (the smallest scale, 2^-126, the smallest normal float32)."""


def pow2_ceil(values: NDArray[np.floating]) -> NDArray[np.float32]:
    """The smallest power of two 2^-n, n in [POW2_MIN, POW2_MAX], at or above each positive
    value (values outside the range get the nearest end of it)."""
    v = np.asarray(values, dtype=np.float64)
    mant, exp = np.frexp(v)  # v = mant * 2^exp, mant in [0.5, 1)
    up = np.where(mant == 0.5, exp - 1, exp)
    return np.ldexp(1.0, np.clip(up, -POW2_MAX, -POW2_MIN)).astype(np.float32)


def is_bfloat16(values: NDArray[np.float32]) -> bool:
    """Whether every value is exactly representable in bfloat16."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return not bool((u & np.uint32(0xFFFF)).any())


def quantize(
    weights: NDArray[np.floating],
    bits: int,
    axis: int | None,
    scale_dtype: str = "float32",
    group: int | None = None,
) -> tuple[NDArray[np.int16], NDArray[np.float32]]:
    """Symmetric quantization per channel along `axis` (per tensor when None), or per group
    of `group` weights of each channel's row (`group_of` gives the group that applies).

    Returns the levels (int16, same shape) and the float32 scales (one per channel, or
    ceil(F / group) per channel, channel major); with `scale_dtype` "bfloat16" each scale is
    first rounded up to a bfloat16 value, with "pow2" up to a power of two, and the levels are
    those of the rounded scale.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in [2, 8], got {bits}")
    w = np.asarray(weights, dtype=np.float64)
    if axis is None:
        if group is not None:
            raise ValueError("group scales need a channel axis")
        peak = np.abs(w).max(initial=0.0).reshape(1)
    else:
        rows = np.moveaxis(np.abs(w), axis, 0).reshape(w.shape[axis], -1)
        peak = group_peaks(rows, group).reshape(-1)
    scales = scales_of(peak, bits, scale_dtype)
    divisor = expand_scales(scales.astype(np.float64), axis, w.shape, group)
    top = max_level(bits)
    levels = np.clip(np.rint(w / divisor), -top, top).astype(np.int16)
    return levels, scales


def scales_of(peak: NDArray[np.floating], bits: int, scale_dtype: str) -> NDArray[np.float32]:
    """The stored scale of each max|w| in `peak`: peak / (2^(Q-1) - 1), rounded up to the
    `scale_dtype`'s values (bfloat16 or pow2; float32 as it is); 1 (2^0) where the peak is 0."""
    top = max_level(bits)
    scales = (peak / top).astype(np.float32)
    scales[scales == 0] = 1.0  # an all-zero channel, or one too small for a float32 scale
    if scale_dtype == "pow2":
        return pow2_ceil(np.where(peak > 0, peak / top, 1.0))
    if scale_dtype == "bfloat16":  # subnormal scales, or ones that would become inf, stay
        rounded = bfloat16_ceil(scales)
        normal = np.isfinite(rounded) & (scales >= np.finfo(np.float32).tiny)
        return np.where(normal, rounded, scales)
    if scale_dtype != "float32":
        raise ValueError(f"scale_dtype must be float32, bfloat16 or pow2, got {scale_dtype!r}")
    return scales


def group_of(shape: tuple[int, ...], axis: int | None, group: int | None) -> int | None:
    """The group size a tensor's scales use: `group` when it has a channel axis and rows
    longer than `group` (docs/format.md §3.4 "Group scales"), else None (one per channel)."""
    if group is None or axis is None or not shape or shape[axis] == 0:
        return None
    features = int(np.prod(shape)) // shape[axis]
    return group if group < features else None


def group_peaks(rows: NDArray[np.floating], group: int | None) -> NDArray[np.float64]:
    """max|w| of each row ([C, F]), or [C, ceil(F / group)] of each group of each row."""
    a = np.abs(np.asarray(rows, dtype=np.float64))
    if group is None:
        return a.max(axis=1, initial=0.0)
    n_groups = -(-a.shape[1] // group)
    padded = np.zeros((a.shape[0], n_groups * group))
    padded[:, : a.shape[1]] = a
    return padded.reshape(a.shape[0], n_groups, group).max(axis=2)


def expand_scales(
    scales: NDArray, axis: int | None, shape: tuple[int, ...], group: int | None
) -> NDArray:
    """Scales (or shifts) shaped to broadcast over a tensor of `shape`: along `axis` per
    channel, or, with `group`, one per element (scale c·ceil(F / G) + j div G at row element j
    of channel c, docs/format.md §3.4)."""
    if group is None:
        return along(scales, axis, len(shape))
    assert axis is not None
    moved = (shape[axis], *(d for i, d in enumerate(shape) if i != axis))
    features = int(np.prod(moved[1:]))
    per_row = np.asarray(scales).reshape(shape[axis], -1)
    full = np.repeat(per_row, group, axis=1)[:, :features]
    return np.moveaxis(full.reshape(moved), 0, axis)


def dequantize(
    levels: NDArray[np.integer],
    scales: NDArray[np.float32],
    axis: int | None,
    group: int | None = None,
) -> NDArray[np.float32]:
    """Float weights of levels: level × scale of its channel (or group), in float32."""
    return levels.astype(np.float32) * expand_scales(scales, axis, levels.shape, group)


def shift_dequantize(
    levels: NDArray[np.integer],
    shifts: NDArray[np.integer],
    axis: int | None,
    group: int | None = None,
) -> NDArray[np.float32]:
    """Float weights of levels with pow2 scales 2^-n: each level shifted by n of its channel
    or group (an exponent subtraction, `ldexp`; no multiplier). Equal to `dequantize` with
    2^-n."""
    n = expand_scales(np.asarray(shifts, dtype=np.int32), axis, levels.shape, group)
    return np.ldexp(levels.astype(np.float32), -n).astype(np.float32)


def along(per_channel: NDArray, axis: int | None, ndim: int) -> NDArray:
    """Per-channel values shaped to broadcast along `axis` of an `ndim`-dimensional tensor (a
    single value, as a scalar shape, when `axis` is None)."""
    if axis is None:
        return per_channel.reshape(())
    return per_channel.reshape([-1 if d == axis else 1 for d in range(ndim)])


def prune_to(weights: NDArray[np.floating], sparsity: float) -> NDArray[np.floating]:
    """Zero the smallest-magnitude weights until at least `sparsity` of them are zero.

    Ties are broken by position (C order), so the result is deterministic.
    """
    n = weights.size
    target = int(np.ceil(sparsity * n - 1e-9))
    flat = weights.ravel()
    already = int(np.count_nonzero(flat == 0))
    if target <= already:
        return weights
    order = np.argsort(np.abs(flat), kind="stable")
    out = flat.copy()
    out[order[:target]] = 0
    return out.reshape(weights.shape)


def global_threshold(tensors: list[NDArray[np.floating]], sparsity: float) -> float:
    """The magnitude below which `sparsity` of all weights in `tensors` fall (global pruning)."""
    if not tensors or sparsity <= 0:
        return 0.0
    mags = np.sort(np.concatenate([np.abs(t.ravel()) for t in tensors]).astype(np.float64))
    k = int(np.ceil(sparsity * mags.size - 1e-9))
    return float(mags[k - 1]) if k > 0 else 0.0


def prune_below(weights: NDArray[np.floating], threshold: float) -> NDArray[np.floating]:
    """Zero every weight whose magnitude is at most `threshold` (global magnitude pruning)."""
    if threshold <= 0:
        return weights
    return np.where(np.abs(weights) <= threshold, 0, weights).astype(weights.dtype)


def prune_pattern(
    weights: NDArray[np.floating], out_axis: int, n: int, m: int
) -> NDArray[np.floating]:
    """N:M magnitude pruning: in every M consecutive input features of an output channel (the
    weight with `out_axis` first, the other axes flattened in C order; a shorter group at the
    end), all but the N largest magnitudes become zero. Ties go by position."""
    moved = np.moveaxis(weights, out_axis, 0)
    rows = moved.reshape(moved.shape[0], -1)
    width = rows.shape[1]
    padded = np.zeros((rows.shape[0], -(-width // m) * m), rows.dtype)
    padded[:, :width] = rows  # the zero padding sorts after every real weight of a group
    groups = padded.reshape(rows.shape[0], -1, m)
    order = np.argsort(-np.abs(groups), axis=2, kind="stable")
    drop = np.zeros(groups.shape, bool)
    np.put_along_axis(drop, order[:, :, n:], True, axis=2)
    out = np.where(drop, 0, groups).reshape(rows.shape[0], -1)[:, :width]
    return np.moveaxis(out.reshape(moved.shape), 0, out_axis).astype(weights.dtype)
