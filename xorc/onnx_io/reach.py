"""Layers for calibration statistics beyond initializers read directly (`layers(reach=True)`).

`onnx_io.layers` gives a layer (the node that multiplies the weight with data, and that data)
to a main-graph initializer read by exactly one Conv/ConvTranspose/Gemm/MatMul. Two more kinds
of weight get one here, so that `--calib` gives them statistics and GPTQ (docs/weights.md §5):

* a main-graph `Constant` node's value read the same way (paddle2onnx exports keep every weight
  in `Constant` nodes);
* a Gemm/MatMul weight (input B) that reaches its node through a chain of shape operators
  (Identity, Cast, Transpose, Reshape, Flatten, Squeeze, Unsqueeze), each value of the chain
  read only by the next, when the stored tensor is a matrix and the node sees it as a matrix
  [K, N] ([N, K] with transB) whose two axes are the stored ones (the axis mapping of
  `xorc.weight_shapes`: a Transpose, or a Reshape that keeps both axes). Each row of the
  stored tensor along its output axis (`xorc.weight_rules`) then reads the node's K input
  features in order, so the H of the node's data input is the H of the stored rows
  (`xorc.hessian.matrix_form`); `trans_b` says whether the stored matrix is [out, in].

Anything else (a Reshape that merges axes, a weight read twice, a weight as MatMul's first
operand behind a shape operator) gets no layer: it is rounded to nearest, and the record's
`stats.reconstruction.reason` says "no calibration statistics".
"""

from __future__ import annotations

import onnx

from xorc import weight_rules
from xorc.onnx_io.analysis import WEIGHT_INPUTS, Layer, make_layer
from xorc.onnx_io.graph import _constant_value
from xorc.onnx_io.load import SourceModel

CHAIN_OPS = ("Identity", "Cast", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


def reached_layers(model: SourceModel, readers: dict[str, int]) -> dict[str, Layer]:
    """Layers of main-graph Constant weights and of Gemm/MatMul weights behind shape
    operators (module docstring); `readers`: how many main-graph node inputs read each name."""
    from xorc.onnx_io.weights import rule_graph

    graph = model.proto.graph
    users: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            users[name] = (node, i)
    consts = {i.name: tuple(i.dims) for i in graph.initializer}
    is_constant = set()
    for node in graph.node:
        value = _constant_value(node)
        if value is not None and node.output:
            consts[node.output[0]] = tuple(value.dims)
            is_constant.add(node.output[0])
    view: weight_rules.Graph | None = None
    out: dict[str, Layer] = {}
    for name, shape in consts.items():
        cur, chain = name, 0
        while readers.get(cur) == 1 and cur in users and _passes(*users[cur]):
            cur, chain = users[cur][0].output[0], chain + 1
        if readers.get(cur) != 1 or cur not in users:
            continue
        node, i = users[cur]
        if node.op_type not in WEIGHT_INPUTS or i not in WEIGHT_INPUTS[node.op_type]:
            continue
        if chain == 0 and name in is_constant:
            out[name] = make_layer(node, i, name, None)
        elif chain and i == 1 and node.op_type in ("Gemm", "MatMul"):
            view = view or rule_graph(model)
            stored_out_in = _orientation(view, name, shape, node)
            if stored_out_in is not None:
                out[name] = make_layer(node, i, name, None, stored_out_in)
    return out


def _passes(node: onnx.NodeProto, index: int) -> bool:
    return node.op_type in CHAIN_OPS and node.domain in ("", "ai.onnx") and index == 0


def _orientation(
    view: weight_rules.Graph, name: str, shape: tuple[int, ...], node: onnx.NodeProto
) -> bool | None:
    """Whether the stored matrix is [out, in] as the node's B (True), [in, out] (False), or
    None when the node's rows and columns are not its two axes."""
    uses = view.uses(name, shape, "float32")
    if len(uses) != 1 or uses[0].origin is None or len(uses[0].origin) != 2:
        return None
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    o_in, o_out = uses[0].origin[::-1] if trans_b else uses[0].origin
    if o_in is None or o_out is None or len(shape) != 2:
        return None
    return o_out < o_in
