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


def read_fields(data: bytes, widths: NDArray[np.int64]) -> NDArray[np.uint64]:
    """The seed fields (planes, busy slices) of the `seeds` stream, slice-major (§12.2).

    Raises:
        CorruptStream: wrong length or nonzero pad bits.
    """
    order = np.ascontiguousarray(widths.T).ravel()
    stream_bits(data, int(order.sum()), "seeds")
    windows = bitio.byte_windows(data)
    start = np.cumsum(order) - order
    values = np.zeros(order.size, dtype=np.uint64)
    small = order <= 57  # widths 0 .. 57 in one read (a 0-bit field reads 0)
    values[small] = bitio.peek_fields(windows, start[small], order[small])
    big = np.flatnonzero(~small)  # 58 .. 64 bits: two reads
    if big.size:
        high = bitio.peek_fields(windows, start[big], order[big] - 32)
        low = bitio.peek_fields(windows, start[big] + (order[big] - 32), 32)
        values[big] = (high << np.uint64(32)) | low
    return np.ascontiguousarray(values.reshape(widths.shape[1], widths.shape[0]).T)


def register_windows(
    seeds: NDArray[np.uint64], widths: NDArray[np.int64], reg: list[int], stream_len: int
) -> NDArray[np.uint64]:
    """The register of every plane after each busy slice's shift (§12.1), (planes, busy).

    Only slices with a nonzero field move a register; the others see the register of the last
    moving slice of their stream (or 0 after a reset). All planes are one sequence of
    (plane, stream) runs."""
    n_p, n_b = seeds.shape
    t = max(stream_len, 1)
    regs = np.asarray(reg, dtype=np.int64)
    flat_w = np.where(regs[:, None] > 0, widths, 0).ravel()
    live = np.flatnonzero(flat_w > 0)
    xs, ws = seeds.ravel()[live], flat_w[live]
    plane = live // max(n_b, 1)
    run = plane * (n_b // t + 1) + (live % max(n_b, 1)) // t
    width = regs[plane]
    end = np.cumsum(ws)
    out = xs.copy()
    for k in range(1, 65):  # every live width is >= 1: older seeds are >= k bits out
        if live.size <= k:
            break
        shift = end[k:] - end[:-k]
        near = (shift < width[k:]) & (run[k:] == run[:-k])
        if not near.any():
            break
        s = np.minimum(shift, 63).astype(np.uint64)
        out[k:] |= np.where(near, xs[:-k] << s, np.uint64(0))
    out &= np.where(
        width >= 64,
        ~np.uint64(0),
        (np.uint64(1) << np.minimum(width, 63).astype(np.uint64)) - np.uint64(1),
    )
    if live.size == n_p * n_b:  # every slice moves every register
        return out.reshape(n_p, n_b)
    if live.size == 0:
        return np.zeros_like(seeds)
    every = np.arange(n_p * n_b, dtype=np.int64)
    moved = np.cumsum(flat_w > 0)  # live slices up to and including each one
    last = np.maximum(moved - 1, 0)
    mine = (every // n_b) * (n_b // t + 1) + (every % n_b) // t
    ok = (moved > 0) & (run[last] == mine)
    return np.where(ok, out[last], np.uint64(0)).reshape(n_p, n_b)
