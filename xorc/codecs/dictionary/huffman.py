"""Canonical Huffman code of the dictionary indices: code assignment and vectorized decoding.

Spec: docs/codecs/dictionary.md, section 5. Shared by the encoder and the decoder; building the
code lengths (package-merge) lives in `huffman_build.py`, which the decoder never imports.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.errors import CorruptStream

MAX_LEN = 15
"""Longest code in bits: a hardware decoder needs at most a 2**15-entry table."""


def _sorted_symbols(lengths: NDArray[np.integer]) -> NDArray[np.int64]:
    """Symbols with a code, ordered by (length, symbol): the canonical order."""
    used = np.flatnonzero(lengths > 0)
    return used[np.lexsort((used, lengths[used]))]


def canonical_codes(lengths: NDArray[np.integer]) -> NDArray[np.uint64]:
    """The code (an l-bit value) of every symbol; 0 for symbols without a code.

    Canonical order: the i-th symbol by (length, symbol) gets
    ``(sum over earlier symbols of 2**(MAX_LEN - l)) >> (MAX_LEN - l_i)``.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    order = _sorted_symbols(lens)
    span = np.left_shift(1, MAX_LEN - lens[order])
    before = np.cumsum(span) - span
    codes = np.zeros(lens.size, dtype=np.uint64)
    codes[order] = (before >> (MAX_LEN - lens[order])).astype(np.uint64)
    return codes


def check_lengths(lengths: NDArray[np.integer]) -> None:
    """Validate a code-length table (section 5), or raise CorruptStream naming it."""
    lens = np.asarray(lengths, dtype=np.int64)
    if lens.size == 0 or lens.min() < 0 or lens.max() > MAX_LEN:
        raise CorruptStream(f"stream 'code_lengths' has a length outside 0..{MAX_LEN}")
    used = int(np.count_nonzero(lens))
    if used == 0:
        raise CorruptStream("stream 'code_lengths' gives no symbol a code")
    kraft = int(np.left_shift(1, MAX_LEN - lens[lens > 0]).sum())
    if used == 1:
        if int(lens.max()) != 1:
            raise CorruptStream("stream 'code_lengths': a single symbol must have length 1")
    elif kraft != 1 << MAX_LEN:
        raise CorruptStream("stream 'code_lengths' is not a complete prefix code")


