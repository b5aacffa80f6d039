"""Rice decoder front end (mask gaps and patch gaps; docs/datapath.md §3.4).

Layout (xorc/bits.py): a run of `count` Rice codes with parameter k is all unary quotients
(q ones, then a zero) followed by all k-bit remainders. The hardware keeps two read pointers
per run (quotients, remainders) and decodes `rice_codes_per_cycle` codes per cycle.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.bounds import check_rice
from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream


def _decode(
    bus: BusStream, offset: int, avail: int, count: int, k: int, what: str
) -> tuple[NDArray[np.uint64], int]:
    """`count` codes from bit `offset`, within `avail` bits: (values, bits used).

    The quotient of code c is the number of ones before its zero in the unary run; remainder c
    is the k-bit field at (end of the unary run) + c * k.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint64), 0
    unary = fields.bits(bus, avail, offset)
    zeros = np.flatnonzero(unary == 0)
    if zeros.size < count:
        raise CorruptStream(
            f"stream {what!r}: the Rice run ends after {zeros.size} of {count} codes"
        )
    ends = zeros[:count]
    quotients = np.diff(ends, prepend=-1) - 1
    used = int(ends[-1]) + 1
    if used + count * k > avail:
        raise CorruptStream(f"stream {what!r}: the Rice run is too short for its remainders")
    values = quotients.astype(np.uint64) << np.uint64(k)
    if k:
        start = offset + used + np.arange(count, dtype=np.int64) * k
        values |= fields.peek(fields.windows(bus), start, k)
    return values, used + count * k


def decode_run(
    bus: BusStream, offset: int, nbits: int, count: int, k: int, what: str
) -> NDArray[np.uint64]:
    """Exactly `count` Rice values that use exactly the `nbits` bits from bit `offset`.

    Raises:
        CorruptStream: the bits run out or are left over.
    """
    check_rice(count, k, nbits, what)
    values, used = _decode(bus, offset, nbits, count, k, what)
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


def decode_prefix(bus: BusStream, count: int, k: int, what: str) -> tuple[NDArray[np.uint64], int]:
    """`count` Rice values from the start of a stream whose length is not known in advance;
    returns them and the bits they use (the caller checks the stream's length and padding).

    Raises:
        CorruptStream: the bits run out.
    """
    check_rice(count, k, 8 * bus.nbytes, what)
    return _decode(bus, 0, 8 * bus.nbytes, count, k, what)
