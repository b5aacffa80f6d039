"""Step 6 of reading a blob (docs/format.md §5): the JSON sections and the stream layout.

Every field of META (§3.1) and of each tensor record (§3.2) is type-checked here, and the
streams are checked against the PAYLOAD layout (§3.4), with a `BadRecord` naming the tensor and
field, before anything trusts them. The byte layout around the sections is `xorc.format.v1`'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from xorc.errors import BadRecord
from xorc.format.container import SCALE_DTYPES, SCALES, StreamRef, TensorRecord, align
from xorc.tensor import JSON
from xorc.tiles import PRESENCE, Structure, parse_structure

MAX_TENSORS = 100_000
MAX_RANK = 8
MAX_DIM = 2**31 - 1
MAX_WEIGHTS = 2**32
MAX_NAME_BYTES = 4096
MAX_POLICY_BYTES = 256
MAX_STREAMS = 64
DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "uint8")
INTEGER_DTYPES = {"int8": (-128, 127), "uint8": (0, 255)}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent; one that overflows to infinity (1e400) is
    refused like the Infinity literal (docs/format.md §1)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is not finite")
    return value


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
            parse_float=_finite_float,
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


def _utf8_length(value: str) -> int:
    """Bytes of `value` in UTF-8; -1 when it holds a lone surrogate (JSON allows "\\ud800")."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return -1


def _label(obj: Mapping[str, Any], key: str, where: str, max_bytes: int) -> str:
    """A non-empty printable string of at most `max_bytes` UTF-8 bytes, never interpreted."""
    value = obj.get(key)
    if (
        not isinstance(value, str)
        or not value.isprintable()
        or not 1 <= _utf8_length(value) <= max_bytes
    ):
        raise BadRecord(
            f"{where}: field {key!r} must be a printable string of 1 to {max_bytes} bytes, "
            f"got {value!r}"
        )
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
    doc: dict[str, JSON],
    payload_length: int,
    bf16_scales: bool = False,
    offsets: bool = False,
    pow2_scales: bool = False,
    full_range: bool = False,
    group_scales: bool = False,
) -> tuple[TensorRecord, ...]:
    """Check every tensor record and its stream layout (docs/format.md §3.2, §3.4);
    `bf16_scales`, `offsets`, `pow2_scales`, `full_range`, `group_scales`: whether the header's
    required flags BF16_SCALES, INT_OFFSETS, POW2_SCALES, FULL_RANGE and GROUP_SCALES are set."""
    raw = doc.get("tensors")
    if not isinstance(raw, list) or len(raw) > MAX_TENSORS:
        raise BadRecord(f"section TENSORS: 'tensors' must be a list of at most {MAX_TENSORS}")
    records: list[TensorRecord] = []
    names: set[str] = set()
    expected_offset = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRecord(f"tensor #{i}: record must be an object")
        rec = _parse_record(item, i, bf16_scales, offsets, pow2_scales, group_scales)
        _check_full_range(rec, full_range)
        if rec.name in names:
            raise BadRecord(f"tensor {rec.name!r}: duplicate name")
        names.add(rec.name)
        for s in rec.streams:
            if s.offset != expected_offset:
                raise BadRecord(
                    f"tensor {rec.name!r}: stream {s.name!r} at offset {s.offset}, "
                    f"layout requires {expected_offset}"
                )
            expected_offset = align(s.offset + s.length, 8)
        records.append(rec)
    if expected_offset != payload_length:
        raise BadRecord(
            f"section PAYLOAD is {payload_length} bytes, the records lay out {expected_offset}"
        )
    return tuple(records)


def check_stream_padding(payload: bytes | memoryview, tensors: tuple[TensorRecord, ...]) -> None:
    """The PAYLOAD bytes outside every stream are zero (docs/format.md §3.4): the gaps between
    the streams, sorted by offset, are read; the streams themselves are not."""
    spans = sorted((s.offset, s.offset + s.length) for t in tensors for s in t.streams)
    view = memoryview(payload)
    pos = 0
    for start, end in [*spans, (len(view), len(view))]:
        for at in range(pos, start, GAP_CHUNK):
            if np.frombuffer(view[at : min(start, at + GAP_CHUNK)], dtype=np.uint8).any():
                raise BadRecord("section PAYLOAD: padding between streams is not zero")
        pos = max(pos, end)


GAP_CHUNK = 1 << 20


def _parse_name(item: Mapping[str, Any], i: int) -> str:
    name = item.get("name")
    if not isinstance(name, str) or not 1 <= _utf8_length(name) <= MAX_NAME_BYTES:
        raise BadRecord(
            f"tensor #{i}: field 'name' must be a string of 1 to {MAX_NAME_BYTES} bytes"
        )
    return name


def _parse_shape(item: Mapping[str, Any], where: str) -> tuple[tuple[int, ...], int]:
    """The shape and its number of elements, checked against `n_weights`."""
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
    return shape, n_weights


