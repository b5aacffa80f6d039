"""Finding the symbol boundaries of a prefix-coded stream without a Python loop per symbol.

A hardware decoder reads one symbol per cycle: it looks at the next few bits, learns the
symbol's length (and, for a stateful code, the next state) and moves on. Where each symbol
starts depends on every symbol before it. This model parses many segments of the stream at once
("lanes"), each from a guessed entry point, then repairs the guesses:

* round 0: lane l parses from the start of its segment in a guessed state until it leaves the
  segment, marking each symbol start (position, state) it visits;
* repair: wherever lane l-1's real exit differs from lane l's guessed entry, lane l parses again
  from the real exit until it reaches a (position, state) its first parse marked: from there on
  both parses agree (the parse is a function of position and state), so only the marks before
  that point are replaced. If it leaves its segment instead, its exit changes and lane l+1 is
  repaired in the next round.

The result is exact whatever the guesses; prefix codes resynchronise within a few symbols, so
the repairs are short. The transition table maps (state << window_bits | next window_bits bits)
to (next state << 16 | symbol length); lengths are at least 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.datapath.fields import Windows


def _step(
    win: Windows,
    table: NDArray[np.int64],
    wbits: int,
    pos: NDArray[np.int64],
    st: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    w = (win[pos >> 3] << (pos & 7).astype(np.uint64)) >> np.uint64(64 - wbits)
    t = table[(st << wbits) | w.astype(np.int64)]
    return pos + (t & 0xFFFF), t >> 16


def _first_parse(
    win: Windows,
    table: NDArray[np.int64],
    wbits: int,
    pos: NDArray[np.int64],
    st: NDArray[np.int64],
    ends: NDArray[np.int64],
    marks: NDArray[np.int8],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Round 0: parse every lane to its segment end, marking symbol starts; return the exits."""
    exit_p, exit_s = pos.copy(), st.copy()
    live = np.arange(pos.size)
    p, s, e = pos.copy(), st.copy(), ends.copy()
    while live.size:
        done = p >= e
        if done.any():
            exit_p[live[done]], exit_s[live[done]] = p[done], s[done]
            keep = ~done
            live, p, s, e = live[keep], p[keep], s[keep], e[keep]
            if not live.size:
                break
        marks[p] = s + 1
        p, s = _step(win, table, wbits, p, s)
    return exit_p, exit_s


def _repair(
    win: Windows,
    table: NDArray[np.int64],
    wbits: int,
    pos: NDArray[np.int64],
    st: NDArray[np.int64],
    ends: NDArray[np.int64],
    marks: NDArray[np.int8],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_], list[NDArray[np.int64]]]:
    """Re-parse lanes from their real entries until they meet their old parse or leave the
    segment. Returns the stop position and state, whether the lane left its segment, and the
    new symbol starts as (lane, position, state) rows (not yet marked)."""
    n = pos.size
    stop_p, stop_s = pos.copy(), st.copy()
    left = np.zeros(n, dtype=bool)
    hist: list[NDArray[np.int64]] = []
    live = np.arange(n)
    p, s, e = pos.copy(), st.copy(), ends.copy()
    while live.size:
        out = p >= e
        synced = ~out & (marks[np.minimum(p, marks.size - 1)] == s + 1)
        done = out | synced
        if done.any():
            stop_p[live[done]], stop_s[live[done]] = p[done], s[done]
            left[live[out]] = True
            keep = ~done
            live, p, s, e = live[keep], p[keep], s[keep], e[keep]
            if not live.size:
                break
        hist.append(np.stack([live, p, s]))
        p, s = _step(win, table, wbits, p, s)
    return stop_p, stop_s, left, hist


def _erase(marks: NDArray[np.int8], lo: NDArray[np.int64], hi: NDArray[np.int64]) -> None:
    """Clear marks[lo_i:hi_i] for every i."""
    span = np.maximum(hi - lo, 0)
    total = int(span.sum())
    if total:
        first = np.repeat(lo - (np.cumsum(span) - span), span)
        marks[first + np.arange(total)] = 0


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
    lanes = -(-nbits // segment)
    starts = np.arange(lanes, dtype=np.int64) * segment
    ends = np.minimum(starts + segment, nbits)
    marks = np.zeros(nbits + 1, dtype=np.int8)
    guess = np.full(lanes, guess_state, dtype=np.int64)
    guess[0] = start_state
    exit_p, exit_s = _first_parse(win, table, wbits, starts, guess, ends, marks)
    entry_p, entry_s = starts, guess
    todo = np.arange(1, lanes)
    while todo.size:
        stale = (exit_p[todo - 1] != entry_p[todo]) | (exit_s[todo - 1] != entry_s[todo])
        todo = todo[stale]
        if not todo.size:
            break
        real_p, real_s = exit_p[todo - 1], exit_s[todo - 1]
        stop_p, stop_s, left, hist = _repair(win, table, wbits, real_p, real_s, ends[todo], marks)
        _erase(marks, starts[todo], np.minimum(stop_p, ends[todo]))
        if hist:
            rows = np.concatenate(hist, axis=1)
            marks[rows[1]] = rows[2] + 1
        entry_p = entry_p.copy()
        entry_s = entry_s.copy()
        entry_p[todo], entry_s[todo] = real_p, real_s
        moved = left & ((stop_p != exit_p[todo]) | (stop_s != exit_s[todo]))
        exit_p[todo[moved]], exit_s[todo[moved]] = stop_p[moved], stop_s[moved]
        todo = todo[moved] + 1
        todo = todo[todo < lanes]
    positions = np.flatnonzero(marks[:nbits])
    return positions, marks[positions].astype(np.int64) - 1, int(exit_p[-1]), int(exit_s[-1])
