"""The in-memory container (docs/format.md §3): records, scales, digests, the PAYLOAD layout.

`Container` is what `xorc.format.v1` reads and writes. Reading validates every record first
(`xorc.format.records`); nothing here checks untrusted input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc.tensor import JSON
from xorc.tiles import PRESENCE, Structure

SCALES = "scales"
SCALE_DTYPES = {"float32": 4, "bfloat16": 2, "pow2": 1}  # bytes per scale (docs/format.md §3.4)


@dataclass(frozen=True)
class StreamRef:
    """Where one stream of a tensor lies inside the PAYLOAD section."""

    name: str
    offset: int
    length: int


@dataclass(frozen=True)
class TensorRecord:
    """One encoded tensor (docs/format.md §3.2)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    bits: int
    axis: int | None
    codec: int
    codec_name: str
    policy: str
    params: dict[str, JSON]
    streams: tuple[StreamRef, ...]
    n_weights: int
    n_nonzero: int
    digest: str
    stats: dict[str, JSON] = field(default_factory=dict)
    scale_dtype: str = "float32"
    offsets: tuple[int, ...] | None = None
    structure: Structure | None = None
    group_size: int | None = None

    def to_json(self) -> dict[str, JSON]:
        extra: dict[str, JSON] = {} if self.offsets is None else {"offsets": list(self.offsets)}
        if self.group_size is not None:
            extra["group_size"] = self.group_size
        if self.structure is not None:
            extra["structure"] = self.structure.to_json()
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "bits": self.bits,
            "axis": self.axis,
            "scale_dtype": self.scale_dtype,
            "codec": self.codec,
            "codec_name": self.codec_name,
            "policy": self.policy,
            "params": self.params,
            "streams": [
                {"name": s.name, "offset": s.offset, "length": s.length} for s in self.streams
            ],
            "n_weights": self.n_weights,
            "n_nonzero": self.n_nonzero,
            "digest": self.digest,
            "stats": self.stats,
            **extra,
        }

    @property
    def n_channels(self) -> int:
        """The size of the channel axis, or 1."""
        return 1 if self.axis is None else self.shape[self.axis]

    @property
    def n_scales(self) -> int:
        """Number of scales: one per channel, or ceil(F / G) per channel with `group_size` G
        (docs/format.md §3.4)."""
        if self.group_size is None or self.axis is None:
            return self.n_channels
        features = self.n_weights // max(self.shape[self.axis], 1)
        return self.n_channels * -(-features // self.group_size)


@dataclass(frozen=True)
class Container:
    """A whole blob. `payload` holds every stream, laid out per docs/format.md §3.4: bytes, or
    a view of a memory-mapped file (a blob being read, a payload being written), from which
    each tensor's streams are copied when asked for."""

    meta: dict[str, JSON]
    tensors: tuple[TensorRecord, ...]
    graph: bytes
    payload: bytes | memoryview
    fmap: dict[str, JSON] | None = None

    def stream(self, record: TensorRecord, name: str) -> bytes:
        for s in record.streams:
            if s.name == name:
                return bytes(self.payload[s.offset : s.offset + s.length])
        raise KeyError(name)

    def codec_streams(self, record: TensorRecord) -> dict[str, bytes]:
        """The streams the codec decoder reads (all but `scales` and `presence`)."""
        return {
            s.name: bytes(self.payload[s.offset : s.offset + s.length])
            for s in record.streams
            if s.name not in (SCALES, PRESENCE)
        }

    def scales(self, record: TensorRecord) -> NDArray[np.float32]:
        return decode_scales(self.stream(record, SCALES), record.scale_dtype)


def encode_scales(scales: NDArray[np.float32], scale_dtype: str) -> bytes:
    """The `scales` stream (docs/format.md §3.4); bfloat16 and pow2 scales must be exact."""
    u = np.ascontiguousarray(scales, dtype=np.float32).view(np.uint32)
    if scale_dtype == "float32":
        return u.astype("<u4").tobytes()
    if scale_dtype == "pow2":
        shifts = pow2_shifts(scales)
        if shifts is None:
            raise ValueError("a scale is not a power of two 2^-n with n in [-127, 126]")
        return shifts.astype("i1").tobytes()
    if (u & 0xFFFF).any():
        raise ValueError("a scale is not exactly representable in bfloat16")
    return (u >> 16).astype("<u2").tobytes()


def decode_scales(data: bytes, scale_dtype: str) -> NDArray[np.float32]:
    """The float32 scales of a `scales` stream (docs/format.md §3.4)."""
    if scale_dtype == "float32":
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    if scale_dtype == "pow2":  # n = -128 is out of range: 2^128 is infinite in binary32
        n = np.frombuffer(data, dtype="i1").astype(np.int32)
        return np.where(n < -127, np.inf, np.ldexp(1.0, -np.maximum(n, -127))).astype(np.float32)
    return (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)


def pow2_shifts(scales: NDArray[np.float32]) -> NDArray[np.int8] | None:
    """The shifts n of scales that are all powers of two 2^-n, n in [-127, 126], or None."""
    s = np.asarray(scales, dtype=np.float64)
    if not np.isfinite(s).all() or (s <= 0).any():
        return None
    mant, exp = np.frexp(s)
    n = 1 - exp
    if not (mant == 0.5).all() or (n < -127).any() or (n > 126).any():
        return None
    return n.astype(np.int8)


def levels_digest(levels: NDArray[np.integer]) -> str:
    """SHA-256 of levels as little-endian int16 in C order (docs/format.md §3.2 `digest`)."""
    return hashlib.sha256(np.ascontiguousarray(levels, dtype="<i2").tobytes()).hexdigest()


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes (docs/format.md §1)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def align(x: int, a: int) -> int:
    """x rounded up to a multiple of a (docs/format.md §1)."""
    return (x + a - 1) // a * a


def layout_payload(
    streams_per_tensor: list[list[tuple[str, bytes]]],
) -> tuple[bytes, list[tuple[StreamRef, ...]]]:
    """Lay out streams per docs/format.md §3.4; returns the PAYLOAD bytes and the references."""
    parts: list[bytes] = []
    refs: list[tuple[StreamRef, ...]] = []
    offset = 0
    for streams in streams_per_tensor:
        tensor_refs = []
        for name, data in streams:
            tensor_refs.append(StreamRef(name, offset, len(data)))
            pad = align(len(data), 8) - len(data)
            parts.append(data + b"\0" * pad)
            offset += len(data) + pad
        refs.append(tuple(tensor_refs))
    return b"".join(parts), refs