def decode_tables(lengths: NDArray[np.integer]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Lookup tables indexed by the next max_len bits: the symbol and its code length.

    Canonical codes sorted by (length, symbol) cover consecutive ranges of the window values,
    so each table is one `np.repeat`. Windows matching no code (one-symbol case) get length 0.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    top = int(lens.max())
    order = _sorted_symbols(lens)
    span = np.left_shift(1, top - lens[order])
    size = 1 << top
    sym = np.zeros(size, dtype=np.int64)
    length = np.zeros(size, dtype=np.int64)
    filled = int(span.sum())
    sym[:filled] = np.repeat(order, span)
    length[:filled] = np.repeat(lens[order], span)
    return sym, length


ROUNDS = 5
"""Squarings of the jump map before the chain doubling moves to the compacted domain."""

HEAD = 2 ** (ROUNDS + 1) - 2
"""At most this many chain positions are followed one by one (see `_chain`)."""

SHRINK = 0.85
"""A squaring round is kept only when the domain shrinks to at most this fraction."""


def _double(step: NDArray[np.integer], start: int, count: int) -> NDArray[np.integer]:
    """Positions start, step[start], step[step[start]], ... (count of them) by pointer doubling.

    After r rounds `jump` is step applied 2**r times and `orbit` holds the first 2**r positions;
    each round appends jump(orbit) and squares jump: about log2(count) whole-array gathers.
    """
    orbit = np.full(1, start, dtype=step.dtype)
    jump = step
    while orbit.size < count:
        orbit = np.concatenate([orbit, jump[orbit]])
        if orbit.size < count:
            jump = jump[jump]
    return orbit[:count]


def _compact_image(jump: NDArray[np.integer]) -> tuple[NDArray[np.int64], NDArray[np.integer]]:
    """The image of `jump` (sorted indices) and `jump` restricted to it, renumbered."""
    member = np.zeros(jump.size, dtype=bool)
    member[jump] = True
    keep = np.flatnonzero(member)
    rank = np.zeros(jump.size, dtype=jump.dtype)
    rank[keep] = np.arange(keep.size, dtype=jump.dtype)
    return keep, rank[jump[keep]]


def _chain(step: NDArray[np.integer], count: int) -> NDArray[np.int64]:
    """Positions 0, step[0], step[step[0]], ... (count of them), without a loop per symbol.

    Chains started at different bit positions of a Huffman stream merge within a few codes, so
    the image of step**a (a set closed under step, since image(step**(a+1)) lies inside
    image(step**a)) is soon about (mean code length) times smaller than the stream. Round r
    squares the jump map on the current domain image(step**a) and keeps its image,
    image(step**(a + 2**r)); the rounds stop after ROUNDS or when the domain no longer shrinks
    by SHRINK (codes of nearly equal length do not merge). The first `a` positions of the chain
    are followed one by one; the rest, which lie in the domain, come from pointer doubling
    there.
    """
    head = np.zeros(min(count, HEAD + 1), dtype=np.int64)
    pos = 0
    for i in range(head.size):  # at most HEAD + 1 steps
        head[i] = pos
        pos = int(step[pos])
    if count <= HEAD + 1:
        return head
    where = np.arange(step.size, dtype=np.int64)  # position of each element of the domain
    jump = step
    skip = 0  # the domain is image(step**skip)
    for r in range(1, ROUNDS + 1):
        keep, squared = _compact_image(jump[jump])
        if keep.size > SHRINK * jump.size:
            break
        where, jump, skip = where[keep], squared, skip + 2**r
    rank = np.zeros(step.size, dtype=step.dtype)
    rank[where] = np.arange(where.size, dtype=step.dtype)
    tail = _double(rank[step[where]], int(rank[head[skip]]), count - skip)
    return np.concatenate([head[:skip], where[tail]])


def decode(data: bytes, count: int, lengths: NDArray[np.integer]) -> tuple[NDArray[np.int64], int]:
    """Decode `count` symbols from the start of `data`; returns them and the bits consumed.

    `lengths` must have passed `check_lengths`. Raises CorruptStream (naming `indices`) when the
    bits run out or a bit pattern has no code.
    """
    if count == 0:
        return np.zeros(0, dtype=np.int64), 0
    sym_table, len_table = decode_tables(lengths)
    top = int(np.asarray(lengths).max())
    nbits = 8 * len(data)
    if nbits == 0:
        raise CorruptStream(f"stream 'indices' is empty, expected {count} Huffman codes")
    win = bitio.bit_windows(data, top).astype(np.int64)
    length = len_table[win]
    dtype = np.int32 if nbits < 2**31 - 2 * MAX_LEN else np.int64
    step = np.arange(nbits + 1, dtype=dtype)
    step[:nbits] += length.astype(dtype)
    step[:nbits][length == 0] = nbits  # no code here: jump to the sentinel
    np.minimum(step, nbits, out=step)  # a code running past the end: sentinel too
    pos = _chain(step, count).astype(np.int64)
    inside = pos < nbits
    if not inside.all():
        first_out = int(np.argmin(inside))
        if length[pos[first_out - 1]] == 0:
            raise CorruptStream(
                f"stream 'indices' has a bit pattern with no code, symbol {first_out - 1}"
            )
        raise CorruptStream(f"stream 'indices' runs out of bits after {first_out} of {count} codes")
    if (length[pos] == 0).any():
        bad = int(np.argmax(length[pos] == 0))
        raise CorruptStream(f"stream 'indices' has a bit pattern with no code, symbol {bad}")
    used = int(pos[-1] + length[pos[-1]])
    if used > nbits:
        raise CorruptStream(f"stream 'indices' runs out of bits in code {count - 1} of {count}")
    return sym_table[win[pos]], used
