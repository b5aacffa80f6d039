"""Everything that touches ONNX protobufs: the only module that imports `onnx`.

It turns a model file into plain numpy weights plus small metadata (`WeightInfo`), takes the
encoded weights out of the graph for the container (docs/format.md §3.3), puts decoded weights
back, and adds intermediate outputs for calibration and feature-map analysis.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc import extdata
from xorc.errors import BadRecord, NotOnnx, UnsupportedModel

XORC_LOCATION = "xorc:tensor/"
FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.DOUBLE: "float64",
}
# op type -> the input positions that hold a weight
WEIGHT_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (0, 1), "MatMul": (0, 1)}
QUANTIZED_WEIGHT_INPUTS = {
    "DequantizeLinear": (0,),
    "QLinearConv": (3,),
    "QLinearMatMul": (3,),
    "ConvInteger": (1,),
    "MatMulInteger": (1,),
}
QUANTIZED_OPS = {*QUANTIZED_WEIGHT_INPUTS, "QuantizeLinear", "QGemm"}
ACTIVATION_OPS = ("Relu", "Clip")


@dataclass(frozen=True)
class Consumer:
    """A node input that reads a tensor."""

    op_type: str
    node_name: str
    input_index: int


@dataclass
class WeightInfo:
    """A constant tensor of the model, as the pipeline sees it.

    Attributes:
        name: tensor name (for a Constant node: its output name).
        array: the values (float, or int8 for an already quantized weight).
        dtype: the ONNX element type name to rebuild (docs/format.md §3.2 `dtype`).
        consumers: every node input that reads it.
        kind: "initializer" or "constant".
        graph: "main" or the path of the subgraph that holds it.
        axis: the output-channel axis for per-channel scales, None when none fits.
    """

    name: str
    array: NDArray[np.generic]
    dtype: str
    consumers: list[Consumer] = field(default_factory=list)
    kind: str = "initializer"
    graph: str = "main"
    axis: int | None = None

    @property
    def compressible(self) -> bool:
        """A weight input of Conv, ConvTranspose, Gemm or MatMul (float), or of a quantized op."""
        table = QUANTIZED_WEIGHT_INPUTS if self.dtype == "int8" else WEIGHT_INPUTS
        return (
            self.array.ndim >= 1
            and self.array.size > 0
            and any(c.input_index in table.get(c.op_type, ()) for c in self.consumers)
        )

    @property
    def node_names(self) -> list[str]:
        return [c.node_name for c in self.consumers]

    def channel_axis(self, gemm_trans: dict[str, tuple[int, int]]) -> int | None:
        """The output-channel axis of the weight, or None when no per-channel axis fits."""
        axes = {_output_axis(c, self.array.ndim, gemm_trans) for c in self.consumers}
        axes.discard(None)
        return axes.pop() if len(axes) == 1 else None


def _output_axis(c: Consumer, ndim: int, gemm_trans: dict[str, tuple[int, int]]) -> int | None:
    if ndim < 2:
        return None
    if c.op_type in ("Conv", "ConvInteger", "QLinearConv"):
        return 0
    if c.op_type == "ConvTranspose":
        return 1
    if c.op_type == "Gemm":
        trans_a, trans_b = gemm_trans.get(c.node_name, (0, 0))
        if c.input_index == 1:
            return 0 if trans_b else 1
        return 1 if trans_a else 0
    if c.op_type in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        return ndim - 1 if c.input_index in (1, 3) else ndim - 2
    return None


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


def _subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for i, g in enumerate(attr.graphs):
                yield f"{attr.name}[{i}]", g


def _nodes(graph: onnx.GraphProto, path: str) -> Iterator[tuple[onnx.NodeProto, str]]:
    """Every node of a graph and of its subgraphs, with the path of the graph that holds it."""
    for node in graph.node:
        yield node, path
        for attr_name, sub in _subgraphs(node):
            yield from _nodes(sub, f"{path}/{node.name or node.op_type}.{attr_name}")


def _graphs(graph: onnx.GraphProto, path: str = "main") -> Iterator[tuple[onnx.GraphProto, str]]:
    yield graph, path
    for node in graph.node:
        for attr_name, sub in _subgraphs(node):
            yield from _graphs(sub, f"{path}/{node.name or node.op_type}.{attr_name}")


def _constant_value(node: onnx.NodeProto) -> onnx.TensorProto | None:
    if node.op_type != "Constant":
        return None
    return next((a.t for a in node.attribute if a.name == "value"), None)


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto holding data: initializers and Constant values, subgraphs included."""
    for g, _ in _graphs(graph):
        yield from g.initializer
        for node in g.node:
            value = _constant_value(node)
            if value is not None:
                yield value


