"""EBPC decoder: the RTL's ZNZ and BPC streams -> values (docs/codecs/ebpc.md, "Decoding").

Both streams are prefix codes whose symbol boundaries depend on everything before them. The
decoder finds the boundaries without a Python loop per symbol or per block:

* ZNZ: a byte-wise automaton. For every byte and each of the 5 possible offsets of its first
  symbol boundary, a table gives the offset into the next byte and which bits start symbols;
  the offsets of all bytes follow from a hierarchical composition of these 5-entry maps.
* BPC: speculative parallel parsing. The parser state is (bit position, next plane of the
  block); one table lookup on a 16-bit window advances it by as many whole symbols of the
  current block as the window holds. The streams are cut into segments and one lane per
  segment parses from the segment start, guessing "a block starts here" (round 0). Then every
  lane is re-run from the state where the previous lane really left its segment, until it meets
  a state that round 0 also visited; from there on both parses are identical (the parse is
  deterministic), so the round-0 records after that point are kept. A lane that never meets
  round 0 before the end of its segment simply carries on into the next ones. The result is
  exact whatever the guesses were; a bad guess only costs time.

The steps are then decoded in one vectorised pass: a table gives the plane codes of the
symbols in each step's window, the planes are rebuilt with a loop over the W+1 planes, and the
deltas are undone with a cumulative sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.streams import (
    MAX_ZERO_RUN,
    ZNZ_COUNT_BITS,
    EbpcStreams,
    deltas_from_planes,
    format_error,
    padded_nbytes,
    plane_dtype,
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
    padded = np.empty((ng * group, states), dtype=np.intp)
    padded[:n] = maps
    padded[n:] = np.arange(states)  # identity maps
    g = padded.reshape(ng, group, states)
    composed = g[:, 0, :].copy()
    for j in range(1, group):
        composed = np.take_along_axis(g[:, j, :], composed, axis=1)
    entry_g = chain_maps(composed, start, group)
    out = np.empty((ng, group), dtype=np.int64)
    cur = entry_g
    rows = np.arange(ng)
    for j in range(group):
        out[:, j] = cur
        cur = g[rows, j, cur]
    return out.reshape(-1)[:n]


def decode_znz(data: bytes, bitlen: int, n_words: int) -> NDArray[np.bool_]:
    """The non-zero mask of the `n_words` words, from the ZNZ stream.

    Raises:
        CorruptStream: the stream does not hold exactly `n_words` words in `bitlen` bits.
    """
    if n_words == 0 or bitlen == 0:
        if n_words or bitlen:
            raise CorruptStream(f"znz stream has {bitlen} bits for {n_words} words")
        return np.zeros(0, dtype=bool)
    exit_map, start_map = _znz_tables()
    buf = np.frombuffer(data, dtype=np.uint8, count=(bitlen + 7) >> 3)
    entry = chain_maps(exit_map[buf], 0)
    starts = np.flatnonzero(np.unpackbits(start_map[buf, entry], count=bitlen))
    is_one = np.unpackbits(buf, count=bitlen).view(bool)[starts]
    counts = np.ones(starts.size, dtype=np.int64)
    zero_at = starts[~is_one]
    if zero_at.size:
        if int(zero_at[-1]) + 1 + ZNZ_COUNT_BITS > bitlen:
            raise CorruptStream(f"znz stream ends inside a zero-run symbol (znz_bitlen {bitlen})")
        win = bitio.byte_windows(buf)
        counts[~is_one] = bitio.peek_fields(win, zero_at + 1, ZNZ_COUNT_BITS).astype(np.int64) + 1
    total = int(counts.sum())
    if total != n_words:
        raise CorruptStream(f"znz stream holds {total} words, n_words is {n_words}")
    return np.repeat(is_one, counts)


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


_LEN_MASK, _KC_SHIFT, _VALID_BIT, _NEXT_SHIFT = 0x1F, 5, 1 << 10, 11


@cache
def _step_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.int64]:
    """STEP[(c << 16) | window] for parser state c (0: the base is next; c >= 1: plane c-1 is
    next): bits 0-4 the bits consumed, 5-9 the planes covered, bit 10 valid, bits 11-15 the next
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
    table = used | (covered << _KC_SHIFT) | (valid * _VALID_BIT) | (nxt << _NEXT_SHIFT)
    return table.astype(np.uint16)


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

