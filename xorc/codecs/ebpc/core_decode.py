"""EBPC decoder: the RTL's ZNZ and BPC streams -> values (docs/codecs/ebpc.md, "Decoding").

Both streams are prefix codes whose symbol boundaries depend on everything before them. The
decoder finds the boundaries without a Python loop per symbol:

* ZNZ: a byte-wise automaton. For every byte and each of the 5 possible offsets of its first
  symbol boundary, a table gives the offset into the next byte and which bits start symbols;
  the offsets of all bytes follow from a hierarchical composition of these 5-entry maps.
* BPC: speculative parallel parsing. The stream is cut into segments; one lane per segment
  parses symbols from the segment start with a guessed state (state = which plane of the block
  comes next). Lane k is then re-run from where lane k-1 really ends until it meets a state
  its first parse also reached, after which both parses agree. Rounds repeat until no lane's
  exit changes, so the result is exact whatever the guesses were; a guess only costs time.

The symbols are then decoded in one vectorised pass, the planes rebuilt with a loop over the
W+1 planes, and the deltas undone with a cumulative sum.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.streams import (
    MAX_ZERO_RUN,
    EbpcStreams,
    deltas_from_planes,
    format_error,
    padded_nbytes,
    position_bits,
    run_count_bits,
)
from xorc.errors import CorruptStream

# --- ZNZ ----------------------------------------------------------------------------------------

_ZNZ_PHASES = 5  # a symbol is 1 or 5 bits, so the first boundary in a byte is at bit 0..4


@cache
def _znz_tables() -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """EXIT[byte, e]: offset of the first boundary in the next byte when the first boundary in
    this byte is at bit e; STARTS[byte, e]: the bits of this byte that start a symbol."""
    byte = np.arange(256)[:, None]
    pos = np.broadcast_to(np.arange(_ZNZ_PHASES)[None, :], (256, _ZNZ_PHASES)).copy()
    starts = np.zeros((256, _ZNZ_PHASES), dtype=np.int64)
    for _ in range(8):
        live = pos < 8
        bit = (byte >> np.clip(7 - pos, 0, 7)) & 1
        starts |= np.where(live, 1 << np.clip(7 - pos, 0, 7), 0)
        pos = np.where(live, pos + np.where(bit == 1, 1, 5), pos)
    return (pos - 8).astype(np.uint8), starts.astype(np.uint8)


def chain_maps(maps: NDArray[np.uint8], start: int, group: int = 16) -> NDArray[np.int64]:
    """Entry state of each step of a chain of finite maps.

    `maps[k, s]` is the state after step k when step k is entered in state s. Returns `entry`
    with entry[0] = start and entry[k+1] = maps[k, entry[k]], computed by composing the maps
    in groups (work O(n * states), Python loops O(group * log n)).
    """
    n, states = maps.shape
    if n <= group:
        out = np.empty(n, dtype=np.int64)
        s = start
        for k in range(n):
            out[k] = s
            s = int(maps[k, s])
        return out
    ng = -(-n // group)
    padded = np.empty((ng * group, states), dtype=maps.dtype)
    padded[:n] = maps
    padded[n:] = np.arange(states, dtype=maps.dtype)  # identity maps
    g = padded.reshape(ng, group, states)
    composed = g[:, 0, :].copy()
    for j in range(1, group):
        composed = np.take_along_axis(g[:, j, :], composed.astype(np.intp), axis=1)
    entry_g = chain_maps(composed, start, group)
    out = np.empty((ng, group), dtype=np.int64)
    cur = entry_g
    rows = np.arange(ng)
    for j in range(group):
        out[:, j] = cur
        cur = g[rows, j, cur].astype(np.int64)
    return out.reshape(-1)[:n]


def decode_znz(data: bytes, bitlen: int, n_words: int) -> NDArray[np.int64]:
    """Positions of the non-zero words, from the ZNZ stream.

    Raises:
        CorruptStream: the stream does not hold exactly `n_words` words in `bitlen` bits.
    """
    if n_words == 0:
        if bitlen:
            raise CorruptStream(f"znz stream has {bitlen} bits for 0 words")
        return np.zeros(0, dtype=np.int64)
    exit_map, start_map = _znz_tables()
    buf = np.frombuffer(data, dtype=np.uint8)[: (bitlen + 7) >> 3]
    entry = chain_maps(exit_map[buf], 0)
    starts = np.flatnonzero(np.unpackbits(start_map[buf, entry]))
    head = bitio.peek_fields(bitio.byte_windows(buf), starts, 5).astype(np.int64)
    is_one = head >= 16
    counts = np.where(is_one, 1, head + 1)
    total = np.cumsum(counts)
    last = int(np.searchsorted(total, n_words))
    if last == total.size or total[last] != n_words:
        got = int(total[min(last, total.size - 1)]) if total.size else 0
        raise CorruptStream(f"znz stream does not hold exactly {n_words} words (parsed {got})")
    end = int(starts[last]) + (1 if is_one[last] else 5)
    if end != bitlen:
        raise CorruptStream(f"znz stream: {n_words} words end at bit {end}, znz_bitlen is {bitlen}")
    return (total[: last + 1] - 1)[is_one[: last + 1]]


# --- BPC symbol tables ---------------------------------------------------------------------------

# plane operations of a symbol (P = new plane, prev = previous plane of the block)
OP_KEEP, OP_INVERT, OP_ZERO, OP_XOR = 0, 1, 2, 3


@cache
def _symbol_table(
    word_width: int, block_size: int, swap: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Decode of the symbol at the top of every 16-bit window: (length, planes covered,
    plane operation, S value, valid)."""
    m = block_size - 1
    cb, pb = run_count_bits(word_width), position_bits(block_size)
    w = np.arange(1 << 16, dtype=np.int64)
    length = np.zeros_like(w)
    planes = np.ones_like(w)
    op = np.full_like(w, OP_XOR)
    sval = np.zeros_like(w)
    valid = np.ones(w.size, dtype=bool)

    g = (w >> 15) == 1  # 1 + S
    length[g] = block_size
    sval[g] = (w[g] >> (16 - block_size)) & ((1 << m) - 1)

    p01 = (w >> 14) == 1
    p001 = (w >> 13) == 1
    single, run = (p001, p01) if swap else (p01, p001)
    run_prefix = 2 if swap else 3
    length[single] = 5 - run_prefix
    op[single] = OP_KEEP
    length[run] = run_prefix + cb
    planes[run] = ((w[run] >> (16 - run_prefix - cb)) & ((1 << cb) - 1)) + 2
    op[run] = OP_KEEP

    head5 = w >> 11
    length[head5 == 0] = 5
    op[head5 == 0] = OP_INVERT
    length[head5 == 1] = 5
    op[head5 == 1] = OP_ZERO
    idx = (w >> (11 - pb)) & ((1 << pb) - 1)
    pair, one = head5 == 2, head5 == 3
    length[pair | one] = 5 + pb
    valid[pair] = idx[pair] <= m - 2
    valid[one] = idx[one] <= m - 1
    sval[pair] = np.where(valid[pair], 3 << np.clip(m - 2 - idx[pair], 0, None), 0)
    sval[one] = np.where(valid[one], 1 << np.clip(m - 1 - idx[one], 0, None), 0)
    for a in (length, planes, op, sval, valid):
        a.setflags(write=False)
    return length, planes, op, sval, valid


