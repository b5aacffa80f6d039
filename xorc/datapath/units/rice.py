"""Rice decoder front end (mask gaps and patch gaps; docs/datapath.md §3.4).

Layout (xorc/bits.py): a run of `count` Rice codes with parameter k is all unary quotients
(q ones, then a zero) followed by all k-bit remainders. The hardware keeps two read pointers
per run (quotients, remainders) and decodes `rice_codes_per_cycle` codes per cycle.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream


def decode_run(bus: BusStream, offset: int, nbits: int, count: int, k: int, what: str) -> NDArray[np.uint64]:
    """Exactly `count` Rice values that use exactly the `nbits` bits from bit `offset`.

    Raises:
        CorruptStream: the bits run out or are left over.
    """
    if count > nbits:
        raise CorruptStream(f"stream {what!r}: {count} Rice codes cannot fit in {nbits} bits")
    run = fields.bits(bus, nbits, offset)
    try:
        values, used = bitio.rice_decode(run, count, k)
    except ValueError as exc:
        raise CorruptStream(f"stream {what!r}: {exc}") from None
    if used != nbits:
        raise CorruptStream(f"stream {what!r}: {nbits - used} bits left after {count} Rice codes")
    return values


def gaps_to_positions(gaps: NDArray[np.uint64], limit: int, what: str) -> NDArray[np.int64]:
    """Ascending positions from gaps (p_0 = g_0, p_i = p_(i-1) + 1 + g_i), each < `limit`.

    Raises:
        CorruptStream: a position is out of range.
    """
    if gaps.size == 0:
        return np.zeros(0, dtype=np.int64)
    if int(gaps.max()) >= limit:
        raise CorruptStream(f"stream {what!r}: a gap reaches past the {limit} positions")
    pos = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if int(pos[-1]) >= limit:
        raise CorruptStream(f"stream {what!r}: position {int(pos[-1])} is not below {limit}")
    return pos


def cycles(codes: int, per_cycle: int) -> int:
    """Cycles to decode `codes` Rice codes."""
    return -(-codes // per_cycle)
