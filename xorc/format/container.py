"""The in-memory container and the validation of its JSON records (docs/format.md §3).

`Container` is what `xorc.format.v1` reads and writes; records are validated field by field
here, with a `BadRecord` naming the tensor and field, before anything trusts them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc.errors import BadRecord
from xorc.tensor import JSON

MAX_TENSORS = 100_000
MAX_RANK = 8
MAX_DIM = 2**31 - 1
MAX_WEIGHTS = 2**32
MAX_NAME_BYTES = 4096
MAX_STREAMS = 64
DTYPES = ("float32", "float16", "bfloat16", "float64", "int8")
POLICIES = ("raw", "all", "importance", "dictionary", "ebpc")
SCALES = "scales"
SCALE_DTYPES = {"float32": 4, "bfloat16": 2}  # bytes per scale (docs/format.md §3.4)


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

    def to_json(self) -> dict[str, JSON]:
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
        }

    @property
    def n_channels(self) -> int:
        """Number of scales: the size of the channel axis, or 1."""
        return 1 if self.axis is None else self.shape[self.axis]


@dataclass(frozen=True)
class Container:
    """A whole blob in memory. `payload` holds every stream, laid out per docs/format.md §3.4."""

    meta: dict[str, JSON]
    tensors: tuple[TensorRecord, ...]
    graph: bytes
    payload: bytes
    fmap: dict[str, JSON] | None = None

    def stream(self, record: TensorRecord, name: str) -> bytes:
        for s in record.streams:
            if s.name == name:
                return self.payload[s.offset : s.offset + s.length]
        raise KeyError(name)

    def codec_streams(self, record: TensorRecord) -> dict[str, bytes]:
        """The streams the codec decoder reads (all but `scales`)."""
        return {
            s.name: self.payload[s.offset : s.offset + s.length]
            for s in record.streams
            if s.name != SCALES
        }

    def scales(self, record: TensorRecord) -> NDArray[np.float32]:
        return decode_scales(self.stream(record, SCALES), record.scale_dtype)


def encode_scales(scales: NDArray[np.float32], scale_dtype: str) -> bytes:
    """The `scales` stream (docs/format.md §3.4); bfloat16 scales must be exact."""
    u = np.ascontiguousarray(scales, dtype=np.float32).view(np.uint32)
    if scale_dtype == "float32":
        return u.astype("<u4").tobytes()
    if (u & 0xFFFF).any():
        raise ValueError("a scale is not exactly representable in bfloat16")
    return (u >> 16).astype("<u2").tobytes()


def decode_scales(data: bytes, scale_dtype: str) -> NDArray[np.float32]:
    """The float32 scales of a `scales` stream (docs/format.md §3.4)."""
    if scale_dtype == "float32":
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    return (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)


def levels_digest(levels: NDArray[np.integer]) -> str:
    """SHA-256 of levels as little-endian int16 in C order (docs/format.md §3.2 `digest`)."""
    return hashlib.sha256(np.ascontiguousarray(levels, dtype="<i2").tobytes()).hexdigest()


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes (docs/format.md §1)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def loads(data: bytes, section: str) -> dict[str, JSON]:
    """Parse a JSON section strictly; BadRecord on anything but a JSON object."""
    try:
        obj = json.loads(
            data.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadRecord(f"section {section}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BadRecord(f"section {section}: expected a JSON object")
    return obj


def _int(obj: Mapping[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    value = obj.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise BadRecord(f"{where}: field {key!r} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...] = ()) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (choices and value not in choices):
        expected = f"one of {', '.join(choices)}" if choices else "a string"
        raise BadRecord(f"{where}: field {key!r} must be {expected}, got {value!r}")
    return value


def _obj(obj: Mapping[str, Any], key: str, where: str) -> dict[str, JSON]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise BadRecord(f"{where}: field {key!r} must be an object")
    return value


def parse_meta(meta: dict[str, JSON]) -> dict[str, JSON]:
    """Check the META section's fields (docs/format.md §3.1)."""
    for key in ("format", "tool", "tool_version", "source_sha256"):
        _str(meta, key, "section META")
    if meta["format"] != "xorc":
        raise BadRecord(f"section META: field 'format' must be 'xorc', got {meta['format']!r}")
    _obj(meta, "options", "section META")
    return meta