def _parse_record(
    item: dict[str, Any],
    i: int,
    bf16_scales: bool,
    offsets_flag: bool = False,
    pow2: bool = False,
    groups: bool = False,
) -> TensorRecord:
    name = _parse_name(item, i)
    where = f"tensor {name!r}"
    shape, n_weights = _parse_shape(item, where)
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
    if scale_dtype == "pow2" and not pow2:
        raise BadRecord(f"{where}: pow2 scales, but required flag POW2_SCALES is clear")
    dtype = _str(item, "dtype", where, DTYPES)
    group_size, n_scales = _parse_group_size(item, where, shape, axis, dtype, groups)
    expected = SCALE_DTYPES[scale_dtype] * n_scales
    if streams[0].length != expected:
        raise BadRecord(
            f"{where}: stream 'scales' is {streams[0].length} bytes, expected {expected} "
            f"({scale_dtype})"
        )
    structure = _parse_structure(item, shape, axis, streams, where)
    offsets = _parse_offsets(item, where, dtype, 1 if axis is None else shape[axis], offsets_flag)
    return TensorRecord(
        name=name,
        shape=shape,
        dtype=dtype,
        bits=_int(item, "bits", 2, 8, where),
        axis=axis,
        codec=_int(item, "codec", 0, 2**31 - 1, where),
        codec_name=_str(item, "codec_name", where),
        policy=_label(item, "policy", where, MAX_POLICY_BYTES),
        params=_obj(item, "params", where),
        streams=streams,
        n_weights=n_weights,
        n_nonzero=_int(item, "n_nonzero", 0, n_weights, where),
        digest=digest,
        stats=_obj(item, "stats", where),
        scale_dtype=scale_dtype,
        offsets=offsets,
        structure=structure,
        group_size=group_size,
    )


def _parse_group_size(
    item: Mapping[str, Any],
    where: str,
    shape: tuple[int, ...],
    axis: int | None,
    dtype: str,
    flag: bool,
) -> tuple[int | None, int]:
    """The optional `group_size` G (docs/format.md §3.2) and the number of scales it means:
    one per channel without it, ceil(F / G) per channel with it."""
    channels = 1 if axis is None else shape[axis]
    if "group_size" not in item:
        return None, channels
    if not flag:
        raise BadRecord(f"{where}: field 'group_size', but required flag GROUP_SCALES is clear")
    if axis is None or dtype in INTEGER_DTYPES:
        raise BadRecord(
            f"{where}: field 'group_size' needs a channel axis and a float dtype, got axis "
            f"{axis!r} and dtype {dtype!r}"
        )
    features = 0 if channels == 0 else math.prod(shape) // channels
    group = _int(item, "group_size", 1, MAX_DIM, where)
    if group >= features:
        raise BadRecord(
            f"{where}: field 'group_size' {group} must be below the {features} weights per "
            "channel (one group per channel is written without it)"
        )
    return group, channels * -(-features // group)


def _parse_structure(
    item: Mapping[str, Any],
    shape: tuple[int, ...],
    axis: int | None,
    streams: tuple[StreamRef, ...],
    where: str,
) -> Structure | None:
    """The optional `structure` and its `presence` stream (docs/format.md §3.6)."""
    presence = [s for s in streams if s.name == PRESENCE]
    if "structure" not in item:
        if presence:
            raise BadRecord(f"{where}: stream 'presence' without field 'structure'")
        return None
    try:
        st = parse_structure(item["structure"], shape, axis, where)
    except ValueError as exc:
        raise BadRecord(str(exc)) from None
    expected = -(-st.n_units(shape, axis or 0) // 8)
    if not presence or presence[0].length != expected:
        raise BadRecord(f"{where}: field 'structure' needs a stream 'presence' of {expected} bytes")
    return st


def _parse_offsets(
    item: Mapping[str, Any], where: str, dtype: str, n: int, flag: bool
) -> tuple[int, ...] | None:
    """The optional `offsets` of an int8/uint8 record (docs/format.md §3.2)."""
    if "offsets" not in item:
        return None
    raw = item["offsets"]
    if not flag:
        raise BadRecord(f"{where}: field 'offsets', but required flag INT_OFFSETS is clear")
    if dtype not in INTEGER_DTYPES or not isinstance(raw, list) or len(raw) not in (1, n):
        raise BadRecord(
            f"{where}: field 'offsets' must be a list of 1 or {n} integers of an int8/uint8 record"
        )
    if any(type(o) is not int or not -255 <= o <= 255 for o in raw):
        raise BadRecord(f"{where}: field 'offsets' holds a value outside [-255, 255]")
    return tuple(raw)


RAW_CODEC = 0  # docs/format.md §4: codec `raw`, whose param `full_range` the header announces


def full_range(rec: TensorRecord) -> bool:
    """Whether a record's levels may be -2**(Q-1): a `raw` record with param `full_range`
    (docs/format.md §4.1), announced by required flag FULL_RANGE (§2.4)."""
    return rec.codec == RAW_CODEC and rec.params.get("full_range") is True


def _check_full_range(rec: TensorRecord, flag: bool) -> None:
    """A full-range record needs the header flag, and is an int8/uint8 record with offsets."""
    if not full_range(rec):
        return
    where = f"tensor {rec.name!r}"
    if not flag:
        raise BadRecord(f"{where}: raw param 'full_range', but required flag FULL_RANGE is clear")
    if rec.dtype not in INTEGER_DTYPES or rec.offsets is None:
        raise BadRecord(
            f"{where}: raw param 'full_range' is only for an int8/uint8 record with 'offsets'"
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
