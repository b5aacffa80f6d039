"""Reading a model file: the protobuf with its external data inlined (relative paths inside
the model's folder only)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc.errors import ExternalDataError, NotOnnx
from xorc.onnx_io.graph import (
    QUANTIZED_OPS,
    _all_tensors,
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
    digest = hashlib.sha256(raw)
    _inline_external_data(proto, p.parent, digest, str(path))
    return SourceModel(proto, digest.hexdigest(), str(path))


def _inline_external_data(
    proto: onnx.ModelProto, base: Path, digest: hashlib._Hash, label: str
) -> None:
    files: dict[str, bytes] = {}
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        rel = PurePosixPath(location.replace("\\", "/"))
        if not location or rel.is_absolute() or ".." in rel.parts or ":" in location:
            raise ExternalDataError(
                f"{label}: tensor {tensor.name!r} has an unsafe external data path {location!r}"
            )
        if location not in files:
            target = base / rel
            if target.is_symlink() or not target.is_file():
                raise ExternalDataError(
                    f"{label}: tensor {tensor.name!r}: external data file {location!r} not found"
                )
            files[location] = target.read_bytes()
            digest.update(files[location])
        blob = files[location]
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", len(blob) - offset))
        except ValueError:
            raise ExternalDataError(
                f"{label}: tensor {tensor.name!r}: bad external data offset/length"
            ) from None
        if offset < 0 or length < 0 or offset + length > len(blob):
            raise ExternalDataError(
                f"{label}: tensor {tensor.name!r}: external data range {offset}+{length} "
                f"outside {location!r} ({len(blob)} bytes)"
            )
        tensor.raw_data = blob[offset : offset + length]
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
