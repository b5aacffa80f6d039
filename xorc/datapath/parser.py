"""Finding the symbol boundaries of a prefix-coded stream without a Python loop per symbol.

A hardware decoder reads one symbol per cycle: it looks at the next few bits, learns the
symbol's length (and, for a stateful code, the next state) and moves on. Where each symbol
starts depends on every symbol before it. This model parses many segments of the stream at once
("lanes"), each from a guessed entry point, then repairs the guesses:

* first parse: lane l parses from the start of its segment in a guessed state until it leaves
  the segment, marking each symbol start (position, state) it visits. Lane 0's guess is right.
* repair: every lane l >= 1 whose guessed entry differs from where lane l-1's first parse left
  its segment parses again from there, until it reaches a (position, state) some first parse
  marked, in its own segment or any later one: from that point on both parses agree (the parse
  is a function of position and state).
* a scan over the lanes that crossed into later segments decides which repairs lie on the real
  parse: a repair is valid when the lane before it ended on its first parse; lanes a valid
  repair crosses are covered by it and their own repairs are dropped. Each valid repair replaces
  the marks from its segment start to its meeting point.

The result is exact whatever the guesses; prefix codes resynchronise within a few symbols, so
repairs are short and the Python loop runs about (segment / symbol length) + (longest repair)
steps, each a numpy operation over all lanes. A stream that never resynchronises is still parsed
exactly, only slowly. The transition table maps (state << window_bits | the next window_bits
bits) to (next state << 16 | symbol length); lengths are at least 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.datapath.fields import Windows


class _Reader:
    """The table walk: one symbol per lane per call."""

    def __init__(self, win: Windows, table: NDArray[np.int64], wbits: int) -> None:
        self.win = win.view(np.int64)
        self.table = table
        self.wbits = wbits
        self.mask = (1 << wbits) - 1
        self.top = 64 - wbits

    def step(
        self, pos: NDArray[np.int64], st: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        # arithmetic shifts of the signed window: the sign bits are masked off
        w = (self.win[pos >> 3] >> (self.top - (pos & 7))) & self.mask
        t = self.table[(st << self.wbits) | w]
        return pos + (t & 0xFFFF), t >> 16


def _first_parse(
    rd: _Reader,
    starts: NDArray[np.int64],
    st: NDArray[np.int64],
    ends: NDArray[np.int64],
    marks: NDArray[np.int8],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Parse every lane to its segment end, marking symbol starts; return where each left."""
    exit_p, exit_s = starts.copy(), st.copy()
    live = np.arange(starts.size)
    p, s, e = starts.copy(), st.copy(), ends
    while live.size:
        done = p >= e
        if done.any():
            exit_p[live[done]], exit_s[live[done]] = p[done], s[done]
            keep = ~done
            live, p, s, e = live[keep], p[keep], s[keep], e[keep]
            if not live.size:
                break
        marks[p] = s + 1
        p, s = rd.step(p, s)
    return exit_p, exit_s


def _repair(
    rd: _Reader, pos: NDArray[np.int64], st: NDArray[np.int64], nbits: int, marks: NDArray[np.int8]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_], NDArray[np.int64]]:
    """Parse from each entry until a marked (position, state) or the end of the stream.

    Returns the stop positions and states, whether each lane ran off the end, and the new
    symbol starts as rows (lane, position, state), not yet marked.
    """
    n = pos.size
    stop_p, stop_s = pos.copy(), st.copy()
    hist = []
    narrow = np.int32 if nbits < 1 << 30 else np.int64  # rows of 12 bytes, not 24, per step
    live = np.arange(n)
    p, s = pos.copy(), st.copy()
    top = marks.size - 1
    while live.size:
        done = (p >= nbits) | (marks[np.minimum(p, top)] == s + 1)
        if done.any():
            stop_p[live[done]], stop_s[live[done]] = p[done], s[done]
            keep = ~done
            live, p, s = live[keep], p[keep], s[keep]
            if not live.size:
                break
        hist.append(np.stack([live, p, s]).astype(narrow))
        p, s = rd.step(p, s)
    rows = np.concatenate(hist, axis=1) if hist else np.zeros((3, 0), dtype=narrow)
    return stop_p, stop_s, stop_p >= nbits, rows


def _erase(marks: NDArray[np.int8], lo: NDArray[np.int64], hi: NDArray[np.int64]) -> None:
    """Clear marks[lo_i:hi_i] for every i (one slice per range: an index array would cost 16
    bytes per cleared bit)."""
    for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
        marks[a:b] = 0


def parse(
    win: Windows,
    table: NDArray[np.int64],
    wbits: int,
    nbits: int,
    start_state: int = 0,
    guess_state: int = 0,
    segment: int = 512,
) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int]:
    """Every symbol start in [0, nbits) of the parse from bit 0 in `start_state`.

    Returns (positions, states at those positions, exit position, exit state): the exit is
    where the first symbol at or after `nbits` would start. `win` must be readable up to
    `nbits` + 64 bits (zeros past the stream).
    """
    if nbits <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0, start_state
    marks, end_p, end_s = parse_marks(win, table, wbits, nbits, start_state, guess_state, segment)
    positions = np.flatnonzero(marks[:nbits])
    return positions, marks[positions].astype(np.int64) - 1, end_p, end_s


def parse_marks(
    win: Windows,
    table: NDArray[np.int64],
    wbits: int,
    nbits: int,
    start_state: int = 0,
    guess_state: int = 0,
    segment: int = 512,
) -> tuple[NDArray[np.int8], int, int]:
    """`parse` with the symbol starts as one byte per bit (state + 1 at a symbol start, 0
    elsewhere; nbits + 1 bytes), for callers that read them a range at a time (`nbits` >= 1;
    states below 127)."""
    rd = _Reader(win, table, wbits)
    lanes = -(-nbits // segment)
    starts = np.arange(lanes, dtype=np.int64) * segment
    ends = np.minimum(starts + segment, nbits)
    marks = np.zeros(nbits + 1, dtype=np.int8)
    guess = np.full(lanes, guess_state, dtype=np.int64)
    guess[0] = start_state
    exit_p, exit_s = _first_parse(rd, starts, guess, ends, marks)
    end_p, end_s = int(exit_p[-1]), int(exit_s[-1])

    todo = np.arange(1, lanes)
    todo = todo[(exit_p[todo - 1] != starts[todo]) | (exit_s[todo - 1] != guess[todo])]
    if todo.size:
        stop_p, stop_s, ran_off, rows = _repair(
            rd, exit_p[todo - 1], exit_s[todo - 1], nbits, marks
        )
        reach = np.minimum(np.minimum(stop_p, nbits - 1) // segment, lanes - 1)
        # repairs that left their own segment cover the lanes they crossed, unless they are
        # themselves covered by an earlier one (then they started from a wrong entry)
        cover = np.zeros(lanes + 1, dtype=np.int64)
        covered = 0
        for j in np.flatnonzero((reach > todo) | ran_off):
            lane = int(todo[j])
            if lane <= covered:
                continue
            cover[lane + 1] += 1
            cover[int(reach[j]) + 1] -= 1
            covered = int(reach[j])
        valid = np.cumsum(cover)[todo] == 0
        _erase(marks, starts[todo[valid]], np.minimum(stop_p[valid], nbits))
        rows = rows[:, valid[rows[0]]]
        marks[rows[1]] = rows[2] + 1
        off = np.flatnonzero(valid & ran_off)
        if off.size:
            end_p, end_s = int(stop_p[off[-1]]), int(stop_s[off[-1]])
    return marks, end_p, end_s
