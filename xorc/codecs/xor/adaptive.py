"""Variant 3 of codec `xor` (docs/codecs/xor.md §12): mask-adaptive seed widths and the register
they feed. Shared by the reference decoder and the encoder; imports no encoder module.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.xor.mask import stream_bits

ROUND = 128
SHIFT = 8
"""w = min(W, (c * rate + ROUND) >> SHIFT): rates are in 1/256 seed bit per care bit."""


def field_widths(care: NDArray[np.int64], rate: list[int], width: list[int]) -> NDArray[np.int64]:
    """(planes, busy slices) seed-field widths of slices with `care` kept weights (§12.1)."""
    c = np.asarray(care, dtype=np.int64)[None, :]
    r = np.asarray(rate, dtype=np.int64)[:, None]
    w = np.asarray(width, dtype=np.int64)[:, None]
    return np.minimum(w, (c * r + ROUND) >> SHIFT)  # type: ignore[no-any-return]


def low_bits(width: int) -> np.uint64:
    """The mask of the low `width` bits (0 .. 64)."""
    return np.uint64((1 << width) - 1)


def read_fields(data: bytes, widths: NDArray[np.int64]) -> NDArray[np.uint64]:
    """The seed fields (planes, busy slices) of the `seeds` stream, slice-major (§12.2).

    Raises:
        CorruptStream: wrong length or nonzero pad bits.
    """
    order = np.ascontiguousarray(widths.T).ravel()
    bits = stream_bits(data, int(order.sum()), "seeds")
    values = bitio.bits_to_fields(bits, order)
    return np.ascontiguousarray(values.reshape(widths.shape[1], widths.shape[0]).T)


def register_windows(
    seeds: NDArray[np.uint64], widths: NDArray[np.int64], reg: list[int], stream_len: int
) -> NDArray[np.uint64]:
    """The register of every plane after each busy slice's shift (§12.1), (planes, busy)."""
    out = np.zeros_like(seeds)
    t = max(stream_len, 1)
    for i, width in enumerate(reg):
        if width:
            out[i] = _plane_windows(seeds[i], widths[i], width, t)
    return out


def _plane_windows(
    x: NDArray[np.uint64], w: NDArray[np.int64], width: int, t: int
) -> NDArray[np.uint64]:
    """One plane: only slices with a nonzero field move the register; the others see the
    register of the last moving slice of their stream (or 0 after a reset)."""
    live = np.flatnonzero(w > 0)
    xs, ws = x[live], w[live]
    sid = live // t
    end = np.cumsum(ws)
    reg = xs.copy()
    for k in range(1, width + 1):  # every live width is >= 1: older seeds are k bits out
        if live.size <= k:
            break
        shift = end[k:] - end[:-k]
        near = (shift < width) & (sid[k:] == sid[:-k])
        if not near.any():
            break
        s = np.minimum(shift, 63).astype(np.uint64)
        reg[k:] |= np.where(near, xs[:-k] << s, np.uint64(0))
    reg &= low_bits(width)
    busy = np.arange(x.size, dtype=np.int64)
    last = np.searchsorted(live, busy, side="right") - 1
    ok = last >= 0
    ok[ok] = sid[last[ok]] == busy[ok] // t
    return np.where(ok, reg[np.maximum(last, 0)] if live.size else np.uint64(0), np.uint64(0))
