"""Reading MSB-first fields out of the bus words a unit receives (docs/format.md §1).

The stream order is the one `xorc.bits` defines; these helpers only read at arbitrary bit
positions of a delivered buffer (`BusStream.buffer`, zero guard bytes at the end), vectorised
over many positions at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream

Windows = NDArray[np.uint64]
"""For each byte offset of a buffer, the 8 bytes from there as a big-endian uint64."""


def windows(bus: BusStream) -> Windows:
    """Byte windows of a delivered stream, readable a few bytes past its end (zeros)."""
    return bitio.byte_windows(bus.buffer)


def peek(win: Windows, positions: NDArray[np.int64], width: int) -> NDArray[np.uint64]:
    """The `width`-bit field (0..64) starting at each bit position, MSB-first."""
    if width == 0:
        return np.zeros(np.shape(positions), dtype=np.uint64)
    if width <= 57:
        return bitio.peek_fields(win, positions, width)
    high = bitio.peek_fields(win, positions, width - 32)
    low = bitio.peek_fields(win, positions + (width - 32), 32)
    return (high << np.uint64(32)) | low


def fields(win: Windows, start: int, count: int, width: int) -> NDArray[np.uint64]:
    """`count` consecutive `width`-bit fields from bit `start`."""
    pos = start + np.arange(count, dtype=np.int64) * width
    return peek(win, pos, width)


def bits(bus: BusStream, nbits: int, offset: int = 0) -> NDArray[np.uint8]:
    """Bits offset .. offset + nbits - 1 of a delivered stream, one uint8 (0/1) per bit."""
    first, last = offset >> 3, (offset + nbits + 7) >> 3
    raw = np.unpackbits(bus.words.reshape(-1)[first:last], bitorder="big")
    start = offset - 8 * first
    return raw[start : start + nbits]


def exact_stream(bus: BusStream, nbits: int, what: str) -> None:
    """Check that a stream is exactly ceil(nbits / 8) bytes with zero pad bits.

    Raises:
        CorruptStream: wrong length or nonzero pad bits.
    """
    if bus.nbytes != (nbits + 7) // 8:
        raise CorruptStream(f"stream {what!r} is {bus.nbytes} bytes, expected {(nbits + 7) // 8}")
    if nbits % 8:
        last = int(bus.words.reshape(-1)[bus.nbytes - 1])
        if last & ((1 << (8 - nbits % 8)) - 1):
            raise CorruptStream(f"stream {what!r} has nonzero pad bits")


def sized_stream(bus: BusStream, nbytes: int, what: str) -> None:
    """Check only the byte length (codecs that do not constrain pad bits).

    Raises:
        CorruptStream: wrong length.
    """
    if bus.nbytes != nbytes:
        raise CorruptStream(f"stream {what!r} is {bus.nbytes} bytes, expected {nbytes}")


def narrow_fields(bus: BusStream, count: int, width: int) -> NDArray[np.uint16]:
    """`count` consecutive fields of `width` <= 9 bits from bit 0 (the raw values, dictionary
    indices and codebook entries): every field lies inside one 16-bit window."""
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint16)
    buf = bus.buffer
    if width == 8:
        return buf[:count].astype(np.uint16)
    pos = np.arange(count, dtype=np.int64) * width
    byte = pos >> 3
    pair = (buf[byte].astype(np.uint16) << np.uint16(8)) | buf[byte + 1]
    shift = (16 - width - (pos & 7)).astype(np.uint16)
    return (pair >> shift) & np.uint16((1 << width) - 1)
