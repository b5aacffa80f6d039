"""Walking an ONNX graph: every node, subgraph and data-holding tensor, and the type tables."""

from __future__ import annotations

from collections.abc import Iterator

import onnx

XORC_LOCATION = "xorc:tensor/"


FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.DOUBLE: "float64",
}


INT_TYPES = {onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8"}


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
