"""Helpers shared by encoders and decoders: the integer representation and record checks.

Sign-magnitude (docs/format.md, "Integer weights"): a Q-bit level v is stored as the Q-bit
unsigned code ``s << (Q-1) | |v|`` with s = 1 for v < 0. Zero has the single code 0; the
negative-zero code ``1 << (Q-1)`` is 0, or -2**(Q-1) in a full-range record (raw `full_range`,
docs/format.md §4.1), which is also what `to_sign_magnitude` gives for -2**(Q-1).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON


def to_sign_magnitude(values: NDArray[np.integer], bits: int) -> NDArray[np.uint16]:
    """Q-bit sign-magnitude codes of signed levels (|v| < 2**(Q-1), or v = -2**(Q-1), whose
    code is the negative zero)."""
    v = values.astype(np.int32)
    return ((v < 0).astype(np.uint16) << (bits - 1)) | np.abs(v).astype(np.uint16)


def from_sign_magnitude(
    codes: NDArray[np.integer], bits: int, full_range: bool = False
) -> NDArray[np.int16]:
    """Signed levels of Q-bit sign-magnitude codes. A negative zero decodes to 0, or to
    -2**(Q-1) with `full_range`. Many uint16 codes below 2**Q: one lookup in the table of
    all 2**Q codes (the same values)."""
    big = codes.dtype == np.uint16 and bits <= 16 and codes.size > 1 << bits
    if big and int(codes.max()) < 1 << bits:
        table = from_sign_magnitude(np.arange(1 << bits, dtype=np.int32), bits, full_range)
        return table[codes]  # type: ignore[no-any-return]
    c = codes.astype(np.int32)
    top = 1 << (bits - 1)
    mag = c & (top - 1)
    if full_range:
        mag = np.where(c == top, top, mag)
    return np.where(c >> (bits - 1) & 1, -mag, mag).astype(np.int16)


def param_int(params: Mapping[str, JSON], key: str, lo: int, hi: int) -> int:
    """An integer codec parameter in [lo, hi], or BadRecord naming it."""
    value = params.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise BadRecord(
            f"codec parameter {key!r} must be an integer in [{lo}, {hi}], got {value!r}"
        )
    return value


def param_bool(params: Mapping[str, JSON], key: str) -> bool:
    """A boolean codec parameter, or BadRecord naming it."""
    value = params.get(key)
    if type(value) is not bool:
        raise BadRecord(f"codec parameter {key!r} must be true or false, got {value!r}")
    return value


def stream(streams: Mapping[str, bytes], name: str, nbytes: int | None = None) -> bytes:
    """The stream called `name`, checked to be exactly `nbytes` long when given."""
    if name not in streams:
        raise CorruptStream(f"stream {name!r} is missing")
    data = streams[name]
    if nbytes is not None and len(data) != nbytes:
        raise CorruptStream(f"stream {name!r} is {len(data)} bytes, expected {nbytes}")
    return data


def n_elements(shape: tuple[int, ...]) -> int:
    """Number of elements of a shape (1 for a scalar)."""
    return int(np.prod(shape, dtype=np.int64))
