"""Already quantized weights (int8, uint8): stored losslessly, or re-quantized on request.

An int8/uint8 weight v is read by its model as (v − zero point) × scale. xorc stores it as
levels l in a record of dtype int8/uint8 with `offsets` (docs/format.md §3.2):

* lossless (the default): l = v − offset, scale 1, offset the model's own zero point when
  v − zero point fits the symmetric 8-bit levels [−127, 127], else one offset for the tensor
  that centres its values, else one per channel along some axis. A tensor with a channel that
  uses all 256 values on every axis fits none of these: it gets the full 8-bit range, levels
  v − (min + 128) in [−128, 127] (codec raw's `full_range`, docs/format.md §4.1).
* `--requantize`: d = v − zero point (its own dequantization, up to its scale, which every
  channel shares with the re-quantization: per tensor or along the zero point's own axis) is
  quantized to Q bits as a float weight would be: l = round(d / s'), and decoding gives
  v' = clip(round(l × s') + zero point) in the dtype's range. At 8 bits the tensor keeps its
  exact levels (the lossless ones). Lossy below 8 bits; the CLI warns.

A lossy policy or fewer than 8 bits without `--requantize` is refused (exit 5), naming the
tensor: xorc never re-quantizes a quantized weight silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from xorc.errors import UnsupportedModel
from xorc.quantize import quantize

if TYPE_CHECKING:
    from xorc.config import CompressOptions
    from xorc.onnx_io import SourceModel, WeightInfo
    from xorc.policies import Policy

RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
TOP = 127  # symmetric 8-bit levels


@dataclass(frozen=True)
class Stored:
    """How a quantized weight is stored: levels, scales and offsets along `axis`."""

    levels: NDArray[np.int16]
    bits: int
    scales: NDArray[np.float32]
    offsets: NDArray[np.int32]
    axis: int | None
    mode: str  # "lossless" or "requantized"


def plan(
    model: SourceModel, w: WeightInfo, bits: int, policy: Policy, options: CompressOptions
) -> tuple[Stored | None, str]:
    """How one int8/uint8 weight is stored, or why it stays as it is (module docstring):
    refused without --requantize when the bits or the policy would change it."""
    from xorc import onnx_io

    where = f"{model.path}: tensor {w.name!r} ({w.dtype})"
    check_request(where, bits, policy.name, policy.lossless, options.requantize)
    zp, zp_axis = onnx_io.zero_point(model, w)
    offsets, axis = per_channel(zp, tuple(w.array.shape), zp_axis, where)
    if options.requantize:
        return requantize(w.array, offsets, axis, bits, options.scale_dtype), ""
    return lossless(w.array, offsets, axis), ""


def per_channel(
    zp: NDArray[np.generic] | None, shape: tuple[int, ...], axis: int | None, where: str
) -> tuple[NDArray[np.int32], int | None]:
    """The zero point as one value (axis None) or one per channel along an axis of `shape`."""
    if zp is None:
        return np.zeros(1, np.int32), None
    z = np.asarray(zp).astype(np.int32)
    if z.size == 1:
        return z.reshape(1), None
    if z.ndim == 1 and axis is not None and 0 <= axis < len(shape) and shape[axis] == z.size:
        return z, axis
    if z.ndim == 1:  # per direction ([dirs], DynamicQuantizeLSTM) or along the one axis it fits
        fits = [a for a in range(len(shape)) if shape[a] == z.size]
        if fits:
            return z, fits[0]
    if z.ndim == 2 and len(shape) == 3 and z.shape == (shape[0], shape[2]):
        z_full = z[:, None, :]  # [dirs, 4H] of a [dirs, I, 4H] weight (DynamicQuantizeLSTM)
    elif z.shape == tuple(shape[: z.ndim]):  # leading axes
        z_full = z.reshape(z.shape + (1,) * (len(shape) - z.ndim))
    else:
        z_full = z
    try:
        full = np.broadcast_to(z_full, shape)
    except ValueError:
        raise UnsupportedModel(
            f"{where}: its zero point's shape {list(z.shape)} does not fit"
        ) from None
    varying = [a for a in range(len(shape)) if np.ptp(full, axis=a).any()]
    if not varying:
        return full.reshape(-1)[:1].copy(), None
    if len(varying) == 1:
        a = varying[0]
        return np.moveaxis(full, a, 0).reshape(shape[a], -1)[:, 0].copy(), a
    raise UnsupportedModel(f"{where}: its zero point varies along more than one axis")


def _along(values: NDArray, axis: int | None, ndim: int) -> NDArray:
    return (
        values.reshape(())
        if axis is None
        else values.reshape([-1 if d == axis else 1 for d in range(ndim)])
    )


def lossless(v: NDArray[np.integer], zp: NDArray[np.int32], axis: int | None) -> Stored:
    """Levels v − offset in [−127, 127]: the zero point as offset, else the centre of the
    tensor's values, else one centre per channel along some axis; when none fits (every axis
    has a channel that uses all 256 values), the full range [−128, 127] (`_full_range`)."""
    w = v.astype(np.int32)
    d = w - _along(zp, axis, w.ndim)
    if int(np.abs(d).max(initial=0)) <= TOP:
        n = 1 if axis is None else w.shape[axis]
        return Stored(d.astype(np.int16), 8, np.ones(n, np.float32), zp, axis, "lossless")
    lo, hi = int(w.min()), int(w.max())
    if hi - lo <= 2 * TOP:
        c = 0 if lo >= -TOP and hi <= TOP else (lo + hi + 1) // 2
        levels = (w - c).astype(np.int16)
        return Stored(levels, 8, np.ones(1, np.float32), np.array([c], np.int32), None, "lossless")
    return _centred_channels(w) or _full_range(w)


def _full_range(w: NDArray[np.int32]) -> Stored:
    """Levels w − (min + 128) in [−128, 127], one offset for the tensor: the 256 codes of 8
    bits, −128 included (codec raw `full_range`, docs/format.md §4.1); exact for any 8-bit
    integer tensor."""
    c = int(w.min(initial=0)) + TOP + 1
    levels = (w - c).astype(np.int16)
    return Stored(levels, 8, np.ones(1, np.float32), np.array([c], np.int32), None, "lossless")


def _centred_channels(w: NDArray[np.int32]) -> Stored | None:
    """One centring offset per channel, along the axis with the fewest channels on which every
    channel spans at most 255 values (a table's rows or columns); None when no axis does."""
    for a in sorted(range(w.ndim), key=lambda k: (w.shape[k], k)):
        rows = np.moveaxis(w, a, 0).reshape(w.shape[a], -1)
        lo, hi = rows.min(axis=1), rows.max(axis=1)
        if rows.size and int((hi - lo).max()) <= 2 * TOP:
            c = ((lo + hi + 1) // 2).astype(np.int32)
            levels = (w - _along(c, a, w.ndim)).astype(np.int16)
            return Stored(levels, 8, np.ones(w.shape[a], np.float32), c, a, "lossless")
    return None


def requantize(
    v: NDArray[np.integer], zp: NDArray[np.int32], axis: int | None, bits: int, scale_dtype: str
) -> Stored:
    """Q-bit levels of v − zero point, per tensor or along the zero point's axis (docstring);
    at 8 bits, the exact levels (mode "lossless")."""
    if bits == 8:
        return lossless(v, zp, axis)
    d = v.astype(np.float64) - _along(zp, axis, v.ndim)
    levels, scales = quantize(d, bits, axis, scale_dtype)
    n = 1 if axis is None else v.shape[axis]
    offsets = zp if zp.size == n else np.full(n, int(zp.reshape(-1)[0]), np.int32)
    return Stored(levels, bits, scales, offsets.astype(np.int32), axis, "requantized")


def decode(
    levels: NDArray[np.integer],
    scales: NDArray[np.float32],
    offsets: NDArray[np.integer] | None,
    axis: int | None,
    dtype: str,
) -> NDArray[np.generic]:
    """The stored integers of a record: clip(round(level × scale) + offset) (docs/format.md
    §3.2 `offsets`); level × 1 + offset for a lossless one."""
    lo, hi = RANGES[dtype]
    off = np.zeros(1, np.float64) if offsets is None else np.asarray(offsets, np.float64)
    s = scales.astype(np.float64)
    value = np.rint(
        levels.astype(np.float64) * _along(s, axis if s.size > 1 else None, levels.ndim)
    )
    value += _along(off, axis if off.size > 1 else None, levels.ndim)
    return np.clip(value, lo, hi).astype(dtype)


def check_request(where: str, bits: int, policy: str, lossless_policy: bool, flag: bool) -> None:
    """Refuse fewer bits or a lossy policy on a quantized weight without --requantize."""
    if flag or (bits == 8 and lossless_policy):
        return
    asked = f"--bits {bits} would" if bits != 8 else f"policy {policy!r} is lossy and would"
    raise UnsupportedModel(
        f"{where} is already quantized; {asked} re-quantize it: add --requantize to "
        "do so (lossy), or use --bits 8 with a lossless policy to store it exactly"
    )
