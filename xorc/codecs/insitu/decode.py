"""Reference decoder of codec `insitu` (docs/codecs/insitu.md §3-§4): reads the factors and
regenerates the levels in integer arithmetic: int64 level 1 and requantization, the level-2
matrix product on float64 BLAS, exact for these integers (section 4). Never imports the encoder
(`encode.py`, `factor.py`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.common import from_sign_magnitude, stream
from xorc.codecs.insitu.schema import InsituParams, parse
from xorc.errors import CorruptStream
from xorc.tensor import JSON


def _fields(streams: Mapping[str, bytes], name: str, count: int, width: int) -> NDArray[np.int64]:
    """`count` consecutive `width`-bit fields filling stream `name` exactly, zero pad bits."""
    nbits = count * width
    data = stream(streams, name, (nbits + 7) // 8)
    if nbits % 8 and data[-1] & ((1 << (8 - nbits % 8)) - 1):
        raise CorruptStream(f"stream {name!r} has nonzero pad bits")
    starts = width * np.arange(count, dtype=np.int64)
    return bitio.bit_windows(data, width, starts).astype(np.int64)


def read_factor(
    streams: Mapping[str, bytes], name: str, shape: tuple[int, ...], width: int
) -> NDArray[np.int64]:
    """A sign-magnitude factor stream as signed integers of `shape` (negative zero refused)."""
    codes = _fields(streams, name, int(np.prod(shape, dtype=np.int64)), width)
    if (codes == 1 << (width - 1)).any():
        raise CorruptStream(f"stream {name!r} holds a negative zero")
    return from_sign_magnitude(codes, width).astype(np.int64).reshape(shape)


def read_all(
    rec: InsituParams, streams: Mapping[str, bytes]
) -> tuple[NDArray[np.int64], NDArray[np.int64] | None, NDArray[np.int64], NDArray[np.int64]]:
    """basis, U (None without level 1), V and the multipliers of a checked record."""
    rec.check_streams(streams)
    basis = read_factor(streams, "basis", rec.basis_shape, rec.qb)
    u = read_factor(streams, "u", rec.u_shape, rec.qu) if rec.bi else None
    v = read_factor(streams, "v", (rec.rows, rec.bo), rec.qv)
    mult = _fields(streams, "multipliers", rec.rows, rec.mbits)
    return basis, u, v, mult


def exact_product(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    """The integer matrix product a @ b, computed by a float64 BLAS product: exact because every
    product and partial sum of the generator is an integer below 2^40 < 2^53 in magnitude
    (section 4 step 2), so no float rounding ever happens."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def generate(
    rec: InsituParams,
    basis: NDArray[np.int64],
    u: NDArray[np.int64] | None,
    v: NDArray[np.int64],
    mult: NDArray[np.int64],
) -> NDArray[np.int16]:
    """The levels of section 4: level 1, level 2, requantization, back to tensor order."""
    # level 1: W1[o, c, t] = sum_i U[o, c, i] * Wb[o, i, t]
    w1 = basis if u is None else np.matmul(u, basis).reshape(rec.bo, rec.cols)
    acc = exact_product(v, w1)
    acc *= mult[:, None]
    if rec.shift:
        acc += 1 << (rec.shift - 1)
        acc >>= rec.shift
    top = (1 << (rec.bits - 1)) - 1
    levels = np.clip(acc, -top, top).astype(np.int16)
    rest = rec.shape[: rec.axis] + rec.shape[rec.axis + 1 :]
    return np.ascontiguousarray(np.moveaxis(levels.reshape(rec.rows, *rest), 0, rec.axis))


def decode(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Mapping[str, bytes],
) -> NDArray[np.int16]:
    """Decode one `insitu` tensor (section 4)."""
    rec = parse(tuple(shape), bits, params)
    return generate(rec, *read_all(rec, streams))
