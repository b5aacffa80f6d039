"""The stored graph: weights taken out as `xorc:tensor/<i>` references (docs/format.md §3.3),
put back, or replaced."""

from __future__ import annotations

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc.errors import BadRecord, UnsupportedModel
from xorc.onnx_io.graph import (
    FLOAT_TYPES,
    INT_TYPES,
    XORC_LOCATION,
    _all_tensors,
    _located_tensors,
)
from xorc.onnx_io.load import SourceModel, _inline, external_tensor, to_bytes


def strip_weights(
    model: SourceModel,
    index_of: dict[str, int],
    replace: dict[str, NDArray[np.generic]] | None = None,
) -> bytes:
    """A copy of the model, serialized, with the data of the tensors in `index_of` replaced by
    `xorc:tensor/<i>` references and the data of those in `replace` by new values (same name,
    dtype and shape; corrected biases); the other tensors with external data are read into it.
    The source model is not changed."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    replace = replace or {}
    seen = set()
    for name, tensor, _, _ in _located_tensors(proto.graph):
        if name in index_of:
            _to_reference(tensor, index_of[name])
            seen.add(name)
        elif name in replace:
            _set_data(tensor, replace[name])
        elif (ext := external_tensor(model, tensor)) is not None:
            _inline(tensor, ext)
    missing = set(index_of) - seen
    if missing:
        raise UnsupportedModel(f"{model.path}: tensor {sorted(missing)[0]!r} not found in graph")
    return to_bytes(proto, f"{model.path}: the stored graph (the tensors left uncompressed)")


def _set_data(tensor: onnx.TensorProto, array: NDArray[np.generic]) -> None:
    """Replace a tensor's data in place, keeping its name and element type."""
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    tensor.CopyFrom(numpy_helper.from_array(array.astype(dtype), tensor.name))


def _to_reference(tensor: onnx.TensorProto, index: int) -> None:
    for field_name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        tensor.ClearField(field_name)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", f"{XORC_LOCATION}{index}"


def referenced_indices(graph_bytes: bytes) -> list[int]:
    """The record indices a stored graph refers to, in graph order."""
    proto = _parse_graph(graph_bytes)
    return [_reference_index(t) for t in _all_tensors(proto.graph) if _reference_index(t) >= 0]


def _reference_index(tensor: onnx.TensorProto) -> int:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return -1
    loc = next((e.value for e in tensor.external_data if e.key == "location"), "")
    if not isinstance(loc, str) or not loc.startswith(XORC_LOCATION):  # bytes: invalid UTF-8
        return -1
    digits = loc[len(XORC_LOCATION) :]
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 9):
        return -1
    return int(digits)


def _parse_graph(graph_bytes: bytes) -> onnx.ModelProto:
    try:
        return onnx.load_model_from_string(graph_bytes)
    except Exception as exc:
        raise BadRecord(f"section GRAPH: not a valid ONNX model ({type(exc).__name__})") from None


def rebuild(graph_bytes: bytes, arrays: dict[int, NDArray[np.generic]]) -> bytes:
    """Fill the `xorc:tensor/<i>` references of a stored graph with arrays; returns the model."""
    proto = _parse_graph(graph_bytes)
    for tensor in _all_tensors(proto.graph):
        index = _reference_index(tensor)
        if index < 0:
            continue
        if index not in arrays:
            raise BadRecord(f"section GRAPH: reference to tensor #{index}, which has no record")
        filled = numpy_helper.from_array(arrays[index])  # a damaged name may not be UTF-8
        if filled.data_type != tensor.data_type or list(filled.dims) != list(tensor.dims):
            raise BadRecord(
                f"section GRAPH: tensor {tensor.name!r} type or shape differs from its record"
            )
        tensor.ClearField("external_data")
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensor.raw_data = filled.raw_data
    return proto.SerializeToString(deterministic=True)


def substitute(model: SourceModel, arrays: dict[str, NDArray[np.generic]]) -> bytes:
    """The model, serialized, with the named tensors' data replaced (any graph, same dtype)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    for name, tensor, _, _ in _located_tensors(proto.graph):
        if name in arrays:
            _set_data(tensor, arrays[name])
        elif (ext := external_tensor(model, tensor)) is not None:
            _inline(tensor, ext)
    return to_bytes(proto, model.path)


def dtype_of(name: str) -> np.dtype:
    """The numpy dtype of a record's `dtype` name."""
    code = {v: k for k, v in {**FLOAT_TYPES, **INT_TYPES}.items()}[name]
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code))