def _located_tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.TensorProto, str, str]]:
    """(name, tensor, kind, graph path) for every data-holding tensor."""
    for g, path in _graphs(graph):
        for init in g.initializer:
            yield init.name, init, "initializer", path
        for node in g.node:
            value = _constant_value(node)
            if value is not None and node.output:
                yield node.output[0], value, "constant", path


def find_weights(model: SourceModel) -> list[WeightInfo]:
    """Every float or int8 constant tensor with its consumers, in graph order."""
    consumers: dict[str, list[Consumer]] = {}
    gemm_trans: dict[str, tuple[int, int]] = {}
    for node, _ in _nodes(model.proto.graph, "main"):
        for i, name in enumerate(node.input):
            if name:
                consumers.setdefault(name, []).append(Consumer(node.op_type, node.name, i))
        if node.op_type == "Gemm":
            attrs = {a.name: a.i for a in node.attribute}
            gemm_trans[node.name] = (attrs.get("transA", 0), attrs.get("transB", 0))
    weights = []
    for name, tensor, kind, path in _located_tensors(model.proto.graph):
        if tensor.data_type in FLOAT_TYPES:
            dtype = FLOAT_TYPES[tensor.data_type]
        elif tensor.data_type == onnx.TensorProto.INT8:
            dtype = "int8"
        else:
            continue
        if any(d < 0 for d in tensor.dims):
            raise NotOnnx(
                f"{model.path}: tensor {name!r} has a negative dimension {list(tensor.dims)}"
            )
        try:
            array = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise NotOnnx(f"{model.path}: tensor {name!r} cannot be read ({exc})") from None
        info = WeightInfo(name, array, dtype, consumers.get(name, []), kind, path)
        info.axis = info.channel_axis(gemm_trans)
        if info.compressible and dtype != "int8" and not np.isfinite(array).all():
            raise UnsupportedModel(
                f"{model.path}: weight {name!r} holds {int((~np.isfinite(array)).sum())} NaN or "
                "infinite values; xorc quantizes finite weights only"
            )
        weights.append(info)
    return weights


def zero_point_is_zero(model: SourceModel, weight: str) -> bool:
    """Whether every DequantizeLinear/QLinear op reading `weight` has a zero (or no) zero point."""
    consts = {name: t for name, t, _, _ in _located_tensors(model.proto.graph)}
    for node, _ in _nodes(model.proto.graph, "main"):
        if weight not in node.input:
            continue
        i = list(node.input).index(weight)
        zp_index = {"DequantizeLinear": 2, "QLinearConv": 5, "QLinearMatMul": 5}.get(node.op_type)
        if node.op_type in ("ConvInteger", "MatMulInteger"):
            zp_index = 3
        if zp_index is None or i not in QUANTIZED_WEIGHT_INPUTS.get(node.op_type, ()):
            continue
        if len(node.input) > zp_index and node.input[zp_index]:
            zp = consts.get(node.input[zp_index])
            if zp is None or numpy_helper.to_array(zp).any():
                return False
    return True


def strip_weights(
    model: SourceModel,
    index_of: dict[str, int],
    replace: dict[str, NDArray[np.generic]] | None = None,
) -> bytes:
    """A copy of the model, serialized, with the data of the tensors in `index_of` replaced by
    `xorc:tensor/<i>` references and the data of those in `replace` by new values (same name,
    dtype and shape; corrected biases). The source model is not changed."""
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
    missing = set(index_of) - seen
    if missing:
        raise UnsupportedModel(f"{model.path}: tensor {sorted(missing)[0]!r} not found in graph")
    return proto.SerializeToString(deterministic=True)


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
    return proto.SerializeToString(deterministic=True)


def layer_macs(graph_bytes: bytes) -> dict[str, int]:
    """Multiply-accumulates per weight tensor at batch 1, by shape inference on a stored graph.

    Conv: output elements × (C_in / groups × kernel size); Gemm and MatMul: output elements ×
    the reduced dimension. Symbolic dimensions count as 1. Weights whose layer's output shape
    cannot be inferred are left out.
    """
    proto = _parse_graph(graph_bytes)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # inference is best effort: MACs are then unknown
        return {}
    shapes = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
    dims = {name: list(t.dims) for name, t, _, _ in _located_tensors(proto.graph)}
    out: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type not in WEIGHT_INPUTS or not node.output or node.output[0] not in shapes:
            continue
        out_elems = int(np.prod(shapes[node.output[0]], dtype=np.int64))
        for i in WEIGHT_INPUTS[node.op_type]:
            w = dims.get(node.input[i]) if i < len(node.input) else None
            if not w or len(w) < 2:
                continue
            if node.op_type in ("Conv", "ConvTranspose"):
                reduced = int(np.prod(w[1:], dtype=np.int64))
            elif node.op_type == "Gemm":
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                reduced = w[1] if (i == 1 and trans_b) or (i == 0) else w[0]
            else:
                reduced = w[-2] if i == 1 else w[-1]
            out[node.input[i]] = out_elems * int(reduced)
    return out


