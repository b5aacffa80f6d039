"""Reading MSB-first fields out of the bus words a unit receives (docs/format.md §1).

The datapath's only reader of stream bits (docs/datapath.md §3.1): the bit order is the one
`xorc.bits` defines and every read goes through its functions (`unpack_bits`, `bit_windows`,
`byte_windows` / `peek_fields`); these helpers only apply them to a delivered buffer
(`BusStream`, zero guard bytes after the last beat) and check stream lengths and pad bits.
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
    """Bits offset .. offset + nbits - 1 of a delivered stream, one uint8 (0/1) per bit (fewer
    when the beats end first)."""
    words = bus.words.reshape(-1)
    return bitio.unpack_bits(words, max(0, min(nbits, 8 * words.size - offset)), offset)


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
    return bitio.bit_windows(buf, width, pos).astype(np.uint16)
