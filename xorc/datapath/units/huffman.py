"""Canonical Huffman index decoder of the dictionary codec (docs/codecs/dictionary.md §5;
docs/datapath.md §3.6).

Hardware: a table indexed by the next max_len bits gives the symbol and its length; one code per
cycle (`huffman_codes_per_cycle`). The table is built from the code lengths in canonical order
(by length, then symbol). Symbol boundaries are found with the lane parser (`parser.py`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.bounds import check_fits
from xorc.datapath import fields, parser
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream

MAX_LEN = 15


def check_lengths(lengths: NDArray[np.int64]) -> None:
    """A usable code: some symbol has a code, and the code is complete, except that a single
    symbol has length 1.

    Raises:
        CorruptStream: naming `code_lengths`.
    """
    used = lengths[lengths > 0]
    if lengths.size == 0 or used.size == 0:
        raise CorruptStream("stream 'code_lengths' gives no symbol a code")
    if int(lengths.max()) > MAX_LEN:
        raise CorruptStream(f"stream 'code_lengths' has a length above {MAX_LEN}")
    if used.size == 1:
        if int(used[0]) != 1:
            raise CorruptStream("stream 'code_lengths': a lone symbol must have length 1")
        return
    if int((np.int64(1) << (MAX_LEN - used)).sum()) != 1 << MAX_LEN:
        raise CorruptStream("stream 'code_lengths' is not a complete prefix code")


def tables(lengths: NDArray[np.int64]) -> tuple[int, NDArray[np.int64], NDArray[np.int64]]:
    """(window bits L, symbol by window, length by window); windows with no code have length 0.

    Canonical codes in (length, symbol) order occupy consecutive window ranges of
    2^(L - length) windows each.
    """
    top = int(lengths.max())
    sym = np.flatnonzero(lengths)
    order = sym[np.lexsort((sym, lengths[sym]))]
    span = np.int64(1) << (top - lengths[order])
    filled = int(span.sum())
    symbol = np.zeros(1 << top, dtype=np.int64)
    length = np.zeros(1 << top, dtype=np.int64)
    symbol[:filled] = np.repeat(order, span)
    length[:filled] = np.repeat(lengths[order], span)
    return top, symbol, length


def decode(bus: BusStream, count: int, lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """`count` symbols from bit 0; the stream must end in the byte of the last code, pad zero.

    Raises:
        CorruptStream: a bit pattern with no code, too few bits, wrong length, pad bits.
    """
    if count == 0:
        used = 0
        symbols = np.zeros(0, dtype=np.int64)
    else:
        check_fits(count, int(lengths[lengths > 0].min()), 8 * bus.nbytes, "indices")
        top, symbol, length = tables(lengths)
        nbits = 8 * bus.nbytes
        if nbits == 0:
            raise CorruptStream(f"stream 'indices' is empty, expected {count} Huffman codes")
        table = np.maximum(length, 1)  # state 0 only; a window with no code advances 1 bit
        win = fields.windows(bus)
        pos, _, _, _ = parser.parse(win, table, top, nbits, segment=256)
        if pos.size < count:
            raise CorruptStream(
                f"stream 'indices' runs out of bits after {pos.size} of {count} codes"
            )
        pos = pos[:count]
        w = fields.peek(win, pos, top).astype(np.int64)
        lens = length[w]
        if not lens.all():
            first = int(np.argmin(lens != 0))
            raise CorruptStream(
                f"stream 'indices' has a bit pattern with no code at symbol {first}"
            )
        used = int(pos[-1] + lens[-1])
        if used > nbits:
            raise CorruptStream(f"stream 'indices' runs out of bits in code {count - 1} of {count}")
        symbols = symbol[w]
    if bus.nbytes != (used + 7) // 8:
        raise CorruptStream(
            f"stream 'indices' is {bus.nbytes} bytes, its codes need {(used + 7) // 8}"
        )
    fields.exact_stream(bus, used, "indices")
    return symbols
