"""EBPC decoder: the RTL's ZNZ and BPC streams -> words (docs/codecs/ebpc.md, "Decoding").

Both streams are prefix codes whose symbol boundaries depend on everything before them. The
decoder finds them without a Python loop per symbol or per block:

* ZNZ: only the zero-run symbols matter (between two of them every bit is a one-bit `1`
  symbol). A 16-bit-chunk automaton gives, for each of the 5 possible offsets of a chunk's first
  symbol boundary, the offset in the next chunk and the chunk's zero-run symbol starts. Most
  chunks send all 5 offsets to the same exit, so the offsets are known almost everywhere at
  once; the rest are resolved along the short runs they form (or by composing the maps).
* BPC: speculative parallel parsing. A parser state is (bit position, next plane of the block);
  one lookup in a table indexed by (state, next 16 bits) advances it over the base and/or as
  many whole symbols of the current block as those bits hold. The streams are cut into segments
  and one lane per segment parses from the segment start, guessing that a block starts there
  (round 0). Then each lane is re-run from the state where the previous lane really left its
  segment until it stands on a state round 0 also visited; the parse being deterministic, from
  there on round 0 is right. A lane that does not meet round 0 inside its segment carries on
  into the next ones, and the lanes it covers are discarded. The result is exact whatever the
  guesses; a bad guess only costs time. When numba is installed, `parse_jit` replaces this
  with a compiled sequential walk over the same step table (the same keys, several times
  faster for one feature map); the checks after the parse are shared.

Blocks are then rebuilt from the recorded steps in one vectorised pass (plane codes from a table,
a prefix XOR over the planes, an 8x8 bit transpose to deltas, a prefix sum modulo 2**W).

Modules: `znz_decode` (the ZNZ automaton), `bpc_tables` (the step tables), `bpc_parse` (the
speculative parser, or `parse_jit`'s compiled walk), and this one (block rebuilding, record
checks, `decode_streams` and `decode_many`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.ebpc import bpc_parse
from xorc.codecs.ebpc.bpc_tables import KC_MASK, KC_SHIFT, plane_code_table, step_table
from xorc.codecs.ebpc.streams import (
    EbpcStreams,
    deltas_mod_from_planes,
    format_error,
    padded_nbytes,
    transpose8_le,
)
from xorc.codecs.ebpc.znz_decode import decode_znz, place_nonzeros
from xorc.errors import CorruptStream

# --- BPC decoding -------------------------------------------------------------------------------

_LANE7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_LANE_TOP = np.uint64(0x8080808080808080)


@cache
def _step_plane_codes(word_width: int, block_size: int, swap: bool) -> NDArray[np.uint64]:
    """For W = N = 8: CODES[key] = the plane codes the step with that key contributes to planes
    0..7 of its block, plane p in byte p (little-endian) of a uint64, 0 elsewhere."""
    table = step_table(word_width, block_size, swap).astype(np.int64)
    codes = plane_code_table(word_width, block_size, swap)
    key = np.arange(table.size, dtype=np.int64)
    c, w = key >> 16, key & 0xFFFF
    covered = (table >> KC_SHIFT) & KC_MASK
    sym = np.where(c == 0, (w << word_width) & 0xFFFF, w)
    first = np.where(c == 0, 0, c - 1)
    out = np.zeros(key.size, dtype=np.uint64)
    for j in range(8):  # relative plane j of the step lands on plane first + j
        plane = first + j
        take = (j < covered) & (plane < 8)
        out |= np.where(take, codes[sym, min(j, word_width)].astype(np.uint64), np.uint64(0)) << (
            8 * np.minimum(plane, 7)
        ).astype(np.uint64)
    return out


def _lane_add(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Byte-wise addition modulo 256 of two uint64 (no carry between bytes)."""
    return ((a & _LANE7) + (b & _LANE7)) ^ ((a ^ b) & _LANE_TOP)


def _decode_blocks_8x8(keys: NDArray[np.int64], swap: bool) -> NDArray[np.int8]:
    """W = N = 8: each block's planes 0..7 as the bytes of one uint64, built by OR-ing the
    steps' contributions; a byte-wise prefix XOR rebuilds the planes, one 8x8 transpose gives
    the deltas modulo 256, and a byte-wise prefix sum the words."""
    codes = _step_plane_codes(8, 8, swap)
    starts = np.flatnonzero(keys < (1 << 16))  # state 0: the step reads a base
    x = np.bitwise_or.reduceat(codes[keys], starts) if starts.size else np.zeros(0, np.uint64)
    chained = (x & _LANE_TOP) == _LANE_TOP  # no all-zero (`00001`) plane among planes 0..7
    a = x & _LANE7
    for s in (8, 16, 32):
        a ^= a << np.uint64(s)  # byte p = XOR of the codes of planes 0..p
    if not chained.all():
        rows = np.flatnonzero(~chained)
        xb = x[rows].view(np.uint8).reshape(-1, 8)
        fixed = np.zeros(rows.size, dtype=np.uint64)
        prev = np.zeros(rows.size, dtype=np.uint64)
        for p in range(8):
            cur = xb[:, p].astype(np.uint64)
            prev = np.where(cur >> np.uint64(7) == 1, (cur & np.uint64(0x7F)) ^ prev, cur)
            fixed |= prev << np.uint64(8 * p)
        a[rows] = fixed
    y = transpose8_le(a).byteswap()  # byte i = d_{i-1} for i >= 1, byte 0 = 0
    y |= (keys[starts] >> 8 & 0xFF).astype(np.uint64)  # byte 0 = the base
    for s in (8, 16, 32):
        y = _lane_add(y, y << np.uint64(s))
    return y.view(np.int8).reshape(-1, 8)


