"""Reading a model file: the protobuf with its external data inlined (relative paths inside
the model's folder only)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc import extdata
from xorc.errors import NotOnnx
from xorc.onnx_io.graph import (
    QUANTIZED_OPS,
    _all_tensors,
    _graphs,
    _nodes,
)


@dataclass
class SourceModel:
    """A loaded model: the protobuf with external data inlined, and facts about it."""

    proto: onnx.ModelProto
    sha256: str
    path: str

    @property
    def quantized(self) -> bool:
        return any(n.op_type in QUANTIZED_OPS for n, _ in _nodes(self.proto.graph, "main"))


def load_model(path: str | os.PathLike[str]) -> SourceModel:
    """Read an ONNX file and its external data (relative paths inside the model's folder only)."""
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
    _inline_external_data(proto, p.parent, digest, str(path))
    return SourceModel(proto, digest.hexdigest(), str(path))


def _check_unique_initializers(proto: onnx.ModelProto, label: str) -> None:
    """Each graph's initializer names are distinct (ONNX requires it; a blob's records too)."""
    for graph, where in _graphs(proto.graph):
        names: set[str] = set()
        for init in graph.initializer:
            if init.name in names:
                raise NotOnnx(f"{label}: initializer {init.name!r} appears twice ({where} graph)")
            names.add(init.name)


def _inline_external_data(
    proto: onnx.ModelProto, base: Path, digest: hashlib._Hash, label: str
) -> None:
    """External data read into the tensors: paths resolved inside the model's folder and ranges
    checked before reading (xorc.extdata); the digest takes each file once, in first-reference
    order."""
    seen: dict[str, Path] = {}
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        where = f"{label}: tensor {tensor.name!r}"
        location = info.get("location", "")
        if location not in seen:
            seen[location] = extdata.resolve(base, location, where)
            extdata.file_digest(seen[location], digest)
        data = extdata.read_range(seen[location], info.get("offset"), info.get("length"), where)
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def initializer(model: SourceModel, name: str) -> NDArray[np.generic]:
    """The values of a main-graph initializer."""
    for init in model.proto.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def serialize(model: SourceModel) -> bytes:
    """The (external-data-inlined) source model as bytes."""
    return model.proto.SerializeToString(deterministic=True)
