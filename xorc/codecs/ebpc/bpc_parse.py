"""EBPC decoder, BPC parsing: the keys of every step of several BPC streams, by speculative
parallel parsing in numpy or, with numba, the compiled walk of `parse_jit` (the method is in
`core_decode`'s docstring)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.bpc_tables import (
    INVALID_STEP,
    LEN_MASK,
    STATE_MASK,
    step_len_table,
    step_table,
)
from xorc.codecs.ebpc.parse_jit import compiled_walker
from xorc.errors import CorruptStream

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
        pos = pos + (t & LEN_MASK)
        cs = t & STATE_MASK
    # positions: each lane's start plus the bits its earlier steps consumed
    k = np.ascontiguousarray(rec_k[:step].T)
    p = np.empty(k.shape, dtype=np.int32 if win.nbits < 1 << 31 else np.int64)
    p[:, 0] = start
    np.cumsum(table[k[:, :-1]] & LEN_MASK, axis=1, out=p[:, 1:])
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
        pos = pos + (t & LEN_MASK)
        cs = t & STATE_MASK
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


def lane_segment_bits(total_bits: int) -> int:
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
    table = step_table(word_width, block_size, swap)
    walk = compiled_walker()
    if walk is not None:
        out_key, steps_per_stream = walk(bitio.unit_windows(buf, 8 * buf.size), table, starts, ends)
    else:
        out_key, steps_per_stream = _parse_speculative(
            _Windows(buf), table, starts, ends, segment_bits
        )

    # each stream's steps must end a block exactly at the stream's end
    lv = step_len_table(word_width, block_size, swap)[out_key]
    first_step = np.cumsum(steps_per_stream) - steps_per_stream
    wide = np.int64 if int(ends.max()) >= 1 << 31 else np.int32
    end_pos = starts + np.add.reduceat(lv & LEN_MASK, first_step, dtype=wide)
    end_state = table[out_key[first_step + steps_per_stream - 1]] >> 16
    bad = (end_pos != ends) | (end_state != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CorruptStream(
            f"bpc stream: the parse ends {int(end_pos[i] - ends[i]):+d} bits from the stream end, "
            f"in plane state {int(end_state[i])} (0 = at a block boundary)"
        )
    if lv.max() >= INVALID_STEP:
        bad = int(np.flatnonzero(lv >= INVALID_STEP)[0])
        raise CorruptStream(f"bpc stream: invalid symbol (step {bad} of the parse)")
    return out_key, steps_per_stream


def _merge_keys(
    r_pos: NDArray[np.integer],
    r_key: NDArray[np.int32],
    n0: NDArray[np.int64],
    fixups: tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64], NDArray[np.int64]],
    fixed: NDArray[np.bool_],
    reach: NDArray[np.int64],
    drop: NDArray[np.int64],
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """The true parse's keys, lane after lane, and how many each lane holds: per lane, its
    fix-up records (positions `p1`, keys `k1`, lanes `l1`, step numbers `s1`) before `reach`,
    then round 0's records from `drop` on."""
    p1, k1, l1, s1 = fixups
    n_lanes = n0.size
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
    return out_key, counts


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
    seg = segment_bits or lane_segment_bits(int(lens.sum()))
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
    exit_pos = r_pos[last].astype(np.int64) + (t & LEN_MASK)
    exit_cs = (t & STATE_MASK).astype(np.int64)

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

    fixups = (p1, k1, l1, s1)
    out_key, counts = _merge_keys(r_pos, r_key, n0, fixups, fixed, reach, drop)
    return out_key, np.add.reduceat(counts, first_lane)
