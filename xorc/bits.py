"""Bit order, in one place (docs/format.md, "Bit streams").

Every bit stream xorc writes follows one convention:

* A stream is a sequence of bits b0, b1, b2, ... stored **MSB-first**: b0 is bit 7 (0x80) of
  byte 0, b7 is bit 0 of byte 0, b8 is bit 7 of byte 1. The last byte is zero-padded.
* A field of width w holding the unsigned value v is written most significant bit first.
* For arithmetic over GF(2), rows of bits are held in uint64 words **LSB-first**: bit j of a row
  is bit (j % 64) of word j // 64. That layout never reaches the disk; it only serves the solvers
  and decoders, which convert through `to_words` and `from_words`.
* Rice codes (`rice_encode`) are stored as two runs: all unary quotients first, then all k-bit
  remainders, so that both halves decode without a serial scan.

No other module packs or unpacks bits by hand; codecs call these functions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Bits = NDArray[np.uint8]
"""A bit array: one element (0 or 1) per bit, in stream order."""


def pack_bits(bits: ArrayLike) -> bytes:
    """Pack a 0/1 array into bytes, MSB-first, zero-padding the last byte."""
    return np.packbits(np.asarray(bits, dtype=np.uint8).ravel(), bitorder="big").tobytes()


def unpack_bits(data: bytes | NDArray[np.uint8], nbits: int, offset: int = 0) -> Bits:
    """Return `nbits` bits starting at bit `offset` of `data` (MSB-first).

    Raises:
        ValueError: the data holds fewer than `offset + nbits` bits.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    if offset < 0 or nbits < 0 or offset + nbits > 8 * buf.size:
        raise ValueError(f"need {offset + nbits} bits, stream holds {8 * buf.size}")
    first, last = offset // 8, (offset + nbits + 7) // 8
    bits = np.unpackbits(buf[first:last], bitorder="big")
    start = offset - 8 * first
    return bits[start : start + nbits]


def fields_to_bits(values: ArrayLike, widths: ArrayLike) -> Bits:
    """Concatenate fields, each `widths[i]` bits wide and MSB-first, into one bit array.

    `widths` is a scalar (every field the same width) or one width per value; widths are 0..64.
    Values must fit their widths.
    """
    vals = np.asarray(values, dtype=np.uint64).ravel()
    w = np.asarray(widths, dtype=np.int64)
    if w.ndim == 0:
        width = int(w)
        if width == 0 or vals.size == 0:
            return np.zeros(0, dtype=np.uint8)
        shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
        return ((vals[:, None] >> shifts) & np.uint64(1)).astype(np.uint8).ravel()
    w = w.ravel()
    if w.size != vals.size:
        raise ValueError("one width per value is required")
    total = int(w.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint8)
    field = np.repeat(np.arange(vals.size), w)
    starts = np.cumsum(w) - w
    pos_in_field = np.arange(total) - starts[field]
    shift = (w[field] - 1 - pos_in_field).astype(np.uint64)
    return ((vals[field] >> shift) & np.uint64(1)).astype(np.uint8)