def parse_tensors(
    doc: dict[str, JSON], payload_length: int, bf16_scales: bool = False
) -> tuple[TensorRecord, ...]:
    """Check every tensor record and its stream layout (docs/format.md §3.2, §3.4);
    `bf16_scales`: whether the header's required flag BF16_SCALES is set."""
    raw = doc.get("tensors")
    if not isinstance(raw, list) or len(raw) > MAX_TENSORS:
        raise BadRecord(f"section TENSORS: 'tensors' must be a list of at most {MAX_TENSORS}")
    records: list[TensorRecord] = []
    names: set[str] = set()
    expected_offset = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRecord(f"tensor #{i}: record must be an object")
        rec = _parse_record(item, i, bf16_scales)
        if rec.name in names:
            raise BadRecord(f"tensor {rec.name!r}: duplicate name")
        names.add(rec.name)
        for s in rec.streams:
            if s.offset != expected_offset:
                raise BadRecord(
                    f"tensor {rec.name!r}: stream {s.name!r} at offset {s.offset}, "
                    f"layout requires {expected_offset}"
                )
            expected_offset = _align(s.offset + s.length, 8)
        records.append(rec)
    if expected_offset != payload_length:
        raise BadRecord(
            f"section PAYLOAD is {payload_length} bytes, the records lay out {expected_offset}"
        )
    return tuple(records)


def _parse_record(item: dict[str, Any], i: int, bf16_scales: bool) -> TensorRecord:
    name = item.get("name")
    if not isinstance(name, str) or not 1 <= len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        raise BadRecord(
            f"tensor #{i}: field 'name' must be a string of 1 to {MAX_NAME_BYTES} bytes"
        )
    where = f"tensor {name!r}"
    shape_raw = item.get("shape")
    if not isinstance(shape_raw, list) or len(shape_raw) > MAX_RANK:
        raise BadRecord(f"{where}: field 'shape' must be a list of at most {MAX_RANK} dimensions")
    for d in shape_raw:
        if type(d) is not int or not 0 <= d <= MAX_DIM:
            raise BadRecord(f"{where}: field 'shape' has a bad dimension {d!r}")
    shape = tuple(shape_raw)
    n_weights = 1
    for d in shape:
        n_weights *= d
    if n_weights > MAX_WEIGHTS:
        raise BadRecord(f"{where}: shape {list(shape)} has more than {MAX_WEIGHTS} elements")
    if _int(item, "n_weights", 0, MAX_WEIGHTS, where) != n_weights:
        raise BadRecord(f"{where}: field 'n_weights' does not match shape {list(shape)}")
    axis = item.get("axis")
    if axis is not None and (type(axis) is not int or not 0 <= axis < len(shape)):
        raise BadRecord(f"{where}: field 'axis' must be null or in [0, {len(shape)}), got {axis!r}")
    digest = _str(item, "digest", where)
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise BadRecord(f"{where}: field 'digest' must be 64 lowercase hex digits")
    streams = _parse_streams(item.get("streams"), where)
    scale_dtype = "float32"
    if "scale_dtype" in item:
        scale_dtype = _str(item, "scale_dtype", where, tuple(SCALE_DTYPES))
    if scale_dtype == "bfloat16" and not bf16_scales:
        raise BadRecord(f"{where}: bfloat16 scales, but required flag BF16_SCALES is clear")
    expected = SCALE_DTYPES[scale_dtype] * (1 if axis is None else shape[axis])
    if streams[0].length != expected:
        raise BadRecord(
            f"{where}: stream 'scales' is {streams[0].length} bytes, expected {expected} "
            f"({scale_dtype})"
        )
    return TensorRecord(
        name=name,
        shape=shape,
        dtype=_str(item, "dtype", where, DTYPES),
        bits=_int(item, "bits", 2, 8, where),
        axis=axis,
        codec=_int(item, "codec", 0, 2**31 - 1, where),
        codec_name=_str(item, "codec_name", where),
        policy=_str(item, "policy", where, POLICIES),
        params=_obj(item, "params", where),
        streams=streams,
        n_weights=n_weights,
        n_nonzero=_int(item, "n_nonzero", 0, n_weights, where),
        digest=digest,
        stats=_obj(item, "stats", where),
        scale_dtype=scale_dtype,
    )


def _parse_streams(raw: Any, where: str) -> tuple[StreamRef, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STREAMS:
        raise BadRecord(f"{where}: field 'streams' must be a list of 1 to {MAX_STREAMS} streams")
    out: list[StreamRef] = []
    for s in raw:
        if not isinstance(s, dict):
            raise BadRecord(f"{where}: each stream must be an object")
        name = _str(s, "name", where)
        sref = StreamRef(
            name, _int(s, "offset", 0, 2**40, where), _int(s, "length", 0, 2**40, where)
        )
        if any(o.name == name for o in out):
            raise BadRecord(f"{where}: duplicate stream {name!r}")
        out.append(sref)
    if out[0].name != SCALES:
        raise BadRecord(f"{where}: the first stream must be 'scales', got {out[0].name!r}")
    return tuple(out)


def _align(x: int, a: int) -> int:
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
            pad = _align(len(data), 8) - len(data)
            parts.append(data + b"\0" * pad)
            offset += len(data) + pad
        refs.append(tuple(tensor_refs))
    return b"".join(parts), refs
