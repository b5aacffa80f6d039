"""Plain EBPC reference decoder: one symbol at a time, straight from docs/codecs/ebpc.md.

An oracle for tests, not a production path. It is a sequential, pure-Python walk over the bits
that an RTL engineer can read next to the spec (each step names its section, "§n" of
docs/codecs/ebpc.md); the fast parsers (`core_decode`, `parse_jit`, `xorc.datapath`) are tested
against it. It is slow (tens of milliseconds for a few thousand words, fine for tests) and
shares no code with them (only `xorc.bits`, which owns bit order); everything else calls
`xorc.codecs.ebpc.decode`.

`decode` and `decode_many` take the same arguments and return the same arrays as the package's
`decode` and `decode_many`, and raise `CorruptStream` (one line) on the same inputs, with their
own messages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from xorc.bits import unpack_bits
from xorc.codecs.ebpc.streams import EbpcStreams
from xorc.errors import CorruptStream


class _Reader:
    """The bits of one stream in wire order (`bits.unpack_bits`), read as MSB-first fields
    (§5; `xorc.bits`: "a field of width w ... is written most significant bit first")."""

    def __init__(self, name: str, data: bytes, bitlen: int) -> None:
        self.name, self.bitlen, self.pos = name, bitlen, 0
        self.bits: list[int] = unpack_bits(bytes(data), bitlen).tolist()

    def read(self, width: int, what: str) -> int:
        if self.pos + width > self.bitlen:
            raise CorruptStream(
                f"{self.name} stream ends inside {what} at bit {self.pos} of {self.bitlen}"
            )
        value = 0
        for bit in self.bits[self.pos : self.pos + width]:
            value = value << 1 | bit
        self.pos += width
        return value


def _check_record(rec: EbpcStreams) -> None:
    """§1 (W, N), §6 "Malformed input" (fields), §5 (stream sizes and zero padding)."""
    if type(rec.word_width) is not int or rec.word_width not in (8, 16):
        raise CorruptStream(f"ebpc record: word width must be 8 or 16, got {rec.word_width!r}")
    if type(rec.block_size) is not int or rec.block_size not in (8, 16):  # §8: N > W too
        raise CorruptStream(f"ebpc record: block size must be 8 or 16, got {rec.block_size!r}")
    if type(rec.swap_zero_codes) is not bool:
        raise CorruptStream("ebpc record: swap_zero_codes must be a bool")
    for name in ("n_words", "znz_bitlen", "bpc_bitlen"):
        value = getattr(rec, name)
        if type(value) is not int or value < 0:
            raise CorruptStream(f"ebpc record: {name} must be a non-negative integer: {value!r}")
    for name, data, bitlen in (("znz", rec.znz, rec.znz_bitlen), ("bpc", rec.bpc, rec.bpc_bitlen)):
        if not isinstance(data, bytes | bytearray):
            raise CorruptStream(f"ebpc record: stream {name!r} must be bytes")
        words = -(-bitlen // rec.word_width)  # §5: padded to whole W-bit words
        if len(data) * 8 != words * rec.word_width:
            raise CorruptStream(f"ebpc stream {name!r}: {len(data)} bytes for {bitlen} bits")
        if unpack_bits(bytes(data), 8 * len(data))[bitlen:].any():
            raise CorruptStream(f"ebpc stream {name!r} has non-zero padding bits")


def _read_znz(znz: _Reader, n_words: int) -> list[bool]:
    """§3, §6 "ZNZ": `1` is one non-zero word, `0` + c (4 bits) is c + 1 zero words."""
    nonzero: list[bool] = []
    while len(nonzero) < n_words:
        if znz.read(1, "a symbol"):
            nonzero.append(True)
            continue
        run = znz.read(4, "a zero-run length") + 1
        if len(nonzero) + run > n_words:
            raise CorruptStream(f"znz stream: a zero run goes past n_words = {n_words}")
        nonzero += [False] * run
    if znz.pos != znz.bitlen:
        raise CorruptStream(f"znz stream: {n_words} words end at bit {znz.pos} of {znz.bitlen}")
    return nonzero


def _read_planes(bpc: _Reader, w: int, n: int, swap: bool) -> list[int]:
    """§4 step 5 and §6 "BPC": the W+1 delta planes of one block, with prev = 0 at its start."""
    m, full = n - 1, (1 << (n - 1)) - 1
    cb, pb = (w - 1).bit_length(), (n - 1).bit_length()  # §1: ceil(log2 W), log2 N
    planes: list[int] = []
    prev = 0
    while len(planes) < w + 1:
        what = f"the symbol of plane {len(planes)}"
        if bpc.read(1, what):  # g: `1` + S (m bits): P = S ^ prev
            prev ^= bpc.read(m, what)
            planes.append(prev)
            continue
        if bpc.read(1, what):  # `01`: b, one zero symbol (§8 swapped: a, `01` + (k-2))
            zeros = bpc.read(cb, what) + 2 if swap else 1
        elif bpc.read(1, what):  # `001` + (k-2): a, a run of k (§8 swapped: b, `001`)
            zeros = 1 if swap else bpc.read(cb, what) + 2
        else:
            zeros = 0
        if zeros:  # a zero symbol: P = prev, once per plane covered, never past P_W
            if len(planes) + zeros > w + 1:
                raise CorruptStream(f"bpc stream: a zero run of {zeros} goes past plane {w}")
            planes += [prev] * zeros
            continue
        tail = bpc.read(2, what)  # `000` + 2 bits
        if tail == 0:  # c: `00000`, P = NOT prev
            prev ^= full
        elif tail == 1:  # d: `00001`, P = 0
            prev = 0
        else:  # e: `00010` + i, ones at bits m-1-i, m-2-i; f: `00011` + i, one at bit m-1-i
            i, last = bpc.read(pb, what), m - 2 if tail == 2 else m - 1
            if i > last:
                raise CorruptStream(f"bpc stream: position {i} > {last} in {what}")
            prev ^= (3 if tail == 2 else 1) << (last - i)
        planes.append(prev)
    return planes


def _block_words(base: int, planes: list[int], w: int, n: int) -> list[int]:
    """§4 steps 1-3 reversed, §6: d_i is bit m-1-i of P_0 .. P_W, a (W+1)-bit two's-complement
    number; x_0 = base, x_{i+1} = x_i + d_i wrapped to W bits. Returns signed W-bit words."""
    m, half = n - 1, 1 << (w - 1)
    words = [base]
    for i in range(m):
        d = sum(((p >> (m - 1 - i)) & 1) << b for b, p in enumerate(planes))
        d -= (d >> w) << (w + 1)  # bit W is the sign (no effect modulo 2**W, §6)
        words.append((words[-1] + d) % (1 << w))
    return [(x + half) % (1 << w) - half for x in words]


def decode(encoded: EbpcStreams) -> NDArray[np.int8] | NDArray[np.int16]:
    """The words of one transmission (int8 for W = 8, int16 for W = 16), like
    `xorc.codecs.ebpc.decode`.

    Raises:
        CorruptStream: the record or a stream is malformed (§6 "Malformed input"; one line).
    """
    _check_record(encoded)
    w, n = encoded.word_width, encoded.block_size
    nonzero = _read_znz(_Reader("znz", encoded.znz, encoded.znz_bitlen), encoded.n_words)
    z = sum(nonzero)
    bpc = _Reader("bpc", encoded.bpc, encoded.bpc_bitlen)
    values: list[int] = []
    for _ in range(-(-z // n)):  # §4 "Blocks", §6: ceil(z / N) blocks
        base = bpc.read(w, "a base")  # §4 step 1: x_0, W bits
        values += _block_words(base, _read_planes(bpc, w, n, encoded.swap_zero_codes), w, n)
    if bpc.pos != bpc.bitlen:
        raise CorruptStream(f"bpc stream: {-(-z // n)} blocks end at bit {bpc.pos} of {bpc.bitlen}")
    if any(values[z:]):
        raise CorruptStream("bpc stream: a padding word of the last block is not 0")
    if not all(values[:z]):
        raise CorruptStream("bpc stream decodes 0 for a word the znz stream marks non-zero")
    out = np.zeros(encoded.n_words, dtype=np.int8 if w == 8 else np.int16)
    out[np.flatnonzero(nonzero)] = values[:z]
    return out


def decode_many(records: Sequence[EbpcStreams]) -> list[NDArray[np.int8] | NDArray[np.int16]]:
    """`decode` of each record, one after the other (same shape as the package's
    `decode_many`)."""
    return [decode(rec) for rec in records]
