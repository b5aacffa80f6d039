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
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.parse_jit import compiled_walker
from xorc.codecs.ebpc.streams import (
    ZNZ_COUNT_BITS,
    EbpcStreams,
    deltas_mod_from_planes,
    format_error,
    padded_nbytes,
    plane_dtype,
    position_bits,
    run_count_bits,
    transpose8_le,
)
from xorc.errors import CorruptStream

# --- ZNZ ----------------------------------------------------------------------------------------

_ZNZ_PHASES = 5  # a symbol is 1 or 5 bits, so the first boundary in a chunk is at bit 0..4
_ZNZ_RESOLVE_ROUNDS = 64  # longer runs of ambiguous chunks go to `chain_maps`


@cache
def _znz_tables() -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
    """For every 16-bit chunk of the ZNZ stream and each offset e (0..4) of its first symbol
    boundary: EXIT[chunk, e], the offset of the first boundary in the next chunk, and
    ZERO[chunk, e], the bits of the chunk (MSB = first bit) that start a zero-run symbol."""
    chunk = np.arange(1 << 16, dtype=np.int64)[:, None]
    pos = np.broadcast_to(np.arange(_ZNZ_PHASES)[None, :], (chunk.size, _ZNZ_PHASES)).copy()
    zero = np.zeros(pos.shape, dtype=np.int64)
    for _ in range(16):
        live = pos < 16
        at = np.clip(15 - pos, 0, 15)
        bit = (chunk >> at) & 1
        zero |= np.where(live & (bit == 0), 1 << at, 0)
        pos = np.where(live, pos + np.where(bit == 1, 1, 5), pos)
    return (pos - 16).astype(np.uint8), zero.astype(np.uint16)


@cache
def _znz_constant() -> NDArray[np.intp]:
    """For every 16-bit chunk: its exit offset if it is the same for all entry offsets (the
    parses from all offsets have merged inside the chunk), else -1."""
    exit_map, _ = _znz_tables()
    same = (exit_map == exit_map[:, :1]).all(axis=1)
    return np.where(same, exit_map[:, 0].astype(np.intp), -1)


def _znz_entries(chunks: NDArray[np.intp]) -> NDArray[np.intp]:
    """Offset of the first symbol boundary in each chunk (the first chunk starts at 0).

    Most chunks send every entry offset to the same exit, which fixes the next chunk's entry
    without knowing their own; the few others are resolved along the short runs they form, and
    the general composition (`chain_maps`) takes over if those runs are long."""
    exit_map, _ = _znz_tables()
    entry = np.empty(chunks.size, dtype=np.intp)
    entry[0] = 0
    entry[1:] = _znz_constant()[chunks[:-1]]
    todo = np.flatnonzero(entry < 0)
    for _ in range(_ZNZ_RESOLVE_ROUNDS):
        if not todo.size:
            return entry
        prev = entry[todo - 1]
        ready = prev >= 0
        entry[todo[ready]] = exit_map[chunks[todo[ready] - 1], prev[ready]]
        todo = todo[~ready]
    if not todo.size:
        return entry
    return chain_maps(exit_map[chunks], 0)


