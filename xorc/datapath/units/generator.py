"""The in-situ weight generator of codec `insitu` (docs/codecs/insitu.md §4; docs/datapath.md
§3.9).

Hardware: the factor buffers hold the basis, U, V and the multipliers; for each pass of up to
DIM basis groups the level-1 lanes form the groups' W1 rows (Bi multiply-adds of qu x qb bits
per element), the MAC array adds V[:, o] x W1_o into 48-bit accumulators, and after the last
pass DIM requantization lanes multiply each accumulator by its row's multiplier, round, shift
and clamp to the Q-bit level. This model follows that order (passes of DIM groups) and checks
every partial sum against the accumulator width.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import from_sign_magnitude
from xorc.codecs.insitu.schema import ACC_BITS, InsituParams
from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream


def read_signed(bus: BusStream, shape: tuple[int, ...], width: int) -> NDArray[np.int64]:
    """A sign-magnitude factor stream (exact length, zero pad bits, no negative zero)."""
    count = int(np.prod(shape, dtype=np.int64))
    fields.exact_stream(bus, count * width, bus.name)
    codes = fields.narrow_fields(bus, count, width)
    if (codes == np.uint16(1 << (width - 1))).any():
        raise CorruptStream(f"stream {bus.name!r} holds a negative zero")
    return _signed_table(width)[codes].reshape(shape)


def _signed_table(width: int) -> NDArray[np.int64]:
    """The signed value of every `width`-bit sign-magnitude code (one gather decodes a stream)."""
    return from_sign_magnitude(np.arange(1 << width), width).astype(np.int64)


def read_unsigned(bus: BusStream, count: int, width: int) -> NDArray[np.int64]:
    fields.exact_stream(bus, count * width, bus.name)
    return fields.narrow_fields(bus, count, width).astype(np.int64)


def level1(
    rec: InsituParams, basis: NDArray[np.int64], u: NDArray[np.int64] | None, first: int, last: int
) -> NDArray[np.int64]:
    """W1 rows of basis groups first .. last - 1 (level-1 lanes)."""
    if u is None:
        return basis[first:last]
    w1 = np.zeros((last - first, rec.ci, rec.k), dtype=np.int64)
    for i in range(rec.bi):  # one multiply-add of every lane per basis kernel
        w1 += u[first:last, :, i, None] * basis[first:last, i, None, :]
    return w1.reshape(last - first, rec.cols)


def generate(
    rec: InsituParams,
    basis: NDArray[np.int64],
    u: NDArray[np.int64] | None,
    v: NDArray[np.int64],
    mult: NDArray[np.int64],
    dim: int,
) -> NDArray[np.int16]:
    """R x F levels, accumulated pass by pass (DIM groups each), then requantized.

    The accumulators' width is checked up front from the factors: no partial sum of row r can
    exceed sum_o |V[r, o]| * max|W1_o|. The products run in float64, exact below 2^53, so
    every partial sum is exact and the order of the passes does not change a bit: the passes
    of DIM groups (`passes`) are counted, and the whole sum is one BLAS product."""
    w1 = level1(rec, basis, u, 0, rec.bo)  # the lanes' W1 rows of every pass
    reach = np.abs(v).astype(np.float64) @ np.abs(w1).max(axis=1).astype(np.float64)
    if reach.size and float(reach.max()) >= float(1 << (ACC_BITS - 1)):  # not within the schema
        raise CorruptStream(f"generator accumulator exceeds {ACC_BITS} bits")
    acc = (v.astype(np.float64) @ w1.astype(np.float64)).astype(np.int64)
    top = (1 << (rec.bits - 1)) - 1
    acc *= mult[:, None]
    if rec.shift:
        acc += 1 << (rec.shift - 1)
        acc >>= rec.shift
    return np.clip(acc, -top, top, out=acc).astype(np.int16)


def passes(rec: InsituParams, dim: int) -> int:
    """Accumulation passes over the R x F accumulators (DIM basis groups each)."""
    return -(-rec.bo // dim)
