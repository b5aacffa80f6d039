"""Facts about a graph for calibration, feature maps and the simulator: layers, MACs,
activations."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc.onnx_io.graph import (
    WEIGHT_INPUTS,
    _located_tensors,
    _nodes,
    _subgraphs,
)
from xorc.onnx_io.load import SourceModel
from xorc.onnx_io.store import (
    _parse_graph,
    _set_data,
)


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
        view_axis: a Gemm/MatMul weight behind shape operators (xorc/onnx_io/reach.py): the
            stored axis whose slices are the node's output channels, each reading the node's
            input features in the C order of the other stored axes; None for other layers.
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
    view_axis: int | None = None


def layers(model: SourceModel, reach: bool = False) -> dict[str, Layer]:
    """The layer of each weight read by exactly one main-graph Conv/ConvTranspose/Gemm/MatMul.
    With `reach` (calibration statistics, xorc/calibrate.py), also the weights that
    `xorc.onnx_io.reach` finds: `Constant` nodes' values, and Gemm/MatMul weights behind
    shape operators."""
    readers: dict[str, int] = {}
    for node, _ in _nodes(model.proto.graph, "main"):
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    inits = {i.name for i in model.proto.graph.initializer}
    out: dict[str, Layer] = {}
    for node in model.proto.graph.node:
        if node.op_type not in WEIGHT_INPUTS:
            continue
        for i in WEIGHT_INPUTS[node.op_type]:
            if i >= len(node.input) or node.input[i] not in inits or readers[node.input[i]] != 1:
                continue
            bias = (
                node.input[2] if len(node.input) > 2 and node.op_type in ("Conv", "Gemm") else None
            )
            if bias is not None and (bias not in inits or readers.get(bias) != 1):
                bias = None
            out[node.input[i]] = make_layer(node, i, node.input[i], bias if i == 1 else None)
    if reach:
        from xorc.onnx_io.reach import reached_layers

        out.update({k: v for k, v in reached_layers(model, readers).items() if k not in out})
    return out


def make_layer(
    node: onnx.NodeProto,
    i: int,
    weight: str,
    bias: str | None,
    trans_b: bool | None = None,
    view_axis: int | None = None,
) -> Layer:
    """The Layer of input `i` of `node`, read as the weight `weight` (`trans_b`: the stored
    weight is [out, in]; None: from the node's transB; `view_axis`: Layer.view_axis)."""
    attrs = {a.name: a.i for a in node.attribute}
    return Layer(
        weight=weight,
        data=node.input[1 - i],
        op_type=node.op_type,
        group=attrs.get("group", 1),
        weight_index=i,
        trans_b=(bool(attrs.get("transB", 0)) and i == 1) if trans_b is None else trans_b,
        bias=bias,
        trans_data=bool(attrs.get("transA" if i == 1 else "transB", 0)),
        conv=_conv_attributes(node),
        view_axis=view_axis,
    )


def stored_layers(graph_bytes: bytes) -> dict[str, Layer]:
    """`layers` of a container's stored graph (docs/format.md §3.3; its weights are references)."""
    return layers(SourceModel(_parse_graph(graph_bytes), "", ""))


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


def prefix(model: SourceModel, output: str, arrays: dict[str, NDArray[np.generic]]) -> bytes:
    """The main-graph nodes that `output` depends on, with it as the only graph output, and the
    named initializers' data replaced by `arrays` (sequential reconstruction: a layer's input
    from the layers already compressed). A graph with subgraphs is kept whole (a subgraph may
    read outer names its node does not list)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    if not any(next(_subgraphs(node), None) for node in graph.node):
        needed, keep = {output}, []
        for node in reversed(graph.node):
            if any(o in needed for o in node.output):
                keep.append(node)
                needed.update(i for i in node.input if i)
        nodes = list(reversed(keep))
        del graph.node[:]
        graph.node.extend(nodes)
        listed = {i.name for i in graph.input}
        kept = [t for t in graph.initializer if t.name in needed or t.name in listed]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    del graph.output[:]
    graph.output.append(onnx.ValueInfoProto(name=output))
    for tensor in graph.initializer:
        if tensor.name in arrays:
            _set_data(tensor, arrays[tensor.name])
    return proto.SerializeToString(deterministic=True)


def suffix_model(model: SourceModel, names: list[str]) -> tuple[bytes, list[str], list[str]]:
    """The main graph from the first node that reads one of `names` (main-graph initializers)
    on, as a model of its own: those initializers become graph inputs (data left out), and so
    does every tensor the rest of the graph reads from before that node. One onnxruntime
    session of it runs a layer with any weights, without re-running the layers before it (the
    sensitivity analysis' trials). Returns the bytes, the names of its inputs other than
    `names` (graph inputs and intermediate tensors of the full model), and the full model's
    outputs it computes (the others do not depend on `names`)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph, wanted = proto.graph, set(names)
    nodes = list(graph.node)
    first = next((i for i, n in enumerate(nodes) if wanted & set(n.input)), 0)
    nested = any(list(_subgraphs(n)) for n in nodes[first:])
    suffix = nodes if nested else nodes[first:]  # subgraphs read outer values: keep it whole
    made = {o for n in suffix for o in n.output}
    inits = {t.name: t for t in graph.initializer}
    read = {i for n in suffix for i in n.input if i}
    if nested:
        read |= set(inits)
        cut = [i.name for i in graph.input if i.name not in inits]
    else:
        cut = sorted(read - made - set(inits))
    types = _value_types(proto)
    del graph.node[:]
    graph.node.extend(suffix)
    del graph.input[:]
    graph.input.extend(
        onnx.ValueInfoProto(name=c, type=types[c]) if c in types else _float_input(c) for c in cut
    )
    for name in names:
        t = inits[name]
        graph.input.append(onnx.helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
    kept = [t for name, t in inits.items() if name in read and name not in wanted]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    outputs = [o for o in graph.output if o.name in made]
    del graph.output[:]
    graph.output.extend(outputs)
    return proto.SerializeToString(deterministic=True), cut, [o.name for o in outputs]


def _value_types(proto: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """The type of every main-graph value onnx's shape inference knows (shapes dropped)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # shape inference is best effort: unknown types are taken as float
        inferred = proto.graph
    out: dict[str, onnx.TypeProto] = {}
    for v in [*inferred.input, *inferred.value_info, *inferred.output]:
        if v.type.HasField("tensor_type"):
            t = onnx.TypeProto()
            t.tensor_type.elem_type = v.type.tensor_type.elem_type
            out[v.name] = t
    return out


def _float_input(name: str) -> onnx.ValueInfoProto:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