def chain_maps(maps: NDArray[np.integer], start: int, group: int = 16) -> NDArray[np.intp]:
    """Entry state of each step of a chain of finite maps.

    `maps[k, s]` is the state after step k when step k is entered in state s. Returns `entry`
    with entry[0] = start and entry[k+1] = maps[k, entry[k]], computed by composing the maps
    in groups of `group` (work O(n * states); Python loops O(group * log n)).
    """
    n, states = maps.shape
    if n <= group:
        out = np.empty(n, dtype=np.intp)
        s = start
        for k in range(n):
            out[k] = s
            s = int(maps[k, s])
        return out
    ng = -(-n // group)
    padded = np.empty((ng * group, states), dtype=np.intp)
    padded[:n] = maps
    padded[n:] = np.arange(states)  # identity maps
    flat = padded.reshape(-1)
    row = (np.arange(ng, dtype=np.intp) * (group * states))[:, None]
    composed = padded[0::group].copy()
    for j in range(1, group):
        composed = flat[row + j * states + composed]
    entry_g = chain_maps(composed, start, group)
    out = np.empty((ng, group), dtype=np.intp)
    cur = entry_g
    row1 = row[:, 0]
    for j in range(group):
        out[:, j] = cur
        cur = flat[row1 + j * states + cur]
    return out.reshape(-1)[:n]


def decode_znz(
    data: bytes, bitlen: int, n_words: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Run structure of the words, from the ZNZ stream: `ones[i]` non-zero words, then
    `zeros[i]` zero words (one zero-run chunk), for i = 0..k-1, then `ones[k]` non-zero words.

    Between two zero-run symbols every bit is a one-bit `1` symbol, so only the zero-run
    symbols need to be found: a chunk automaton locates them.

    Raises:
        CorruptStream: the stream does not hold exactly `n_words` words in `bitlen` bits.
    """
    if n_words == 0 or bitlen == 0:
        if n_words or bitlen:
            raise CorruptStream(f"znz stream has {bitlen} bits for {n_words} words")
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, zero_map = _znz_tables()
    nbytes = (bitlen + 7) >> 3
    buf = np.zeros(nbytes + (nbytes & 1), dtype=np.uint8)
    buf[:nbytes] = np.frombuffer(data, dtype=np.uint8, count=nbytes)
    chunks = buf.view(">u2").astype(np.intp)
    entry = _znz_entries(chunks)
    zmask = zero_map[chunks, entry].astype(">u2").view(np.uint8)
    z = np.flatnonzero(np.unpackbits(zmask, count=bitlen).view(bool))
    if z.size and int(z[-1]) + 1 + ZNZ_COUNT_BITS > bitlen:
        raise CorruptStream(f"znz stream ends inside a zero-run symbol (znz_bitlen {bitlen})")
    zeros = bitio.peek_units(bitio.unit_windows(buf, bitlen), z + 1, ZNZ_COUNT_BITS) + 1
    ones = np.empty(z.size + 1, dtype=np.int64)
    ones[0] = z[0] if z.size else bitlen
    ones[1:-1] = np.diff(z) - (1 + ZNZ_COUNT_BITS)
    if z.size:
        ones[-1] = bitlen - int(z[-1]) - (1 + ZNZ_COUNT_BITS)
    total = int(ones.sum() + zeros.sum())
    if total != n_words:
        raise CorruptStream(f"znz stream holds {total} words, n_words is {n_words}")
    return ones, zeros


def place_nonzeros(
    ones: NDArray[np.int64], zeros: NDArray[np.int64], values: NDArray[np.integer], n_words: int
) -> NDArray[np.integer]:
    """The words: the non-zero `values` spread over the run structure of `decode_znz`."""
    out = np.zeros(n_words, dtype=values.dtype)
    if values.size == n_words:
        out[:] = values
        return out
    zeros_before = np.zeros(ones.size, dtype=np.int64)
    np.cumsum(zeros, out=zeros_before[1:])
    pos = np.arange(values.size, dtype=np.int64) + np.repeat(zeros_before, ones)
    out[pos] = values
    return out


# --- BPC tables -----------------------------------------------------------------------------------


@cache
def _symbol_table(
    word_width: int, block_size: int, swap: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """For the symbol at the top of every 16-bit window: (length, planes covered, plane code,
    valid). The plane code of a plane is A | flag << (N-1): the plane is A ^ previous plane
    when flag is set, A otherwise (keep: 0|1, invert: full|1, all-zero plane: 0|0, xor: S|1)."""
    m = block_size - 1
    full = (1 << m) - 1
    keep = 1 << m
    cb, pb = run_count_bits(word_width), position_bits(block_size)
    w = np.arange(1 << 16, dtype=np.int64)
    length = np.zeros_like(w)
    planes = np.ones_like(w)
    code = np.zeros_like(w)
    valid = np.ones(w.size, dtype=bool)

    g = (w >> 15) == 1  # 1 + S
    length[g] = block_size
    code[g] = ((w[g] >> (16 - block_size)) & full) | keep

    p01 = (w >> 14) == 1
    p001 = (w >> 13) == 1
    single, run = (p001, p01) if swap else (p01, p001)
    run_prefix = 2 if swap else 3
    length[single] = 5 - run_prefix
    code[single] = keep
    length[run] = run_prefix + cb
    planes[run] = ((w[run] >> (16 - run_prefix - cb)) & ((1 << cb) - 1)) + 2
    code[run] = keep

    head5 = w >> 11
    length[head5 <= 1] = 5
    code[head5 == 0] = full | keep  # all ones: invert the previous plane
    code[head5 == 1] = 0  # the plane itself is zero
    idx = (w >> (11 - pb)) & ((1 << pb) - 1)
    pair, one = head5 == 2, head5 == 3
    length[pair | one] = 5 + pb
    valid[pair] = idx[pair] <= m - 2
    valid[one] = idx[one] <= m - 1
    code[pair] = (3 << np.clip(m - 2 - idx[pair], 0, None)) & full | keep
    code[one] = (1 << np.clip(m - 1 - idx[one], 0, None)) & full | keep
    return length, planes, code, valid


_LEN_MASK, _KC_SHIFT, _KC_MASK, _VALID_BIT, _STATE_MASK = 0x1F, 5, 0x1F, 1 << 15, ~0xFFFF


@cache
def _step_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.int32]:
    """STEP[(c << 16) | window] for parser state c (0: the base is next; c >= 1: plane c-1 is
    next): bits 0-4 the bits consumed, 5-9 the planes covered, bit 15 valid, bits 16+ the next
    state. A step reads the base (state 0) and then as many whole symbols as the 16-bit window
    holds, never past the end of the block (after plane W the state returns to 0). A step always
    consumes at least one symbol; if that symbol is invalid (a position field out of range, a
    zero run past the last plane) the step is marked invalid and ends the block."""
    length, planes, _, sym_valid = _symbol_table(word_width, block_size, swap)
    states = word_width + 2
    c = np.repeat(np.arange(states, dtype=np.int64), 1 << 16)
    w = np.tile(np.arange(1 << 16, dtype=np.int64), states)
    used = np.where(c == 0, word_width, 0)
    cur = np.where(c == 0, 1, c)
    covered = np.zeros_like(c)
    valid = np.ones(c.size, dtype=bool)
    done = used >= 16
    for _ in range(8):  # a symbol is at least 2 bits
        top = (w << used) & 0xFFFF
        ln, k, ok = length[top], planes[top], sym_valid[top]
        fits = (used + ln <= 16) & ~done
        good = fits & ok & (cur + k <= states)
        forced = fits & ~good & (used == 0)  # the first symbol of a step is always consumed
        take = good | forced
        used = np.where(take, used + ln, used)
        covered = np.where(good, covered + k, covered)
        cur = np.where(good, cur + k, cur)
        valid &= ~forced
        done |= ~take | forced | (cur == states)
    nxt = np.where(valid & (cur < states), cur, 0)
    table = used | (covered << _KC_SHIFT) | (valid * _VALID_BIT) | (nxt << 16)
    return table.astype(np.int32)


_INVALID_STEP = 0x80


@cache
def _step_len_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.uint8]:
    """LEN[key]: the bits a step consumes (as in `_step_table`), plus `_INVALID_STEP` if the
    step is invalid; a small table for the checks over all steps."""
    table = _step_table(word_width, block_size, swap)
    invalid = np.where(table & _VALID_BIT, 0, _INVALID_STEP)
    return ((table & _LEN_MASK) | invalid).astype(np.uint8)


@cache
def _plane_code_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.unsignedinteger]:
    """PLANES[window, j]: plane code of the j-th plane covered by the whole symbols at the top of
    the 16-bit window, parsed as if the block had no end. [65536, W+1]."""
    length, planes, code, _ = _symbol_table(word_width, block_size, swap)
    nplanes = word_width + 1
    w = np.arange(1 << 16, dtype=np.int64)
    out = np.zeros((w.size, nplanes), dtype=plane_dtype(block_size))
    used = np.zeros_like(w)
    first = np.zeros_like(w)
    live = np.ones(w.size, dtype=bool)
    cols = np.arange(nplanes)[None, :]
    for _ in range(8):
        top = (w << used) & 0xFFFF
        ln, k, cd = length[top], planes[top], code[top]
        live &= (used + ln <= 16) & (first < nplanes)
        span = live[:, None] & (cols >= first[:, None]) & (cols < (first + k)[:, None])
        out[span] = np.broadcast_to(cd[:, None], span.shape)[span]
        used = np.where(live, used + ln, used)
        first = np.where(live, first + k, first)
    return out


# --- BPC parsing ----------------------------------------------------------------------------------
#
# A parser state is a bit position and a plane state c; the "key" of a state is
# (c << 16) | (the 16 stream bits at the position), the index into the step table. Keys are what
# the parse records: they give the state, the window and, through the tables, everything the
# block decoder needs.

_CHECK_EVERY = 16  # lanes test their stop condition every few steps


_SMALL_STREAM_BITS = 1 << 21  # below this, per-bit windows are cheaper than per-step peeks


class _Windows:
    """The 16 stream bits at any bit position, as an int array (the low half of a parser key).

    Small buffers get every position's window precomputed (about 1 ns per bit), so a parse step
    reads one gather; large ones read two 32-bit units per lookup instead."""

    def __init__(self, buf: NDArray[np.uint8]) -> None:
        self.nbits = 8 * buf.size
        small = self.nbits <= _SMALL_STREAM_BITS
        self.every = bitio.windows16(buf) if small else None
        self.units = None if small else bitio.unit_windows(buf, self.nbits)

    def __call__(self, pos: NDArray[np.integer]) -> NDArray[np.integer]:
        if self.every is not None:
            return self.every[pos]
        assert self.units is not None
        return bitio.peek_units(self.units, pos, 16)


def _run_round0(
    win: _Windows,
    table: NDArray[np.int32],
    start: NDArray[np.int64],
    stop: NDArray[np.int64],
) -> tuple[NDArray[np.signedinteger], NDArray[np.int32], NDArray[np.int64]]:
    """Round 0: every lane parses from its segment start in state 0 until it passes its
    segment end (lanes that are done keep stepping until the last one is: the buffer must be
    readable 8 * (longest segment) bits past the last segment). Records keys only; positions
    are rebuilt from the step lengths. Returns the positions and keys
    of the states visited inside each lane's segment, lane-major (so sorted by position), and
    the count per lane. Keys are int32; positions are int32 for buffers under 2**31 bits."""
    lanes = start.size
    rows = int((stop - start).max()) // 8 + 2 * _CHECK_EVERY
    rec_k = np.empty((rows, lanes), dtype=np.int32)
    pos = start.copy()
    cs = np.zeros(lanes, dtype=np.int32)
    step = 0
    while True:
        key = cs | win(pos)
        if step == rows:  # grow the record buffer
            rec_k = np.concatenate([rec_k, np.empty_like(rec_k)])
            rows *= 2
        rec_k[step] = key
        step += 1
        if step % _CHECK_EVERY == 1 and (pos >= stop).all():
            break
        t = table[key]
        pos = pos + (t & _LEN_MASK)
        cs = t & _STATE_MASK
    # positions: each lane's start plus the bits its earlier steps consumed
    k = np.ascontiguousarray(rec_k[:step].T)
    p = np.empty(k.shape, dtype=np.int32 if win.nbits < 1 << 31 else np.int64)
    p[:, 0] = start
    np.cumsum(table[k[:, :-1]] & _LEN_MASK, axis=1, out=p[:, 1:])
    p[:, 1:] += start[:, None].astype(p.dtype)
    inside = p < stop[:, None]
    return p[inside], k[inside], inside.sum(axis=1)


def _run_fixup(
    win: _Windows,
    table: NDArray[np.int32],
    lanes: NDArray[np.int64],
    pos: NDArray[np.int64],
    cs: NDArray[np.int64],
    stop: NDArray[np.int64],
    r_pos: NDArray[np.signedinteger],
    r_key: NDArray[np.int32],
) -> tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]
]:
    """Step every lane until it stands on a state round 0 visited (`_visited`) or passes
    `stop[lane]`. Lanes are tested every few steps, so a lane may take a few steps too many.
    Returns every state visited, as (position, key, lane, step), step-major, and `reach`
    (indexed like `stop`): the position where each lane was found on round 0's path, or
    `stop[lane]` if it passed it first (from `reach` on, round 0's parse is the lane's)."""
    rec_p, rec_k, rec_l, rec_n = [], [], [], []
    reach = stop.copy()
    step = 0
    while lanes.size:
        key = cs | win(pos)
        rec_p.append(pos)
        rec_k.append(key)
        rec_l.append(lanes)
        rec_n.append(lanes.size)
        if step % _CHECK_EVERY == 0:
            past = pos >= stop[lanes]
            met = ~past & _visited(r_pos, r_key, pos, key)
            fin = past | met
            if fin.any():
                reach[lanes[met]] = pos[met]
                keep = ~fin
                lanes, pos, cs, key = lanes[keep], pos[keep], cs[keep], key[keep]
                if not lanes.size:
                    break
        t = table[key]
        pos = pos + (t & _LEN_MASK)
        cs = t & _STATE_MASK
        step += 1
    if not rec_n:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, reach
    steps = np.repeat(np.arange(len(rec_n), dtype=np.int64), rec_n)
    return np.concatenate(rec_p), np.concatenate(rec_k), np.concatenate(rec_l), steps, reach


def _visited(
    r_pos: NDArray[np.signedinteger],
    r_key: NDArray[np.int32],
    pos: NDArray[np.int64],
    key: NDArray[np.int64],
) -> NDArray[np.bool_]:
    """Whether round 0 (records sorted by position, at most one per position) stood at each
    position in the plane state of `key`."""
    at = np.minimum(np.searchsorted(r_pos, pos.astype(r_pos.dtype)), r_pos.size - 1)
    return (r_pos[at] == pos) & ((r_key[at] ^ key) < (1 << 16))


def _segment_bits(total_bits: int) -> int:
    """Segment length of one lane: long enough that most lanes meet the true parse inside their
    segment, short enough to give a few thousand lanes to share the per-step cost."""
    return int(min(max(4096, total_bits // 2048), 1 << 15))


def parse_bpc(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    word_width: int,
    block_size: int,
    swap: bool,
    segment_bits: int | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Parse several non-empty BPC streams held in `buf` (stream i in bits [starts[i],
    ends[i]), in increasing order, separated by at least 64 zero bits; `buf` must hold 16 *
    segment bits past the last end, which the speculative parser may read).

    Uses the compiled sequential parser (`parse_jit`) when numba is available, else the
    speculative numpy parser with segments of `segment_bits`; both give the same keys.

    Returns the keys of the steps of all streams, in order, and the number of steps of each
    stream.

    Raises:
        CorruptStream: a stream does not end with a whole block exactly at its end, or a step
            holds an invalid symbol.
    """
    table = _step_table(word_width, block_size, swap)
    walk = compiled_walker()
    if walk is not None:
        out_key, steps_per_stream = walk(bitio.unit_windows(buf, 8 * buf.size), table, starts, ends)
    else:
        out_key, steps_per_stream = _parse_speculative(
            _Windows(buf), table, starts, ends, segment_bits
        )

    # each stream's steps must end a block exactly at the stream's end
    lv = _step_len_table(word_width, block_size, swap)[out_key]
    first_step = np.cumsum(steps_per_stream) - steps_per_stream
    wide = np.int64 if int(ends.max()) >= 1 << 31 else np.int32
    end_pos = starts + np.add.reduceat(lv & _LEN_MASK, first_step, dtype=wide)
    end_state = table[out_key[first_step + steps_per_stream - 1]] >> 16
    bad = (end_pos != ends) | (end_state != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CorruptStream(
            f"bpc stream: the parse ends {int(end_pos[i] - ends[i]):+d} bits from the stream end, "
            f"in plane state {int(end_state[i])} (0 = at a block boundary)"
        )
    if lv.max() >= _INVALID_STEP:
        bad = int(np.flatnonzero(lv >= _INVALID_STEP)[0])
        raise CorruptStream(f"bpc stream: invalid symbol (step {bad} of the parse)")
    return out_key, steps_per_stream


def _parse_speculative(
    win: _Windows,
    table: NDArray[np.int32],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    segment_bits: int | None,
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """`parse_bpc`'s keys and steps per stream by speculative parallel parsing (module doc),
    unchecked."""
    lens = ends - starts
    seg = segment_bits or _segment_bits(int(lens.sum()))
    per = -(-lens // seg)
    n_lanes = int(per.sum())
    stream_of = np.repeat(np.arange(lens.size), per)
    first_lane = np.cumsum(per) - per
    k = np.arange(n_lanes) - first_lane[stream_of]
    lane_start = starts[stream_of] + k * seg
    lane_end = np.minimum(lane_start + seg, ends[stream_of])
    lane_final = ends[stream_of]
    is_first = k == 0
    lanes = np.arange(n_lanes, dtype=np.int64)

    # round 0: each lane guesses that a block starts at its segment start (exact for first lanes)
    r_pos, r_key, n0 = _run_round0(win, table, lane_start, lane_end)
    last = np.cumsum(n0) - 1
    t = table[r_key[last]]
    exit_pos = r_pos[last].astype(np.int64) + (t & _LEN_MASK)
    exit_cs = (t & _STATE_MASK).astype(np.int64)

    # fix-up: re-run every non-first lane from the previous lane's exit until it meets round 0
    fl = lanes[~is_first]
    p1, k1, l1, s1, reach = _run_fixup(
        win, table, fl, exit_pos[fl - 1], exit_cs[fl - 1], lane_final, r_pos, r_key
    )
    reach[is_first] = lane_start[is_first]

    # The true parse: lane j+1's fix-up started right iff the true parse left segment j on
    # round 0's path, i.e. iff the fix-up covering segment j met round 0 inside it.
    nxt = np.searchsorted(lane_start, reach, side="right")
    correct = np.ones(n_lanes, dtype=bool)
    skip_to = -1
    for j in np.flatnonzero((nxt != lanes + 1) & ~is_first).tolist():  # rare: long fix-ups
        if j < skip_to:
            correct[j] = False
            continue
        correct[j + 1 : nxt[j]] = False
        skip_to = max(skip_to, int(nxt[j]))
    fixed = correct & ~is_first
    drop = np.maximum(np.maximum.accumulate(np.where(fixed, reach, 0)), lane_start)

    # assemble: per lane, its fix-up states before `reach`, then round 0's states from `drop`
    # round 0's records are sorted by position (lane after lane), so each lane's dropped
    # records are a prefix of its own, counted with one search
    first0 = np.cumsum(n0) - n0
    gone = np.minimum(np.searchsorted(r_pos, drop.astype(r_pos.dtype)) - first0, n0)
    keep1 = fixed[l1] & (p1 < reach[l1])
    n_new = np.bincount(l1[keep1], minlength=n_lanes)
    counts = n0 - gone + n_new
    total_gone = int(gone.sum())
    if total_gone or keep1.any():
        # one pass: lane l's kept fix-up records go to the front of its output slots, round 0's
        # kept records after them
        out_first = np.cumsum(counts) - counts
        l1k, s1k = l1[keep1], s1[keep1]
        order = np.lexsort((s1k, l1k))
        l1k = l1k[order]
        rank = np.arange(l1k.size) - (np.cumsum(n_new) - n_new)[l1k]
        new_at = out_first[l1k] + rank
        out_key = np.empty(int(counts.sum()), dtype=r_key.dtype)
        is_new = np.zeros(out_key.size, dtype=bool)
        is_new[new_at] = True
        out_key[new_at] = k1[keep1][order]
        if total_gone:
            keep = np.ones(r_key.size, dtype=bool)
            keep[np.repeat(first0 - (np.cumsum(gone) - gone), gone) + np.arange(total_gone)] = False
            out_key[~is_new] = r_key[keep]
        else:
            out_key[~is_new] = r_key
    else:
        out_key = r_key
    return out_key, np.add.reduceat(counts, first_lane)


# --- BPC decoding -------------------------------------------------------------------------------

_LANE7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_LANE_TOP = np.uint64(0x8080808080808080)


@cache
def _step_plane_codes(word_width: int, block_size: int, swap: bool) -> NDArray[np.uint64]:
    """For W = N = 8: CODES[key] = the plane codes the step with that key contributes to planes
    0..7 of its block, plane p in byte p (little-endian) of a uint64, 0 elsewhere."""
    table = _step_table(word_width, block_size, swap).astype(np.int64)
    codes = _plane_code_table(word_width, block_size, swap)
    key = np.arange(table.size, dtype=np.int64)
    c, w = key >> 16, key & 0xFFFF
    covered = (table >> _KC_SHIFT) & _KC_MASK
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
    info = _step_table(w, n, swap)[keys]
    is_base = keys < (1 << 16)
    window = keys & 0xFFFF
    nb = int(np.count_nonzero(is_base))
    covered = ((info >> _KC_SHIFT) & _KC_MASK).astype(np.intp)
    codes = _plane_code_table(w, n, swap)
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
        n_blocks = -(-nnz // n)
        bitlens = np.array([records[i].bpc_bitlen for i in members], dtype=np.int64)
        # one buffer, each stream at a byte offset, 8 zero bytes between streams; lanes may
        # read up to 16 bits per step past their segment, so leave room after the last one
        nbytes = (bitlens + 7) >> 3
        offsets = np.cumsum(nbytes + 8) - (nbytes + 8)
        seg = _segment_bits(int(bitlens.sum()))
        buf = np.zeros(int((nbytes + 8).sum()) + 2 * seg + 64, dtype=np.uint8)
        for j, i in enumerate(members):
            buf[offsets[j] : offsets[j] + nbytes[j]] = np.frombuffer(
                records[i].bpc, dtype=np.uint8, count=int(nbytes[j])
            )
        starts = offsets * 8
        keys, steps = parse_bpc(buf, starts, starts + bitlens, w, n, swap, seg)
        blocks_found = np.add.reduceat(
            (keys < (1 << 16)).astype(np.int64), np.cumsum(steps) - steps
        )
        if (blocks_found != n_blocks).any():
            j = int(np.flatnonzero(blocks_found != n_blocks)[0])
            raise CorruptStream(
                f"bpc stream holds {int(blocks_found[j])} blocks, "
                f"the znz stream needs {int(n_blocks[j])}"
            )
        values = decode_blocks(keys, w, n, swap).reshape(-1)
        block_end = np.cumsum(n_blocks) * n
        value_off = block_end - n_blocks * n
        pad = block_end - value_off - nnz  # padding words at the end of each stream's blocks
        pad_at = np.repeat(block_end - pad, pad) + (
            np.arange(int(pad.sum())) - np.repeat(np.cumsum(pad) - pad, pad)
        )
        if values[pad_at].any():
            raise CorruptStream("bpc stream: the padding words of the last block are not zero")
        if np.count_nonzero(values) != int(nnz.sum()):
            raise CorruptStream(
                "bpc stream decodes a zero where the znz stream has a non-zero word"
            )
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
