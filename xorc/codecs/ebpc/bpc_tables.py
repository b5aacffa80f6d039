"""EBPC decoder, BPC tables: one step of the parser per (state, next 16 bits), its length and
the plane codes it emits (docs/codecs/ebpc.md, "Decoding"). Shared by the numpy and the compiled
parsers."""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.ebpc.streams import (
    plane_dtype,
    position_bits,
    run_count_bits,
)

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


LEN_MASK, KC_SHIFT, KC_MASK, VALID_BIT, STATE_MASK = 0x1F, 5, 0x1F, 1 << 15, ~0xFFFF


@cache
def step_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.int32]:
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
    table = used | (covered << KC_SHIFT) | (valid * VALID_BIT) | (nxt << 16)
    return table.astype(np.int32)


INVALID_STEP = 0x80


@cache
def step_len_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.uint8]:
    """LEN[key]: the bits a step consumes (as in `step_table`), plus `INVALID_STEP` if the
    step is invalid; a small table for the checks over all steps."""
    table = step_table(word_width, block_size, swap)
    invalid = np.where(table & VALID_BIT, 0, INVALID_STEP)
    return ((table & LEN_MASK) | invalid).astype(np.uint8)


@cache
def plane_code_table(word_width: int, block_size: int, swap: bool) -> NDArray[np.unsignedinteger]:
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
