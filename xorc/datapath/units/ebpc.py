"""EBPC decompressor (shared/notes/ebpc.md §2, §4; docs/datapath.md §3.7).

Two streams arrive in parallel: the ZNZ stream (zero-RLE: `1` = a non-zero word, `0` + 4 bits
= a run of 1..16 zeros) and the BPC stream (per block of N non-zero words: a W-bit base, then
the W+1 delta bit-planes, LSB plane first, each a prefix-coded DBX symbol). Units, as in the RTL:

* unpacker + symbol decoder: one symbol per cycle; a block takes 1 cycle for the base and one
  cycle per plane (W+1), so W+2 cycles (10 for W = 8);
* depth-1 buffer, then delta reverse: N cycles per block (one word per cycle), overlapped with
  the next block's decode;
* inverse zero-RLE: merges the non-zero words into the zero runs, `ebpc_words_per_cycle` words
  per cycle (1 in the RTL).

Values are computed here from the bus words with the lane parser for symbol boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.streams import MAX_ZERO_RUN
from xorc.datapath import fields, parser
from xorc.datapath.bitops import transpose_bytes
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream

KEEP, INVERT, ZERO, XOR = 0, 1, 2, 3
WINDOW = 16


@dataclass(frozen=True)
class EbpcTiming:
    """Work counts of one transmission."""

    n_words: int
    nonzero: int
    blocks: int
    znz_symbols: int
    bpc_symbols: int


@cache
def _znz_bytes() -> tuple[NDArray[np.intp], NDArray[np.uint8]]:
    """For each byte value and each offset e (0..4) of its first symbol start: the offset of the
    first symbol start in the next byte, and the byte's symbol starts as a bit mask (MSB = bit 0).
    A symbol is `1` (one bit) or `0` + 4 bits."""
    byte = np.arange(256)[:, None]
    pos = np.broadcast_to(np.arange(5), (256, 5)).copy()
    starts = np.zeros((256, 5), dtype=np.int64)
    for _ in range(8):  # at most 8 symbols start in a byte
        inside = pos < 8
        shift = np.clip(7 - pos, 0, 7)
        starts |= np.where(inside, 1 << shift, 0)
        pos = np.where(inside, pos + np.where((byte >> shift) & 1, 1, 5), pos)
    return (pos - 8).astype(np.uint8), starts.astype(np.uint8)


def _chain(maps: NDArray[np.uint8], first: int, group: int = 32) -> NDArray[np.uint8]:
    """entry[0] = first, entry[i+1] = maps[i, entry[i]]: the state entering each step of a chain
    of small finite maps (states < 256, one byte each). Maps are composed per group of steps (a
    loop of `group` vectorised steps), the groups' entries follow recursively, then each group
    is walked again."""
    n, states = maps.shape
    if n <= group:
        out = np.empty(n, dtype=np.uint8)
        state = first
        for i in range(n):
            out[i] = state
            state = int(maps[i, state])
        return out
    groups = -(-n // group)
    padded = np.broadcast_to(np.arange(states, dtype=np.uint8), (groups * group, states)).copy()
    padded[:n] = maps
    steps = padded.reshape(groups, group, states)
    composed = steps[:, 0, :].copy()
    rows = np.arange(groups)[:, None]
    for j in range(1, group):
        composed = steps[rows, j, composed]
    entry = _chain(composed, first, group)
    out = np.empty((groups, group), dtype=np.uint8)
    cur = entry
    flat = np.arange(groups)
    for j in range(group):
        out[:, j] = cur
        cur = steps[flat, j, cur]
    return out.reshape(-1)[:n]


_CHUNK_BYTES = 1 << 14  # stream bytes handled at once after the boundaries are known


def decode_znz(bus: BusStream, bitlen: int, n_words: int) -> tuple[NDArray[np.bool_], int]:
    """Which words are non-zero (one byte per word) and the number of ZNZ symbols.

    The symbol starts of each byte follow from the chain of byte maps; the symbols are then
    read `_CHUNK_BYTES` bytes at a time, so memory is proportional to the words, not to the
    symbols times a few int64.

    Raises:
        CorruptStream: the symbols do not cover exactly n_words words ending at bit `bitlen`.
    """
    nonzero_at = np.zeros(n_words, dtype=bool)
    if n_words == 0:
        if bitlen:
            raise CorruptStream(f"znz stream has {bitlen} bits for 0 words")
        return nonzero_at, 0
    # symbol boundaries byte by byte: the offset of each byte's first symbol start follows
    # from the previous byte's (a chain of 5-state maps)
    exits, start_bits = _znz_bytes()
    data = bus.words.reshape(-1)[: (bitlen + 7) >> 3]
    marks = start_bits[data, _chain(exits[data], 0)]
    win = fields.windows(bus)
    done = symbols = 0  # words and symbols before the chunk
    for c0 in range(0, marks.size, _CHUNK_BYTES):
        part = marks[c0 : c0 + _CHUNK_BYTES]
        pos = np.flatnonzero(bitio.unpack_bits(part, 8 * part.size)) + 8 * c0
        pos = pos[pos < bitlen]
        head = fields.peek(win, pos, 5).astype(np.int16)
        nonzero = head >= 16
        covered = np.cumsum(np.where(nonzero, 1, head + 1), dtype=np.int64) + done
        last = int(np.searchsorted(covered, n_words))
        if last < covered.size:  # the n_words-th word is in this chunk
            if covered[last] != n_words:
                break
            end = int(pos[last]) + (1 if nonzero[last] else 5)
            if end != bitlen:
                raise CorruptStream(
                    f"znz stream: {n_words} words end at bit {end}, znz_bitlen is {bitlen}"
                )
            nonzero_at[covered[: last + 1][nonzero[: last + 1]] - 1] = True
            return nonzero_at, symbols + last + 1
        nonzero_at[covered[nonzero] - 1] = True
        done, symbols = int(covered[-1]) if covered.size else done, symbols + pos.size
    raise CorruptStream(f"znz stream does not hold exactly {n_words} words")


@cache
def _symbols(word_width: int, block_size: int, swap: bool) -> tuple[NDArray[np.int64], ...]:
    """For every 16-bit window: symbol length, planes covered, plane operation, S, valid."""
    m = block_size - 1
    count_bits = (word_width - 1).bit_length()
    index_bits = (block_size - 1).bit_length()
    w = np.arange(1 << WINDOW, dtype=np.int64)
    top = lambda k: w >> (WINDOW - k)  # noqa: E731 - the first k bits of the window
    length = np.full(w.size, 5 + index_bits, dtype=np.int64)
    planes = np.ones(w.size, dtype=np.int64)
    op = np.full(w.size, XOR, dtype=np.int64)
    s = np.zeros(w.size, dtype=np.int64)
    valid = np.ones(w.size, dtype=bool)
    field = (w >> (WINDOW - 5 - index_bits)) & ((1 << index_bits) - 1)
    pair, single_one = top(5) == 2, top(5) == 3
    valid[pair] = field[pair] <= m - 2
    valid[single_one] = field[single_one] <= m - 1
    s[pair] = np.where(valid[pair], 3 << np.clip(m - 2 - field[pair], 0, None), 0)
    s[single_one] = np.where(valid[single_one], 1 << np.clip(m - 1 - field[single_one], 0, None), 0)
    length[top(5) <= 1] = 5
    op[top(5) == 0] = INVERT
    op[top(5) == 1] = ZERO
    # zero planes: a single one (`01`, swapped `001`) or a run (`001` + count, swapped `01` + count)
    single, run, run_prefix = (
        (top(3) == 1, top(2) == 1, 2) if swap else (top(2) == 1, top(3) == 1, 3)
    )
    length[single] = 5 - run_prefix
    op[single] = KEEP
    length[run] = run_prefix + count_bits
    planes[run] = ((w[run] >> (WINDOW - run_prefix - count_bits)) & ((1 << count_bits) - 1)) + 2
    op[run] = KEEP
    raw = top(1) == 1
    length[raw] = block_size
    s[raw] = (w[raw] >> (WINDOW - block_size)) & ((1 << m) - 1)
    planes[raw | single] = 1
    return length, planes, op, s, valid.astype(np.int64)


@cache
def _bpc_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.int64]:
    """Parser transitions: state 0 expects the base, state c >= 1 expects plane c - 1; after
    plane W the next block starts (state 0)."""
    length, planes, _, _, _ = _symbols(word_width, block_size, swap)
    states = word_width + 2
    table = np.empty((states, 1 << WINDOW), dtype=np.int64)
    table[0] = (1 << 16) | word_width
    for c in range(1, states):
        nxt = c + planes
        nxt[nxt >= states] = 0
        table[c] = (nxt << 16) | length
    return table.reshape(-1)


def deltas_from_planes(
    planes: NDArray[np.int32], word_width: int, block_size: int
) -> NDArray[np.int32]:
    """Delta reverse's input: [blocks, W+1] planes (bit m-1-i of plane b = bit b of d_i, m = N-1)
    to [blocks, m] (W+1)-bit deltas, by 8 x 8 bit transposes of plane bytes."""
    blocks = planes.shape[0]
    m = block_size - 1
    count = word_width + 1
    by_position = np.zeros((blocks, -(-m // 8) * 8), dtype=np.int32)
    for g in range(0, count, 8):
        for h in range(0, m, 8):
            rows = np.zeros((blocks, 8), dtype=np.uint8)
            top = min(8, count - g)
            rows[:, :top] = (planes[:, g : g + top] >> h) & 0xFF
            cols = transpose_bytes(rows)  # byte c: bit r = bit h + c of plane g + r
            by_position[:, h : h + 8] |= cols.astype(np.int32) << g
    return by_position[:, m - 1 :: -1] if m else by_position[:, :0]


_CHUNK_BITS = 1 << 18  # BPC stream bits rebuilt at once (whole blocks; a block is < 300 bits)


def decode_bpc(
    bus: BusStream, bitlen: int, blocks: int, word_width: int, block_size: int, swap: bool
) -> tuple[NDArray[np.int16], int]:
    """The blocks * N words of the BPC stream (signed W-bit) and its symbol count (with bases).

    The parse marks every symbol start (one byte per stream bit); blocks are then rebuilt from
    about `_CHUNK_BITS` bits at a time, cut at a block start, into one int16 array.

    Raises:
        CorruptStream: the stream does not parse into exactly `blocks` blocks ending at `bitlen`.
    """
    w, n = word_width, block_size
    if blocks == 0:
        if bitlen:
            raise CorruptStream(f"bpc stream has {bitlen} bits but no block")
        return np.zeros(0, dtype=np.int16), 0
    win = fields.windows(bus)
    marks, end, end_state = parser.parse_marks(
        win, _bpc_table(w, n, swap), WINDOW, bitlen, segment=2048
    )
    if end != bitlen or end_state != 0:
        raise CorruptStream(f"bpc stream: the last block ends at bit {end}, bpc_bitlen is {bitlen}")
    found = int(np.count_nonzero(marks[:bitlen] == 1))  # state 0 (+ 1): a base
    if found != blocks:
        raise CorruptStream(f"bpc stream holds {found} blocks, the znz stream needs {blocks}")
    words = np.empty(blocks * n, dtype=np.int16)
    a = done = symbols = 0
    while a < bitlen:
        pos = np.flatnonzero(marks[a : a + _CHUNK_BITS]) + a
        state = marks[pos].astype(np.int64) - 1
        nxt = bitlen
        if a + _CHUNK_BITS < bitlen:  # stop before the last block start of the chunk
            cut = int(np.flatnonzero(state == 0)[-1])
            nxt = int(pos[cut])
            pos, state = pos[:cut], state[:cut]
        part = _rebuild_blocks(win, pos, state, w, n, swap)
        words[done : done + part.size] = part
        done, symbols, a = done + part.size, symbols + pos.size, nxt
    return words, symbols


def _rebuild_blocks(
    win: fields.Windows,
    pos: NDArray[np.int64],
    state: NDArray[np.int64],
    w: int,
    n: int,
    swap: bool,
) -> NDArray[np.int64]:
    """The words of whole blocks from their symbols' positions and parser states (a base is
    state 0, plane c - 1 state c).

    Raises:
        CorruptStream: a symbol's field is out of range or a zero-plane run ends past the last
            plane.
    """
    is_base = state == 0
    blocks = int(np.count_nonzero(is_base))
    base = fields.peek(win, pos[is_base], w).astype(np.int64)
    head = fields.peek(win, pos[~is_base], WINDOW).astype(np.intp)
    _, planes, op, s, valid = _symbols(w, n, swap)
    if not valid[head].all():
        raise CorruptStream("bpc stream: a symbol's position field is out of range")
    k = planes[head]
    if (state[~is_base] + k > w + 2).any():
        raise CorruptStream("bpc stream: a zero-plane run goes past the last plane")
    # each plane is P_b = A_b ^ (P_(b-1) & M_b): keep (0, all), invert (all, all), zero (0, 0),
    # xor with S (S, all); one row per plane the symbols cover
    full = (1 << (n - 1)) - 1
    o, sv = op[head], s[head]
    a = np.where(o == INVERT, full, np.where(o == XOR, sv, 0)).astype(np.int32)
    keep = np.where(o == ZERO, 0, full).astype(np.int32)
    a_rows = np.repeat(a, k).reshape(blocks, w + 1)
    m_rows = np.repeat(keep, k).reshape(blocks, w + 1)
    plane_words = np.empty((blocks, w + 1), dtype=np.int32)
    prev = np.zeros(blocks, dtype=np.int32)
    for b in range(w + 1):
        prev = a_rows[:, b] ^ (prev & m_rows[:, b])
        plane_words[:, b] = prev
    delta = deltas_from_planes(plane_words, w, n).astype(np.int64)
    delta -= (delta >> w) << (w + 1)  # sign-extend from W+1 bits
    x = np.concatenate([base[:, None], delta], axis=1)
    np.cumsum(x, axis=1, out=x)
    half = 1 << (w - 1)
    return (((x + half) & ((1 << w) - 1)) - half).reshape(-1)


def decode(
    word_width: int,
    block_size: int,
    n_words: int,
    znz: BusStream,
    znz_bitlen: int,
    bpc: BusStream,
    bpc_bitlen: int,
    swap: bool = False,
) -> tuple[NDArray[np.int16], EbpcTiming]:
    """The n_words signed words of one transmission (int16) and its work counts.

    Stream lengths and pad bits are checked by the caller (they depend on the record format).

    Raises:
        CorruptStream: the streams do not decode to n_words words.
    """
    w, n = word_width, block_size
    if znz_bitlen > 5 * n_words or znz_bitlen < -(-n_words // MAX_ZERO_RUN):
        raise CorruptStream(f"znz_bitlen {znz_bitlen} is impossible for {n_words} words")
    # (a valid block is at least W + 6 bits: a base and one zero run over all planes)
    nonzero_at, znz_symbols = decode_znz(znz, znz_bitlen, n_words)
    nnz = int(np.count_nonzero(nonzero_at))
    blocks = -(-nnz // n)
    if bpc_bitlen > blocks * (w + (w + 1) * n) or bpc_bitlen < blocks * (w + 3):
        raise CorruptStream(f"bpc_bitlen {bpc_bitlen} is impossible for {blocks} blocks")
    vals, bpc_symbols = decode_bpc(bpc, bpc_bitlen, blocks, w, n, swap)
    if nnz and not vals[:nnz].all():
        raise CorruptStream("bpc stream decodes a zero where the znz stream has a non-zero word")
    if vals[nnz:].any():
        raise CorruptStream("bpc stream: the padding words of the last block are not zero")
    out = np.zeros(n_words, dtype=np.int16)
    out[nonzero_at] = vals[:nnz]
    return out, EbpcTiming(n_words, nnz, blocks, znz_symbols, bpc_symbols)


def cycles(t: EbpcTiming, word_width: int, block_size: int, words_per_cycle: int) -> dict[str, int]:
    """Cycle bounds: BPC decode (W+2 per block, overlapped with the N-cycle delta reverse, plus
    the last block's delta reverse) and the inverse zero-RLE output."""
    per_block = max(word_width + 2, block_size)
    bpc = t.blocks * per_block + (block_size if t.blocks else 0)
    return {"ebpc_bpc": bpc, "ebpc_out": -(-t.n_words // words_per_cycle)}


def check_padding(bus: BusStream, bitlen: int, what: str) -> None:
    """Bits after `bitlen` up to the end of the (W-bit padded) transmission must be zero.

    Raises:
        CorruptStream: a nonzero pad bit or byte.
    """
    data = bus.words.reshape(-1)[: bus.nbytes]
    if bitlen % 8 and int(data[bitlen >> 3]) & (0xFF >> (bitlen & 7)):
        raise CorruptStream(f"ebpc stream {what!r} has non-zero padding bits")
    if data[(bitlen + 7) >> 3 :].any():
        raise CorruptStream(f"ebpc stream {what!r} has non-zero padding bytes")