def decode_blocks(
    keys: NDArray[np.int64], word_width: int, block_size: int, swap: bool
) -> NDArray[np.int8] | NDArray[np.int16]:
    """Words of all blocks whose parse steps are given (keys of valid steps, in order, as
    returned by `parse_bpc`), as [blocks, N]."""
    w, n = word_width, block_size
    m = n - 1
    if w == 8 and n == 8:
        return _decode_blocks_8x8(keys, swap)
    info = step_table(w, n, swap)[keys]
    is_base = keys < (1 << 16)
    window = keys & 0xFFFF
    nb = int(np.count_nonzero(is_base))
    covered = ((info >> KC_SHIFT) & KC_MASK).astype(np.intp)
    codes = plane_code_table(w, n, swap)
    out_t = np.uint8 if w == 8 else np.uint16
    base = (window[is_base] >> (16 - w)).astype(out_t)
    sym_window = np.where(is_base, (window << w) & 0xFFFF, window)
    first = np.cumsum(covered) - covered
    index = np.repeat(sym_window * (w + 1) - first, covered) + np.arange(nb * (w + 1))
    plane_code = codes.reshape(-1)[index].reshape(nb, w + 1)
    full = plane_code.dtype.type((1 << m) - 1)
    a = plane_code & full
    reset = plane_code <= full  # an all-zero plane (`00001`): the chain restarts from 0
    planes = np.empty_like(a)
    prev = np.zeros(nb, dtype=a.dtype)
    for b in range(w + 1):
        prev = np.where(reset[:, b], a[:, b], a[:, b] ^ prev)
        planes[:, b] = prev
    x = np.empty((nb, n), dtype=out_t)
    x[:, 0] = base
    x[:, 1:] = deltas_mod_from_planes(planes, w, n)
    for i in range(1, n):  # wraps modulo 2**W like the RTL
        x[:, i] += x[:, i - 1]
    return x.view(np.int8 if w == 8 else np.int16)


# --- records ------------------------------------------------------------------------------------


def _check_record(encoded: EbpcStreams) -> None:
    """Validate the record's fields and stream sizes (everything but the stream contents)."""
    w, n = encoded.word_width, encoded.block_size
    problem = format_error(w, n, True)
    if problem:
        raise CorruptStream(f"ebpc record: {problem}")
    if type(encoded.swap_zero_codes) is not bool:
        raise CorruptStream("ebpc record: swap_zero_codes must be a bool")
    for field in ("n_words", "znz_bitlen", "bpc_bitlen"):
        value = getattr(encoded, field)
        if type(value) is not int or value < 0:
            raise CorruptStream(
                f"ebpc record: {field} must be a non-negative integer, got {value!r}"
            )
    for name in ("znz", "bpc"):
        data = getattr(encoded, name)
        if not isinstance(data, bytes | bytearray):
            raise CorruptStream(f"ebpc record: stream {name!r} must be bytes")
        bitlen = getattr(encoded, f"{name}_bitlen")
        if len(data) != padded_nbytes(bitlen, w):
            raise CorruptStream(
                f"ebpc stream {name!r} is {len(data)} bytes; {bitlen} bits padded to "
                f"{w}-bit words need {padded_nbytes(bitlen, w)}"
            )
        if bitlen % 8 and data[bitlen >> 3] & (0xFF >> (bitlen & 7)):
            raise CorruptStream(f"ebpc stream {name!r} has non-zero padding bits")
        if any(data[(bitlen + 7) >> 3 :]):
            raise CorruptStream(f"ebpc stream {name!r} has non-zero padding bytes")
    if encoded.znz_bitlen > 5 * encoded.n_words:
        raise CorruptStream(
            f"ebpc record: znz_bitlen {encoded.znz_bitlen} is too long for {encoded.n_words} words"
        )


_CHUNK_BLOCKS = 1 << 15  # blocks rebuilt at once: bounds the per-step temporaries


def _rebuild_in_chunks(
    keys: NDArray[np.int32], block_at: NDArray[np.intp], w: int, n: int, swap: bool
) -> NDArray[np.int8] | NDArray[np.int16]:
    """`decode_blocks` over `_CHUNK_BLOCKS` blocks at a time, into one array of all the words
    (block_at: the index of each block's first step), so that the temporaries of the rebuild
    (8 bytes and more per step) are bounded and memory stays proportional to the words."""
    nb = block_at.size
    values = np.empty(nb * n, dtype=np.int8 if w == 8 else np.int16)
    for b0 in range(0, nb, _CHUNK_BLOCKS):
        b1 = min(b0 + _CHUNK_BLOCKS, nb)
        s1 = int(block_at[b1]) if b1 < nb else keys.size
        part = decode_blocks(keys[int(block_at[b0]) : s1], w, n, swap)
        values[b0 * n : b1 * n] = part.reshape(-1)
    return values


