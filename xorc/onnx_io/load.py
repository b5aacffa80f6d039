"""Reading a model file: the graph without its external data, and each tensor's bytes on demand
(relative paths inside the model's folder only, ranges checked at load time)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc import extdata
from xorc.errors import NotOnnx, ProtobufLimit
from xorc.onnx_io.graph import (
    QUANTIZED_OPS,
    _all_tensors,
    _graphs,
    _nodes,
)

PROTOBUF_LIMIT = 2**31 - 1  # bytes of one serialized protobuf message


@dataclass
class SourceModel:
    """A loaded model and facts about it.

    `proto` is the file's protobuf: a tensor with external data keeps its references (location,
    offset, length), checked at load time; `files` maps each location to its resolved path, and
    `tensor_array` reads one tensor's bytes on demand. `source_bytes` is the model file's size
    plus its external data files' (docs/format.md §3.1 `source_bytes`)."""

    proto: onnx.ModelProto
    sha256: str
    path: str
    files: dict[str, Path] = field(default_factory=dict)
    source_bytes: int = 0

    @property
    def quantized(self) -> bool:
        return any(n.op_type in QUANTIZED_OPS for n, _ in _nodes(self.proto.graph, "main"))

    @property
    def external(self) -> bool:
        """Whether some tensor's data lives in external files."""
        return bool(self.files)


def load_model(path: str | os.PathLike[str]) -> SourceModel:
    """Read an ONNX file; its external data is checked (relative paths inside the model's folder,
    ranges inside the files) and digested, but not read."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise NotOnnx(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        proto = onnx.load_model_from_string(raw)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise NotOnnx(f"{path}: not a valid ONNX model ({type(exc).__name__})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise NotOnnx(f"{path}: not a valid ONNX model (no graph)")
    _check_unique_initializers(proto, str(path))
    digest = hashlib.sha256(raw)
    files, size = _check_external_data(proto, p.parent, digest, str(path))
    return SourceModel(proto, digest.hexdigest(), str(path), files, len(raw) + size)


def _check_unique_initializers(proto: onnx.ModelProto, label: str) -> None:
    """Each graph's initializer names are distinct (ONNX requires it; a blob's records too)."""
    for graph, where in _graphs(proto.graph):
        names: set[str] = set()
        for init in graph.initializer:
            if init.name in names:
                raise NotOnnx(f"{label}: initializer {init.name!r} appears twice ({where} graph)")
            names.add(init.name)


def _check_external_data(
    proto: onnx.ModelProto, base: Path, digest: hashlib._Hash, label: str
) -> tuple[dict[str, Path], int]:
    """Every external reference resolved inside the model's folder and its range checked
    (xorc.extdata), nothing read but the digest: each file once, in first-reference order
    (the same digest as when the data was inlined). Returns the files and their total size."""
    seen: dict[str, Path] = {}
    size = 0
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = _entries(tensor)
        where = f"{label}: tensor {tensor.name!r}"
        location = info.get("location", "")
        if location not in seen:
            seen[location] = extdata.resolve(base, location, where)
            size += extdata.file_digest(seen[location], digest)
        start, count = extdata.check_range(
            seen[location], info.get("offset"), info.get("length"), where
        )
        _set_entries(tensor, location, start, count)
    return seen, size


def _entries(tensor: onnx.TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _set_entries(tensor: onnx.TensorProto, location: str, start: int, count: int) -> None:
    """The checked reference, with its offset and length spelled out."""
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(start)), ("length", str(count))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


@dataclass(frozen=True)
class ExternalTensor:
    """Where one tensor's bytes lie (a checked range of a resolved file) and what it looks like
    (the TensorProto without data, serialized): picklable, so a worker process reads it."""

    path: str
    offset: int
    length: int
    header: bytes

    def read(self) -> NDArray[np.generic]:
        """The values: one read straight into the array for plain numeric types."""
        tensor = onnx.TensorProto.FromString(self.header)
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
        n = int(np.prod(tensor.dims, dtype=np.int64))
        if dtype.kind in "fiu" and n * dtype.itemsize == self.length:
            array = np.empty(n, dtype.newbyteorder("<"))
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                got = f.readinto(memoryview(array).cast("B"))
            if got != self.length:
                raise NotOnnx(f"tensor {tensor.name!r}: external data file {self.path} shrank")
            return array.astype(dtype, copy=False).reshape(tuple(tensor.dims))
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            tensor.raw_data = f.read(self.length)
        if len(tensor.raw_data) != self.length:
            raise NotOnnx(f"tensor {tensor.name!r}: external data file {self.path} shrank")
        return numpy_helper.to_array(tensor)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in onnx.TensorProto.FromString(self.header).dims)


def external_tensor(model: SourceModel, tensor: onnx.TensorProto) -> ExternalTensor | None:
    """Where an external tensor's data lies; None for a tensor holding its data."""
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    info = _entries(tensor)
    header = onnx.TensorProto()
    header.CopyFrom(tensor)
    header.ClearField("external_data")
    header.data_location = onnx.TensorProto.DEFAULT
    path = model.files[info["location"]]
    return ExternalTensor(
        str(path), int(info["offset"]), int(info["length"]), header.SerializeToString()
    )


def tensor_array(model: SourceModel, tensor: onnx.TensorProto) -> NDArray[np.generic]:
    """A tensor's values, read from its external data file when it has one."""
    ext = external_tensor(model, tensor)
    return numpy_helper.to_array(tensor) if ext is None else ext.read()


def inline_into(model: SourceModel, proto: onnx.ModelProto) -> None:
    """Read every external tensor of `proto` (a copy of the model's) into it."""
    for tensor in _all_tensors(proto.graph):
        ext = external_tensor(model, tensor)
        if ext is not None:
            _inline(tensor, ext)


def _inline(tensor: onnx.TensorProto, ext: ExternalTensor) -> None:
    with open(ext.path, "rb") as f:
        f.seek(ext.offset)
        tensor.raw_data = f.read(ext.length)
    tensor.ClearField("external_data")
    tensor.data_location = onnx.TensorProto.DEFAULT


def initializer(model: SourceModel, name: str) -> NDArray[np.generic]:
    """The values of a main-graph initializer."""
    for init in model.proto.graph.initializer:
        if init.name == name:
            return tensor_array(model, init)
    raise KeyError(name)


def to_bytes(proto: onnx.ModelProto, label: str) -> bytes:
    """A model serialized, or ProtobufLimit when it is over protobuf's 2 GB."""
    if proto.ByteSize() > PROTOBUF_LIMIT:
        raise ProtobufLimit(
            f"{label}: over protobuf's 2 GB limit as one message; this step needs the whole "
            "model in memory (compress without --calib / --max-drop streams it)"
        )
    return proto.SerializeToString(deterministic=True)


def serialize(model: SourceModel) -> bytes:
    """The source model as bytes, external data inlined (a copy: the whole model in memory)."""
    if not model.external:
        return to_bytes(model.proto, model.path)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    inline_into(model, proto)
    return to_bytes(proto, model.path)
