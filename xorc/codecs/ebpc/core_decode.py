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


def _run_lanes(
    win: NDArray[np.uint64],
    table: NDArray[np.int64],
    pos: NDArray[np.int64],
    cs: NDArray[np.int64],
    stop: NDArray[np.int64],
    limit: int,
    sync: NDArray[np.int8] | None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Step every lane one symbol at a time until it reaches `stop` (or, with `sync`, a state
    its earlier parse had). Returns the history of positions and shifted states [steps, lanes]
    (entries at or past a lane's end are -1), each lane's end position and end state, and the
    step at which each lane ended."""
    lanes = pos.size
    hist_p: list[NDArray[np.int64]] = []
    hist_c: list[NDArray[np.int64]] = []
    done = np.zeros(lanes, dtype=bool)
    end_p = pos.copy()
    end_c = cs.copy()
    end_step = np.zeros(lanes, dtype=np.int64)
    step = 0
    check_every = 8
    while True:
        if step % check_every == 0:
            fin = pos >= stop
            if sync is not None:
                fin |= sync[np.minimum(pos, limit)] == (cs >> 16)
            newly = fin & ~done
            if newly.any():
                # locate the exact step each newly finished lane ended at (within the last few)
                _settle(hist_p, hist_c, newly, stop, sync, limit, pos, cs, end_p, end_c, end_step, step)
                done |= newly
            if done.all():
                break
        hist_p.append(pos)
        hist_c.append(cs)
        w = (win[pos >> 3] << (pos & 7).astype(np.uint64)) >> np.uint64(48)
        t = table[cs | w.astype(np.int64)]
        pos = np.minimum(pos + (t & 0xFFFF), limit)
        cs = t & ~0xFFFF
        step += 1
    hp = np.array(hist_p, dtype=np.int64).reshape(step, lanes)
    hc = np.array(hist_c, dtype=np.int64).reshape(step, lanes)
    alive = np.arange(step)[:, None] < end_step[None, :]
    hp[~alive] = -1
    return hp, hc, end_p, end_c, end_step


def _settle(
    hist_p: list[NDArray[np.int64]],
    hist_c: list[NDArray[np.int64]],
    newly: NDArray[np.bool_],
    stop: NDArray[np.int64],
    sync: NDArray[np.int8] | None,
    limit: int,
    pos: NDArray[np.int64],
    cs: NDArray[np.int64],
    end_p: NDArray[np.int64],
    end_c: NDArray[np.int64],
    end_step: NDArray[np.int64],
    step: int,
) -> None:
    """For lanes that finished during the last few steps, find the first step whose state
    meets the stop condition, and record it as the lane's end."""
    lanes = np.flatnonzero(newly)
    found = np.zeros(lanes.size, dtype=bool)
    back = min(len(hist_p), 8)
    states = [(hist_p[step - back + i][lanes], hist_c[step - back + i][lanes]) for i in range(back)]
    states.append((pos[lanes], cs[lanes]))
    for i, (p, c) in enumerate(states):
        fin = p >= stop[lanes]
        if sync is not None:
            fin |= sync[np.minimum(p, limit)] == (c >> 16)
        take = fin & ~found
        sel = lanes[take]
        end_p[sel] = p[take]
        end_c[sel] = c[take]
        end_step[sel] = step - back + i
        found |= take