def _decode_group(
    records: Sequence[EbpcStreams], nnz: NDArray[np.int64], w: int, n: int, swap: bool
) -> tuple[NDArray[np.integer], NDArray[np.int64]]:
    """The BPC streams of records sharing one format, parsed and rebuilt together: all their
    non-zero words in record order (blocks padded), and where each record's words start."""
    n_blocks = -(-nnz // n)
    bitlens = np.array([r.bpc_bitlen for r in records], dtype=np.int64)
    # one buffer, each stream at a byte offset, 8 zero bytes between streams; lanes may
    # read up to 16 bits per step past their segment, so leave room after the last one
    nbytes = (bitlens + 7) >> 3
    offsets = np.cumsum(nbytes + 8) - (nbytes + 8)
    seg = bpc_parse.lane_segment_bits(int(bitlens.sum()))
    buf = np.zeros(int((nbytes + 8).sum()) + 2 * seg + 64, dtype=np.uint8)
    for j, r in enumerate(records):
        buf[offsets[j] : offsets[j] + nbytes[j]] = np.frombuffer(
            r.bpc, dtype=np.uint8, count=int(nbytes[j])
        )
    starts = offsets * 8
    keys, steps = bpc_parse.parse_bpc(buf, starts, starts + bitlens, w, n, swap, seg)
    del buf
    block_at = np.flatnonzero(keys < (1 << 16))  # state 0: the step reads a base
    first_step = np.append(np.cumsum(steps) - steps, keys.size)
    blocks_found = np.diff(np.searchsorted(block_at, first_step))
    if (blocks_found != n_blocks).any():
        j = int(np.flatnonzero(blocks_found != n_blocks)[0])
        raise CorruptStream(
            f"bpc stream holds {int(blocks_found[j])} blocks, "
            f"the znz stream needs {int(n_blocks[j])}"
        )
    values = _rebuild_in_chunks(keys, block_at, w, n, swap)
    del keys, block_at
    block_end = np.cumsum(n_blocks) * n
    value_off = block_end - n_blocks * n
    pad = block_end - value_off - nnz  # padding words at the end of each stream's blocks
    pad_at = np.repeat(block_end - pad, pad) + (
        np.arange(int(pad.sum())) - np.repeat(np.cumsum(pad) - pad, pad)
    )
    if values[pad_at].any():
        raise CorruptStream("bpc stream: the padding words of the last block are not zero")
    if np.count_nonzero(values) != int(nnz.sum()):
        raise CorruptStream("bpc stream decodes a zero where the znz stream has a non-zero word")
    return values, value_off


def decode_many(records: Sequence[EbpcStreams]) -> list[NDArray[np.int8] | NDArray[np.int16]]:
    """Decode several transmissions at once (one shared parse, so many small streams decode
    about as fast as one large one). Returns one array per record: int8 for W = 8, int16 for
    W = 16.

    Raises:
        CorruptStream: any record is inconsistent (one line, naming the field or stream).
    """
    outputs: list[NDArray[np.int8] | NDArray[np.int16]] = []
    runs: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for i, rec in enumerate(records):
        _check_record(rec)
        ones, zeros = decode_znz(bytes(rec.znz), rec.znz_bitlen, rec.n_words)
        runs.append((ones, zeros))
        nnz = int(ones.sum())
        w, n = rec.word_width, rec.block_size
        outputs.append(np.zeros(rec.n_words, dtype=np.int8 if w == 8 else np.int16))
        nb = -(-nnz // n)
        if not nb * (w + 3) <= rec.bpc_bitlen <= nb * (w + (w + 1) * n):
            raise CorruptStream(
                f"ebpc record: bpc_bitlen {rec.bpc_bitlen} is impossible for {nb} blocks"
            )
        if nb:
            groups.setdefault((w, n, rec.swap_zero_codes), []).append(i)
    for (w, n, swap), members in groups.items():
        nnz = np.array([int(runs[i][0].sum()) for i in members], dtype=np.int64)
        values, value_off = _decode_group([records[i] for i in members], nnz, w, n, swap)
        for j, i in enumerate(members):
            vals = values[value_off[j] : value_off[j] + nnz[j]]
            outputs[i] = place_nonzeros(*runs[i], vals, records[i].n_words)
    return outputs


def decode_streams(encoded: EbpcStreams) -> NDArray[np.int8] | NDArray[np.int16]:
    """The words an `EbpcStreams` record encodes (int8 for W = 8, int16 for W = 16).

    Raises:
        CorruptStream: any field or stream is inconsistent (one line, naming it).
    """
    return decode_many([encoded])[0]