@cache
def _transition_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.int64]:
    """T[(c << 16) | window] = (next_c << 16) | length for parser state c (0 = base next,
    c >= 1 = plane c-1 next); after plane W the block ends and the state returns to 0."""
    length, planes, _, _, _ = _symbol_table(word_width, block_size, swap)
    last = word_width + 2
    table = np.empty((last, 1 << 16), dtype=np.int64)
    table[0] = (1 << 16) | word_width
    for c in range(1, last):
        nxt = c + planes
        nxt[nxt >= last] = 0
        table[c] = (nxt << 16) | length
    table = table.reshape(-1)
    table.setflags(write=False)
    return table


# --- BPC parsing ----------------------------------------------------------------------------------

_CHECK_EVERY = 8  # lanes test their stop condition every few steps


def _run_lanes(
    win: NDArray[np.uint64],
    table: NDArray[np.int64],
    pos: NDArray[np.int64],
    cs: NDArray[np.int64],
    stop: NDArray[np.int64],
    limit: int,
    sync: NDArray[np.int8] | None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Parse symbols in every lane until each lane reaches its `stop` position or (with
    `sync`) a state its previous parse recorded (`sync[pos] == state`).

    `cs` holds states shifted left by 16. Returns the states visited, as positions and shifted
    states [steps + 1, lanes], and the index of each lane's end state in them (the first
    state meeting the stop condition; the states before it are the lane's new parse).
    """
    hist_p = []
    hist_c = []
    step = 0
    shift = np.uint64(48)
    while True:
        if step % _CHECK_EVERY == 0:
            fin = pos >= stop
            if sync is not None:
                fin |= sync[pos] == (cs >> 16)
            if fin.all():
                break
        hist_p.append(pos)
        hist_c.append(cs)
        w = (win[pos >> 3] << (pos & 7).astype(np.uint64)) >> shift
        t = table[cs | w.astype(np.int64)]
        pos = np.minimum(pos + (t & 0xFFFF), limit)
        cs = t & ~0xFFFF
        step += 1
    hist_p.append(pos)
    hist_c.append(cs)
    hp = np.stack(hist_p)
    hc = np.stack(hist_c)
    fin = hp >= stop
    if sync is not None:
        fin |= sync[hp] == (hc >> 16)
    return hp, hc, np.argmax(fin, axis=0)


def _windows(data: bytes, bitlen: int) -> NDArray[np.uint64]:
    """Byte windows of the first `bitlen` bits, readable up to 4 bytes past the end."""
    buf = np.zeros(((bitlen + 7) >> 3) + 4, dtype=np.uint8)
    buf[: (bitlen + 7) >> 3] = np.frombuffer(data, dtype=np.uint8)[: (bitlen + 7) >> 3]
    return bitio.byte_windows(buf)


def _segment_bits(bitlen: int) -> int:
    """Segment length of one lane: long enough for lanes to synchronise, short enough for
    enough lanes to amortise the per-step cost."""
    return int(min(max(1024, bitlen // 2048), 16384))


def parse_bpc(
    data: bytes, bitlen: int, word_width: int, block_size: int, swap: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Symbol start positions of the BPC stream and the parser state at each (0 = base).

    Raises:
        CorruptStream: the stream does not end exactly at a block boundary at `bitlen`.
    """
    table = _transition_table(word_width, block_size, swap)
    win = _windows(data, bitlen)
    seg = _segment_bits(bitlen)
    lanes = -(-bitlen // seg)
    starts = np.arange(lanes, dtype=np.int64) * seg
    ends = np.minimum(starts + seg, bitlen)
    limit = bitlen + 16  # positions are clamped here; 16 > the longest symbol
    state = np.full(limit + 1, -1, dtype=np.int8)

    # round 0: every lane guesses "base next" at its segment start (exact for lane 0)
    hp, hc, end = _run_lanes(win, table, starts, np.zeros(lanes, np.int64), ends, limit, None)
    cols = np.arange(lanes)
    exit_p, exit_c = hp[end, cols], hc[end, cols]
    keep = np.arange(hp.shape[0])[:, None] < end[None, :]
    state[hp[keep]] = hc[keep] >> 16

    # fix-up rounds: re-run lane k from lane k-1's exit until it meets its own earlier parse
    todo = np.arange(1, lanes)
    while todo.size:
        hp, hc, end = _run_lanes(
            win, table, exit_p[todo - 1], exit_c[todo - 1], ends[todo], limit, state
        )
        cols = np.arange(todo.size)
        new_p, new_c = hp[end, cols], hc[end, cols]
        stop_at = np.minimum(new_p, ends[todo])
        # erase the old parse from the segment start to where the new one joined it
        span = stop_at - starts[todo]
        if span.sum():
            offs = np.repeat(starts[todo] - (np.cumsum(span) - span), span)
            state[offs + np.arange(int(span.sum()))] = -1
        keep = np.arange(hp.shape[0])[:, None] < end[None, :]
        state[hp[keep]] = hc[keep] >> 16
        # a lane that met its old parse keeps its exit; one that ran to its end has a new exit
        ran_out = new_p >= ends[todo]
        changed = ran_out & ((new_p != exit_p[todo]) | (new_c != exit_c[todo]))
        exit_p[todo[changed]], exit_c[todo[changed]] = new_p[changed], new_c[changed]
        todo = todo[changed] + 1
        todo = todo[todo < lanes]

    if lanes and (exit_p[-1] != bitlen or exit_c[-1] != 0):
        raise CorruptStream(
            f"bpc stream: the last block ends at bit {int(exit_p[-1])} "
            f"(state {int(exit_c[-1]) >> 16}), bpc_bitlen is {bitlen}"
        )
    pos = np.flatnonzero(state[:bitlen] >= 0)
    return pos, state[pos].astype(np.int64)


def decode_bpc(
    data: bytes, bitlen: int, n_blocks: int, word_width: int, block_size: int, swap: bool
) -> NDArray[np.int32]:
    """The n_blocks * N words coded in the BPC stream (signed, W-bit wrapped)."""
    w, n = word_width, block_size
    if n_blocks == 0:
        if bitlen:
            raise CorruptStream(f"bpc stream has {bitlen} bits but the znz stream has no non-zero word")
        return np.zeros(0, dtype=np.int32)
    pos, st = parse_bpc(data, bitlen, w, n, swap)
    is_base = st == 0
    nb = int(is_base.sum())
    if nb != n_blocks:
        raise CorruptStream(f"bpc stream holds {nb} blocks, the znz stream needs {n_blocks}")
    win = _windows(data, bitlen)
    base = bitio.peek_fields(win, pos[is_base], w).astype(np.int32)
    sym_pos, sym_st = pos[~is_base], st[~is_base]
    length_t, planes_t, op_t, s_t, valid_t = _symbol_table(w, n, swap)
    head = bitio.peek_fields(win, sym_pos, 16).astype(np.int64)
    if not valid_t[head].all():
        bad = int(sym_pos[~valid_t[head]][0])
        raise CorruptStream(f"bpc stream: invalid position field in the symbol at bit {bad}")
    k = planes_t[head]
    if (sym_st + k > w + 2).any():
        bad = int(sym_pos[sym_st + k > w + 2][0])
        raise CorruptStream(f"bpc stream: zero-plane run past the last plane at bit {bad}")
    op = np.repeat(op_t[head], k).reshape(nb, w + 1)
    sv = np.repeat(s_t[head], k).reshape(nb, w + 1).astype(np.int32)
    full = (1 << (n - 1)) - 1
    # P_b = A_b ^ (P_{b-1} & M_b): keep (A=0, M=full), invert (full, full), zero (0, 0), xor (S, full)
    a = np.where(op == OP_INVERT, full, np.where(op == OP_XOR, sv, 0)).astype(np.int32)
    mk = np.where(op == OP_ZERO, 0, full).astype(np.int32)
    planes = np.empty((nb, w + 1), dtype=np.int32)
    prev = np.zeros(nb, dtype=np.int32)
    for b in range(w + 1):
        prev = a[:, b] ^ (prev & mk[:, b])
        planes[:, b] = prev
    d = deltas_from_planes(planes, w, n)
    d -= (d >> w) << (w + 1)  # sign-extend from W+1 bits
    x = np.empty((nb, n), dtype=np.int32)
    x[:, 0] = base
    x[:, 1:] = d
    np.cumsum(x, axis=1, out=x)
    half = 1 << (w - 1)
    return (((x + half) & ((1 << w) - 1)) - half).reshape(-1)


def decode_streams(encoded: EbpcStreams) -> NDArray[np.int8] | NDArray[np.int16]:
    """The words an `EbpcStreams` record encodes (int8 for W = 8, int16 for W = 16).

    Raises:
        CorruptStream: any field or stream is inconsistent (one line, naming it).
    """
    w, n = encoded.word_width, encoded.block_size
    problem = format_error(w, n, True)
    if problem:
        raise CorruptStream(f"ebpc record: {problem}")
    if n > w and not getattr(encoded, "allow_non_rtl_block", True):
        raise CorruptStream(f"ebpc record: block size {n} > word width {w}")
    for field in ("n_words", "znz_bitlen", "bpc_bitlen"):
        value = getattr(encoded, field)
        if type(value) is not int or value < 0:
            raise CorruptStream(f"ebpc record: {field} must be a non-negative integer, got {value!r}")
    for name in ("znz", "bpc"):
        data = getattr(encoded, name)
        if not isinstance(data, bytes | bytearray):
            raise CorruptStream(f"ebpc record: stream {name!r} must be bytes")
        bitlen = getattr(encoded, f"{name}_bitlen")
        if len(data) != padded_nbytes(bitlen, w):
            raise CorruptStream(
                f"ebpc stream {name!r} is {len(data)} bytes, {bitlen} bits padded to "
                f"{w}-bit words need {padded_nbytes(bitlen, w)}"
            )
        if bitlen % 8 and data[bitlen >> 3] & (0xFF >> (bitlen & 7)):
            raise CorruptStream(f"ebpc stream {name!r} has non-zero padding bits")
        if any(data[(bitlen + 7) >> 3 :]):
            raise CorruptStream(f"ebpc stream {name!r} has non-zero padding bytes")
    n_words = encoded.n_words
    if encoded.znz_bitlen > 5 * n_words or encoded.znz_bitlen < -(-n_words // MAX_ZERO_RUN) * 1:
        raise CorruptStream(f"ebpc record: znz_bitlen {encoded.znz_bitlen} impossible for {n_words} words")
    nz_pos = decode_znz(bytes(encoded.znz), encoded.znz_bitlen, n_words)
    nnz = nz_pos.size
    nb = -(-nnz // n)
    if encoded.bpc_bitlen > nb * (w + (w + 1) * n) or encoded.bpc_bitlen < nb * (w + 2):
        raise CorruptStream(f"ebpc record: bpc_bitlen {encoded.bpc_bitlen} impossible for {nb} blocks")
    vals = decode_bpc(bytes(encoded.bpc), encoded.bpc_bitlen, nb, w, n, encoded.swap_zero_codes)
    if nnz and not vals[:nnz].all():
        raise CorruptStream("bpc stream decodes a zero at a position the znz stream marks non-zero")
    if vals[nnz:].any():
        raise CorruptStream("bpc stream: the padding words of the last block are not zero")
    out = np.zeros(n_words, dtype=np.int8 if w == 8 else np.int16)
    out[nz_pos] = vals[:nnz]
    return out