def dtype_of(name: str) -> np.dtype:
    """The numpy dtype of a record's `dtype` name."""
    code = {v: k for k, v in FLOAT_TYPES.items()}.get(name, onnx.TensorProto.INT8)
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code))


def with_outputs(model_bytes: bytes, names: list[str]) -> bytes:
    """The model with extra graph outputs (intermediate tensors of the main graph)."""
    proto = onnx.load_model_from_string(model_bytes)
    present = {o.name for o in proto.graph.output}
    for name in names:
        if name not in present:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            present.add(name)
    return proto.SerializeToString(deterministic=True)


def activation_outputs(model_bytes: bytes) -> list[str]:
    """Outputs of ReLU, and of Clip with a zero lower bound (ReLU6 and friends), main graph."""
    proto = onnx.load_model_from_string(model_bytes)
    consts = {name: t for name, t, _, _ in _located_tensors(proto.graph)}
    return [
        node.output[0]
        for node in proto.graph.node
        if node.op_type == "Relu" or (node.op_type == "Clip" and _clip_min_is_zero(node, consts))
    ]


def _clip_min_is_zero(node: onnx.NodeProto, consts: dict[str, onnx.TensorProto]) -> bool:
    attr_min = next((a.f for a in node.attribute if a.name == "min"), None)
    if attr_min is not None:
        return attr_min == 0.0
    if len(node.input) > 1 and node.input[1] in consts:
        return float(numpy_helper.to_array(consts[node.input[1]]).reshape(-1)[0]) == 0.0
    return False


@dataclass(frozen=True)
class Layer:
    """The main-graph node that multiplies a weight with data.

    Attributes:
        weight: the weight tensor's name.
        data: the name of the data input it multiplies.
        op_type: Conv, ConvTranspose, Gemm or MatMul.
        group: Conv groups (1 otherwise).
        weight_index: which node input the weight is.
        trans_b: Gemm's transB when the weight is input B (the weight is then [out, in]).
        bias: the bias initializer's name when the node adds one (Conv, Gemm input 2) and
            nothing else reads it; else None.
        trans_data: Gemm only: the data operand is transposed (transA when the weight is B,
            transB when the weight is A).
        conv: Conv/ConvTranspose attributes (strides, dilations, pads, auto_pad, kernel_shape),
            as the node states them (absent ones absent).
    """

    weight: str
    data: str
    op_type: str
    group: int
    weight_index: int
    trans_b: bool
    bias: str | None
    trans_data: bool = False
    conv: dict[str, tuple[int, ...] | str] = field(default_factory=dict, hash=False)


def layers(model: SourceModel) -> dict[str, Layer]:
    """The layer of each weight read by exactly one main-graph Conv/ConvTranspose/Gemm/MatMul."""
    readers: dict[str, int] = {}
    for node, _ in _nodes(model.proto.graph, "main"):
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    inits = {i.name for i in model.proto.graph.initializer}
    out: dict[str, Layer] = {}
    for node in model.proto.graph.node:
        if node.op_type not in WEIGHT_INPUTS:
            continue
        attrs = {a.name: a.i for a in node.attribute}
        for i in WEIGHT_INPUTS[node.op_type]:
            if i >= len(node.input) or node.input[i] not in inits or readers[node.input[i]] != 1:
                continue
            bias = (
                node.input[2] if len(node.input) > 2 and node.op_type in ("Conv", "Gemm") else None
            )
            if bias is not None and (bias not in inits or readers.get(bias) != 1):
                bias = None
            out[node.input[i]] = Layer(
                weight=node.input[i],
                data=node.input[1 - i],
                op_type=node.op_type,
                group=attrs.get("group", 1),
                weight_index=i,
                trans_b=bool(attrs.get("transB", 0)) and i == 1,
                bias=bias if i == 1 else None,
                trans_data=bool(attrs.get("transA" if i == 1 else "transB", 0)),
                conv=_conv_attributes(node),
            )
    return out


def _conv_attributes(node: onnx.NodeProto) -> dict[str, tuple[int, ...] | str]:
    """The geometry attributes of a Conv or ConvTranspose node ({} for other ops)."""
    if node.op_type not in ("Conv", "ConvTranspose"):
        return {}
    out: dict[str, tuple[int, ...] | str] = {}
    for a in node.attribute:
        if a.name in ("strides", "dilations", "pads", "kernel_shape"):
            out[a.name] = tuple(int(v) for v in a.ints)
        elif a.name == "auto_pad":
            out[a.name] = a.s.decode()
    return out


def initializer(model: SourceModel, name: str) -> NDArray[np.generic]:
    """The values of a main-graph initializer."""
    for init in model.proto.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def serialize(model: SourceModel) -> bytes:
    """The (external-data-inlined) source model as bytes."""
    return model.proto.SerializeToString(deterministic=True)