_COMPACT_EVERY = 16  # lanes are checked for their stop condition every few steps


def _peek16(win: NDArray[np.uint64], pos: NDArray[np.int64]) -> NDArray[np.int64]:
    return bitio.peek_fields(win, pos, 16).astype(np.int64)


def _run(
    win: NDArray[np.uint64],
    table: NDArray[np.uint16],
    lanes: NDArray[np.int64],
    pos: NDArray[np.int64],
    cs: NDArray[np.int64],
    stop: NDArray[np.int64],
    sync: NDArray[np.int8] | None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Step every lane until it passes `stop[lane]` or (with `sync`) stands on a state that
    `sync` records (sync[pos] == state). Lanes are tested every few steps, so a lane may take a
    few steps too many; the caller trims. Returns every state visited, as (position,
    state << 16, lane, step) in step-major order."""
    rec_p, rec_c, rec_l, rec_n = [], [], [], []
    step = 0
    while lanes.size:
        rec_p.append(pos)
        rec_c.append(cs)
        rec_l.append(lanes)
        rec_n.append(lanes.size)
        if step % _COMPACT_EVERY == 0:
            fin = pos >= stop[lanes]
            if sync is not None:
                fin |= sync[pos] == (cs >> 16)
            if fin.any():
                keep = ~fin
                lanes, pos, cs = lanes[keep], pos[keep], cs[keep]
                if not lanes.size:
                    break
        t = table[cs | _peek16(win, pos)].astype(np.int64)
        pos = pos + (t & _LEN_MASK)
        cs = (t >> _NEXT_SHIFT) << 16
        step += 1
    if not rec_p:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    steps = np.repeat(np.arange(len(rec_n), dtype=np.int64), rec_n)
    return np.concatenate(rec_p), np.concatenate(rec_c), np.concatenate(rec_l), steps


def _lane_major(
    lane: NDArray[np.int64], step: NDArray[np.int64], keep: NDArray[np.bool_], n_lanes: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For records kept (each lane's kept records being consecutive steps), the index that puts
    them in lane-major, step-minor order, and the number kept per lane."""
    counts = np.bincount(lane[keep], minlength=n_lanes)
    first_step = np.full(n_lanes, np.iinfo(np.int64).max)
    np.minimum.at(first_step, lane[keep], step[keep])
    offset = np.cumsum(counts) - counts
    return offset[lane[keep]] + step[keep] - first_step[lane[keep]], counts


def parse_bpc(
    win: NDArray[np.uint64],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    word_width: int,
    block_size: int,
    swap: bool,
    segment_bits: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Parse several BPC streams held in one buffer (stream i in bits [starts[i], ends[i]), the
    streams in increasing order and separated by at least 64 zero bits).

    Returns the steps of every stream in order, as positions and states (0 = the step starts
    with the block's base), and the number of steps of each stream.

    Raises:
        CorruptStream: a stream does not end with a whole block exactly at its end.
    """
    table = _step_table(word_width, block_size, swap)
    lens = ends - starts
    seg = segment_bits or _segment_bits(int(lens.sum()), lens.size)
    per = np.maximum(-(-lens // seg), 0)
    n_lanes = int(per.sum())
    stream_of = np.repeat(np.arange(lens.size), per)
    first_lane = np.cumsum(per) - per
    k = np.arange(n_lanes) - first_lane[stream_of]
    lane_start = starts[stream_of] + k * seg
    lane_end = np.minimum(lane_start + seg, ends[stream_of])
    lane_final = ends[stream_of]
    is_first = k == 0

    # round 0: each lane guesses that a block starts at its segment start (exact for first lanes)
    lanes = np.arange(n_lanes, dtype=np.int64)
    p0, c0, l0, s0 = _run(win, table, lanes, lane_start.copy(), np.zeros(n_lanes, np.int64), lane_end, None)
    keep0 = p0 < lane_end[l0]
    order0, n0 = _lane_major(l0, s0, keep0, n_lanes)
    r_pos = np.empty(order0.size, dtype=np.int64)
    r_cs = np.empty(order0.size, dtype=np.int64)
    r_pos[order0] = p0[keep0]
    r_cs[order0] = c0[keep0]
    r_lane = np.repeat(lanes, n0)
    last = np.cumsum(n0) - 1
    t = table[r_cs[last] | _peek16(win, r_pos[last])].astype(np.int64)
    exit_pos = r_pos[last] + (t & _LEN_MASK)
    exit_cs = (t >> _NEXT_SHIFT) << 16

    sync = np.full(int(win.size) * 8 + 1, -1, dtype=np.int8)
    sync[r_pos] = (r_cs >> 16).astype(np.int8)

    # fix-up: re-run every non-first lane from the previous lane's exit until it meets round 0
    fl = lanes[~is_first]
    p1, c1, l1, s1 = _run(win, table, fl, exit_pos[fl - 1], exit_cs[fl - 1], lane_final, sync)
    met = (sync[p1] == (c1 >> 16)) | (p1 >= lane_final[l1])
    reach = lane_final.copy()  # where each fix-up lane met round 0 (or its stream's end)
    np.minimum.at(reach, l1[met], p1[met])
    reach[is_first] = lane_start[is_first]

    # the true parse: from a correct lane's fix-up up to where it meets round 0, round 0 after.
    # Lane j+1's fix-up started right iff the true parse left segment j on round 0's path.
    nxt = np.searchsorted(lane_start, reach, side="right")
    correct = np.ones(n_lanes, dtype=bool)
    jumps = np.flatnonzero((nxt != lanes + 1) & ~is_first)
    skip_to = -1
    for j in jumps.tolist():  # lanes whose fix-up ran past their segment: rare
        if j < skip_to:
            correct[j] = False
            continue
        correct[j + 1 : nxt[j]] = False
        skip_to = max(skip_to, int(nxt[j]))
    correct[is_first] = True
    fix_lane = correct & ~is_first
    drop = np.maximum.accumulate(np.where(fix_lane, reach, 0))
    drop = np.maximum(drop, lane_start)

    keep1 = fix_lane[l1] & (p1 < reach[l1])
    order1, n1 = _lane_major(l1, s1, keep1, n_lanes)
    keep_r = r_pos >= drop[r_lane]
    nr = np.bincount(r_lane[keep_r], minlength=n_lanes)
    total = n1 + nr
    offset = np.cumsum(total) - total
    out_pos = np.empty(int(total.sum()), dtype=np.int64)
    out_cs = np.empty(out_pos.size, dtype=np.int64)
    dst1 = offset[l1[keep1]] + (order1 - (np.cumsum(n1) - n1)[l1[keep1]])
    out_pos[dst1] = p1[keep1]
    out_cs[dst1] = c1[keep1]
    rank = np.arange(r_pos.size) - np.repeat(np.cumsum(n0) - n0, n0)
    skipped = n0 - nr
    dst0 = offset[r_lane[keep_r]] + n1[r_lane[keep_r]] + rank[keep_r] - skipped[r_lane[keep_r]]
    out_pos[dst0] = r_pos[keep_r]
    out_cs[dst0] = r_cs[keep_r]

    steps_per_stream = np.add.reduceat(total, first_lane)
    _check_ends(win, table, out_pos, out_cs, steps_per_stream, ends)
    return out_pos, out_cs >> 16, steps_per_stream


def _check_ends(
    win: NDArray[np.uint64],
    table: NDArray[np.uint16],
    pos: NDArray[np.int64],
    cs: NDArray[np.int64],
    steps_per_stream: NDArray[np.int64],
    ends: NDArray[np.int64],
) -> None:
    """Each stream's last step must end a block exactly at the stream's end."""
    has = steps_per_stream > 0
    last = (np.cumsum(steps_per_stream) - 1)[has]
    t = table[cs[last] | _peek16(win, pos[last])].astype(np.int64)
    end_pos = pos[last] + (t & _LEN_MASK)
    end_state = t >> _NEXT_SHIFT
    bad = (end_pos != ends[has]) | (end_state != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        over = int(end_pos[i] - ends[has][i])
        raise CorruptStream(
            f"bpc stream: the parse ends {over:+d} bits from the stream end, in plane state "
            f"{int(end_state[i])} (0 = at a block boundary)"
        )


def _segment_bits(total_bits: int, n_streams: int) -> int:
    """Segment length of one lane: long enough that most lanes meet the true parse inside their
    segment, short enough to give a few thousand lanes to share the per-step cost."""
    return int(min(max(2048, total_bits // 4096), 1 << 15))


# --- BPC decoding -------------------------------------------------------------------------------


def decode_blocks(
    win: NDArray[np.uint64],
    pos: NDArray[np.int64],
    state: NDArray[np.int64],
    word_width: int,
    block_size: int,
    swap: bool,
) -> NDArray[np.int32]:
    """Words of all blocks whose parse steps are given (in order), as [blocks, N] signed."""
    w, n = word_width, block_size
    m = n - 1
    full = (1 << m) - 1
    table = _step_table(w, n, swap)
    codes = _plane_code_table(w, n, swap)
    window = _peek16(win, pos)
    info = table[(state << 16) | window].astype(np.int64)
    if not (info & _VALID_BIT).all():
        bad = int(pos[(info & _VALID_BIT) == 0][0])
        raise CorruptStream(f"bpc stream: invalid symbol at bit {bad}")
    is_base = state == 0
    nb = int(is_base.sum())
    covered = (info >> _KC_SHIFT) & 0x1F
    if int(covered.sum()) != nb * (w + 1):
        raise CorruptStream("bpc stream: a block does not hold exactly W+1 planes")
    base = window[is_base] >> (16 - w)
    sym_window = np.where(is_base, (window << w) & 0xFFFF, window)
    first = np.cumsum(covered) - covered
    rel = np.arange(nb * (w + 1), dtype=np.int64) - np.repeat(first, covered)
    plane_code = codes.reshape(-1)[np.repeat(sym_window * (w + 1), covered) + rel]
    plane_code = plane_code.reshape(nb, w + 1)
    a = plane_code & plane_code.dtype.type(full)
    chain = (plane_code >> m).astype(bool)
    planes = np.empty_like(a)
    prev = np.zeros(nb, dtype=a.dtype)
    for b in range(w + 1):
        prev = np.where(chain[:, b], a[:, b] ^ prev, a[:, b])
        planes[:, b] = prev
    d = deltas_from_planes(planes, w, n)
    d -= (d >> w) << (w + 1)  # sign-extend from W+1 bits
    x = np.empty((nb, n), dtype=np.int32)
    x[:, 0] = base
    x[:, 1:] = d
    np.cumsum(x, axis=1, out=x)
    half = 1 << (w - 1)
    return ((x + half) & ((1 << w) - 1)) - half


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
            raise CorruptStream(f"ebpc record: {field} must be a non-negative integer, got {value!r}")
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
    outputs: list[NDArray[np.int8] | NDArray[np.int16] | None] = [None] * len(records)
    groups: dict[tuple[int, int, bool], list[int]] = {}
    masks: list[NDArray[np.bool_]] = []
    for i, rec in enumerate(records):
        _check_record(rec)
        mask = decode_znz(bytes(rec.znz), rec.znz_bitlen, rec.n_words)
        masks.append(mask)
        groups.setdefault((rec.word_width, rec.block_size, rec.swap_zero_codes), []).append(i)
    for (w, n, swap), members in groups.items():
        nnz_all = np.array([int(np.count_nonzero(masks[i])) for i in members], dtype=np.int64)
        for j, i in enumerate(members):
            if records[i].bpc_bitlen == 0 and nnz_all[j]:
                raise CorruptStream(f"bpc stream is empty but the znz stream has {int(nnz_all[j])} non-zero words")
        for j, i in enumerate(members):
            if nnz_all[j] == 0:
                if records[i].bpc_bitlen:
                    raise CorruptStream(f"bpc stream has {records[i].bpc_bitlen} bits but no non-zero word")
                outputs[i] = np.zeros(records[i].n_words, dtype=np.int8 if w == 8 else np.int16)
        members = [i for j, i in enumerate(members) if nnz_all[j]]
        if not members:
            continue
        nnz = np.array([int(np.count_nonzero(masks[i])) for i in members], dtype=np.int64)
        n_blocks = -(-nnz // n)
        bitlens = np.array([records[i].bpc_bitlen for i in members], dtype=np.int64)
        too_long = bitlens > n_blocks * (w + (w + 1) * n)
        too_short = bitlens < n_blocks * (w + 3)
        if (too_long | too_short).any():
            j = int(np.flatnonzero(too_long | too_short)[0])
            raise CorruptStream(
                f"ebpc record: bpc_bitlen {int(bitlens[j])} is impossible for {int(n_blocks[j])} blocks"
            )
        # one buffer, each stream at a byte offset, 8 zero bytes between streams
        nbytes = (bitlens + 7) >> 3
        offsets = np.cumsum(nbytes + 8) - (nbytes + 8)
        buf = np.zeros(int((nbytes + 8).sum()) + 64, dtype=np.uint8)
        for j, i in enumerate(members):
            buf[offsets[j] : offsets[j] + nbytes[j]] = np.frombuffer(
                records[i].bpc, dtype=np.uint8, count=int(nbytes[j])
            )
        win = bitio.byte_windows(buf)
        starts = offsets * 8
        pos, state, steps = parse_bpc(win, starts, starts + bitlens, w, n, swap)
        blocks_found = np.add.reduceat((state == 0).astype(np.int64), np.cumsum(steps) - steps)
        if (blocks_found != n_blocks).any():
            j = int(np.flatnonzero(blocks_found != n_blocks)[0])
            raise CorruptStream(
                f"bpc stream holds {int(blocks_found[j])} blocks, the znz stream needs {int(n_blocks[j])}"
            )
        values = decode_blocks(win, pos, state, w, n, swap).reshape(-1)
        block_off = np.cumsum(n_blocks) - n_blocks
        dtype = np.int8 if w == 8 else np.int16
        for j, i in enumerate(members):
            vals = values[block_off[j] * n : (block_off[j] + n_blocks[j]) * n]
            k = int(nnz[j])
            if k and not vals[:k].all():
                raise CorruptStream("bpc stream decodes a zero where the znz stream has a non-zero word")
            if vals[k:].any():
                raise CorruptStream("bpc stream: the padding words of the last block are not zero")
            out = np.zeros(records[i].n_words, dtype=dtype)
            out[masks[i]] = vals[:k]
            outputs[i] = out
    return [o for o in outputs if o is not None]


def decode_streams(encoded: EbpcStreams) -> NDArray[np.int8] | NDArray[np.int16]:
    """The words an `EbpcStreams` record encodes (int8 for W = 8, int16 for W = 16).

    Raises:
        CorruptStream: any field or stream is inconsistent (one line, naming it).
    """
    return decode_many([encoded])[0]