def bits_to_fields(
    bits: ArrayLike, widths: ArrayLike, count: int | None = None
) -> NDArray[np.uint64]:
    """Inverse of `fields_to_bits`: read consecutive MSB-first fields from a bit array.

    With a scalar width, `count` fields are read (default: as many as fit). With per-field
    widths, one field per width is read.

    Raises:
        ValueError: the bit array is too short.
    """
    b = np.asarray(bits, dtype=np.uint64).ravel()
    w = np.asarray(widths, dtype=np.int64)
    if w.ndim == 0:
        width = int(w)
        n = (b.size // width if width else 0) if count is None else count
        if n * width > b.size:
            raise ValueError(f"need {n * width} bits, have {b.size}")
        if width == 0 or n == 0:
            return np.zeros(n, dtype=np.uint64)
        shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
        return (b[: n * width].reshape(n, width) << shifts).sum(axis=1, dtype=np.uint64)
    w = w.ravel()
    total = int(w.sum())
    if total > b.size:
        raise ValueError(f"need {total} bits, have {b.size}")
    out = np.zeros(w.size, dtype=np.uint64)
    nonzero = w > 0
    if total == 0:
        return out
    wn = w[nonzero]
    field = np.repeat(np.arange(wn.size), wn)
    starts = np.cumsum(wn) - wn
    shift = (wn[field] - 1 - (np.arange(total) - starts[field])).astype(np.uint64)
    out[nonzero] = np.add.reduceat(b[:total] << shift, starts, dtype=np.uint64)
    return out


def pack_fields(values: ArrayLike, widths: ArrayLike) -> tuple[bytes, int]:
    """Pack fields (see `fields_to_bits`) into bytes; returns the bytes and the exact bit length.

    A scalar width 1..64 packs per field (`pack_fields_fast`, the same bytes), the bits above
    the width cleared first as `fields_to_bits` ignores them."""
    w = np.asarray(widths)
    if w.ndim == 0 and 1 <= int(w) <= 64:
        vals = np.asarray(values, dtype=np.uint64).ravel()
        width = int(w)
        if width < 64:
            vals = vals & np.uint64((1 << width) - 1)
        return pack_fields_fast(vals, np.full(vals.size, width, dtype=np.uint8), width)
    bits = fields_to_bits(values, widths)
    return pack_bits(bits), int(bits.size)


def to_words(bits: ArrayLike) -> NDArray[np.uint64]:
    """Pack the last axis of a 0/1 array into uint64 words, LSB-first (GF(2) row layout)."""
    b = np.asarray(bits, dtype=np.uint8)
    n = b.shape[-1]
    nwords = (n + 63) // 64
    padded = np.zeros((*b.shape[:-1], nwords * 64), dtype=np.uint8)
    padded[..., :n] = b
    packed = np.packbits(padded, axis=-1, bitorder="little")  # 8 bytes per word, LSB-first
    return packed.view("<u8").astype(np.uint64, copy=False)


def from_words(words: NDArray[np.uint64], nbits: int) -> Bits:
    """Inverse of `to_words`: the first `nbits` bits of each row of words."""
    w = np.ascontiguousarray(words, dtype="<u8")
    as_bytes = w.view(np.uint8).reshape(*w.shape[:-1], w.shape[-1] * 8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :nbits]


def popcount(words: NDArray[np.unsignedinteger]) -> NDArray[np.uint8]:
    """Number of set bits of each word."""
    return np.bitwise_count(words)


def rice_encode(values: ArrayLike, k: int) -> Bits:
    """Rice-code unsigned values with parameter k (0 <= k <= 32).

    Layout: the unary quotients of all values first (q ones, then a zero, per value), then all
    remainders as k-bit fields. Returns the bit array.
    """
    v = np.asarray(values, dtype=np.uint64).ravel()
    q = (v >> np.uint64(k)).astype(np.int64)
    unary = np.ones(int(q.sum()) + v.size, dtype=np.uint8)
    unary[np.cumsum(q + 1) - 1] = 0
    rem = fields_to_bits(v & np.uint64((1 << k) - 1), k)
    return np.concatenate([unary, rem])


def rice_decode(bits: Bits, count: int, k: int) -> tuple[NDArray[np.uint64], int]:
    """Decode `count` Rice-coded values (layout of `rice_encode`) from the start of `bits`.

    Returns the values and the number of bits consumed.

    Raises:
        ValueError: the bits run out before `count` values are complete.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint64), 0
    zeros = np.flatnonzero(np.asarray(bits) == 0)
    if zeros.size < count:
        raise ValueError(f"rice stream ends after {zeros.size} of {count} values")
    ends = zeros[:count]
    q = np.diff(ends, prepend=-1) - 1
    used = int(ends[-1]) + 1
    if used + count * k > len(bits):
        raise ValueError("rice stream too short for its remainders")
    rem = bits_to_fields(bits[used : used + count * k], k, count)
    return (q.astype(np.uint64) << np.uint64(k)) | rem, used + count * k


def rice_length(values: NDArray[np.uint64], k: int) -> int:
    """Exact bit length `rice_encode(values, k)` would produce."""
    return int((values >> np.uint64(k)).sum()) + values.size * (k + 1)


def best_rice_k(values: NDArray[np.uint64], max_k: int = 32) -> int:
    """The Rice parameter that codes `values` in the fewest bits."""
    v = np.asarray(values, dtype=np.uint64)
    if v.size == 0:
        return 0
    return min(range(max_k + 1), key=lambda k: rice_length(v, k))


# --- appended for EBPC (issue 4): per-field packing and windowed reads --------------------------


def _uint_for(bits: int) -> type[np.unsignedinteger]:
    return (
        np.uint8
        if bits <= 8
        else np.uint16
        if bits <= 16
        else np.uint32
        if bits <= 32
        else np.uint64
    )


def pack_fields_fast(
    values: ArrayLike, widths: ArrayLike, max_width: int = 64
) -> tuple[bytes, int]:
    """Same output as `pack_fields` (MSB-first fields in an MSB-first stream, last byte
    zero-padded; returns the bytes and the exact bit length), computed per field instead of per
    bit: adjacent fields are first merged pairwise while two of them fit in 64 bits, then each
    merged field is placed into uint64 words. `widths` holds one width per value, each
    0..`max_width` (<= 64); values must fit their widths. Zero-width fields write nothing.
    """
    v = np.asarray(values).ravel()
    w = np.asarray(widths).ravel()
    if w.size != v.size:
        raise ValueError("one width per value is required")
    if v.size == 0:
        return b"", 0
    v = v.astype(_uint_for(max_width), copy=False)
    w = w.astype(np.uint8, copy=False)
    while 2 * max_width <= 64 and v.size > 1:
        if v.size % 2:
            v = np.append(v, v.dtype.type(0))
            w = np.append(w, np.uint8(0))
        max_width *= 2
        dt = _uint_for(max_width)
        v = (v[0::2].astype(dt) << w[1::2].astype(dt)) | v[1::2]
        w = w[0::2] + w[1::2]
    v = v.astype(np.uint64, copy=False)
    ends = np.cumsum(w, dtype=np.int64)
    nbits = int(ends[-1])
    word = (ends - w) >> 6
    end_in_word = ends - (word << 6)  # 0..128: bit just after the field, counted in `word`
    fits = end_in_word <= 64
    sh_up = np.where(fits, 64 - end_in_word, 0).astype(np.uint64)
    sh_down = np.where(fits, 0, end_in_word - 64).astype(np.uint64)
    first = (v >> sh_down) << sh_up
    out = np.zeros(((nbits + 63) >> 6) + 1, dtype=np.uint64)
    starts = np.flatnonzero(word[1:] != word[:-1]) + 1
    starts = np.concatenate(([0], starts))
    out[word[starts]] = np.bitwise_or.reduceat(first, starts)
    spill = np.flatnonzero(~fits)
    if spill.size:
        # the low (end_in_word - 64) bits of the field go to the top of the next word
        sh = (128 - end_in_word[spill]).astype(np.uint64)
        out[word[spill] + 1] |= v[spill] << sh
    return out.astype(">u8").tobytes()[: (nbits + 7) >> 3], nbits


def byte_windows(data: bytes | NDArray[np.uint8]) -> NDArray[np.uint64]:
    """For each byte offset j of `data`, the 8 bytes starting at j as one big-endian uint64
    (bytes past the end read as zero). Feed it to `peek_fields`."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    padded = np.zeros(buf.size + 8, dtype=np.uint8)
    padded[: buf.size] = buf
    view = np.ndarray(shape=(buf.size + 1,), dtype=">u8", buffer=padded, strides=(1,))
    return view.astype(np.uint64)


def peek_fields(
    windows: NDArray[np.uint64], positions: ArrayLike, width: int | NDArray[np.int64]
) -> NDArray[np.uint64]:
    """The `width`-bit MSB-first field (1 <= width <= 57; an array gives one width per
    position, 0 <= width <= 57, and a 0-bit field reads 0) starting at each bit position of the
    stream whose `byte_windows` are given. Bits past the end of the stream read as zero; a
    position must be at most 8 * len(data).
    """
    pos = np.asarray(positions, dtype=np.int64)
    drop = (64 - np.asarray(width, dtype=np.int64)).astype(np.uint64)  # a shift by 64 gives 0
    return (windows[pos >> 3] << (pos & 7).astype(np.uint64)) >> drop  # type: ignore[no-any-return]


def bit_windows(data: bytes, width: int, positions: ArrayLike | None = None) -> NDArray[np.uint32]:
    """The `width` bits (1 to 25) starting at bit positions of `data`, as MSB-first integers.

    Bit order as in `unpack_bits`: position p is bit 7 - p % 8 of byte p // 8, and the window
    at p is bits p, p+1, ..., p+width-1 with bit p most significant. Bits past the end of the
    data read as 0. `positions` defaults to every bit position 0 .. 8*len(data) - 1 (one
    window each, in order); given positions must lie in [0, 8*len(data)]. Reading `count`
    consecutive w-bit fields is ``bit_windows(data, w, w * np.arange(count))``.

    Raises:
        ValueError: width out of range or a position outside the data.
    """
    if not 1 <= width <= 25:
        raise ValueError(f"window width must be 1..25, got {width}")
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    ext = np.concatenate([buf.astype(np.uint32), np.zeros(4, dtype=np.uint32)])
    word = (ext[:-3] << 24) | (ext[1:-2] << 16) | (ext[2:-1] << 8) | ext[3:]  # per byte offset
    drop = np.uint32(32 - width)
    if positions is None:
        shift = np.arange(8, dtype=np.uint32)
        win = (word[: buf.size, None] << shift[None, :]) >> drop
        return win.ravel()
    pos = np.asarray(positions, dtype=np.int64)
    if pos.size and (int(pos.min()) < 0 or int(pos.max()) > 8 * buf.size):
        raise ValueError(f"bit positions must lie in [0, {8 * buf.size}]")
    return (word[pos >> 3] << (pos & 7).astype(np.uint32)) >> drop


def windows16(data: bytes | NDArray[np.uint8]) -> NDArray[np.uint16]:
    """The 16 bits (MSB-first, as in `bit_windows`) starting at every bit position of `data`,
    bits past the end reading as 0: 2 bytes per bit position, built in about 1 ns per bit."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    padded = np.zeros(buf.size + 4, dtype=np.uint8)
    padded[: buf.size] = buf
    word = np.ndarray((buf.size,), dtype=">u4", buffer=padded, strides=(1,)).astype(np.uint32)
    out = np.empty((buf.size, 8), dtype=np.uint16)
    for s in range(8):
        out[:, s] = word >> np.uint32(16 - s)  # the cast keeps the low 16 bits
    return out.reshape(-1)


def unit_windows(data: bytes | NDArray[np.uint8], nbits: int) -> NDArray[np.int64]:
    """Windows for `peek_units` over the first `nbits` bits of `data` (MSB-first stream): element
    u holds stream bits [32u, 32u + 64) as a 64-bit pattern (int64), bits past `nbits` zero.
    Positions up to `nbits` + 64 may be peeked."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    nbytes = (nbits + 7) >> 3
    units = (nbytes + 3) // 4 + 3
    padded = np.zeros(4 * units, dtype=np.uint8)
    padded[:nbytes] = buf[:nbytes]
    if nbits & 7:
        padded[nbytes - 1] &= 0xFF << (8 - (nbits & 7)) & 0xFF
    u32 = padded.view(">u4").astype(np.uint64)
    return ((u32[:-1] << np.uint64(32)) | u32[1:]).view(np.int64)


def peek_units(
    windows: NDArray[np.int64], positions: NDArray[np.int64], width: int
) -> NDArray[np.int64]:
    """The `width`-bit MSB-first field (1 <= width <= 32) starting at each bit position, from
    `unit_windows`."""
    return (windows[positions >> 5] >> (64 - width - (positions & 31))) & ((1 << width) - 1)
