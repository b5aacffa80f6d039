"""Layers for calibration statistics beyond initializers read directly (`layers(reach=True)`).

`onnx_io.layers` gives a layer (the node that multiplies the weight with data, and that data)
to a main-graph initializer read by exactly one Conv/ConvTranspose/Gemm/MatMul. Two more kinds
of weight get one here, so that `--calib` gives them statistics and GPTQ (docs/weights.md §5):

* a main-graph `Constant` node's value read the same way (paddle2onnx exports keep every weight
  in `Constant` nodes);
* a Gemm/MatMul weight (either operand) that reaches its node through a chain of shape
  operators (Identity, Cast, Transpose, Reshape, Flatten, Squeeze, Unsqueeze), each value of
  the chain read only by the next, when the node sees it as a matrix whose output channels
  are the slices of one stored axis, each slice read in C order as the node's input features:
  a transposed matrix, a [heads, d, N] table reshaped to [heads·d, N], a [C_out, C_in, 1, 1]
  kernel reshaped to [C_out, C_in] for a Gemm. This is checked exactly, by pushing the stored
  tensor's element indices through the chain (`_view_axis`; tensors of at most
  MAX_VIEW_ELEMENTS elements). The H of the node's data input is then the H of the stored
  rows (`xorc.hessian.matrix_form` along that axis, `Layer.view_axis`); for a stored matrix,
  `trans_b` says whether it is [out, in].

Anything else (a Reshape that mixes output channels with input features, a weight read twice,
a batched MatMul weight) gets no layer: it is rounded to nearest, and the record's
`stats.reconstruction.reason` says "no calibration statistics".
"""

from __future__ import annotations

from math import prod

import numpy as np
import onnx

from xorc import weight_rules
from xorc.onnx_io.analysis import WEIGHT_INPUTS, Layer, make_layer
from xorc.onnx_io.graph import _constant_value
from xorc.onnx_io.load import SourceModel
from xorc.weight_shapes import through

CHAIN_OPS = ("Identity", "Cast", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
MAX_VIEW_ELEMENTS = 1 << 24
"""`_view_axis` pushes an int32 index per element through the chain (64 MiB at most)."""


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
        cur, chain = name, []
        while readers.get(cur) == 1 and cur in users and _passes(*users[cur]):
            chain.append(users[cur][0])
            cur = chain[-1].output[0]
        if readers.get(cur) != 1 or cur not in users:
            continue
        node, i = users[cur]
        if node.op_type not in WEIGHT_INPUTS or i not in WEIGHT_INPUTS[node.op_type]:
            continue
        if not chain and name in is_constant:
            out[name] = make_layer(node, i, name, None)
        elif chain and node.op_type in ("Gemm", "MatMul"):
            view = view or rule_graph(model)
            axis = _view_axis(view, chain, shape, node, i)
            if axis is not None:
                out[name] = make_layer(node, i, name, None, axis == 0, axis)
    return out


def _passes(node: onnx.NodeProto, index: int) -> bool:
    return node.op_type in CHAIN_OPS and node.domain in ("", "ai.onnx") and index == 0


def _view_axis(
    view: weight_rules.Graph,
    chain: list[onnx.NodeProto],
    shape: tuple[int, ...],
    node: onnx.NodeProto,
    i: int,
) -> int | None:
    """The stored axis whose slices are `node`'s output channels (rows) when the node sees the
    tensor, after `chain`, as a matrix whose rows read its input features in the C order of
    the other stored axes (module docstring); None when no axis does."""
    from xorc.onnx_io.weights import plain_node

    size = prod(shape)
    if not shape or size > MAX_VIEW_ELEMENTS:
        return None
    stored = np.arange(size, dtype=np.int32).reshape(shape)
    idx, cur, origin = stored, shape, tuple(range(len(shape)))
    for c in chain:
        plain = plain_node(c)
        cur, origin = through(plain, cur, origin, view.consts)
        if cur is None or prod(cur) != size or min(cur, default=1) < 0:
            return None
        if c.op_type == "Transpose":
            idx = idx.transpose(plain.attrs.get("perm") or tuple(reversed(range(idx.ndim))))
        idx = idx.reshape(cur)  # every other chain operator keeps the C order of the elements
    if idx.ndim != 2:
        return None
    flag = "transB" if i == 1 else "transA"
    if node.op_type == "Gemm" and any(a.name == flag and a.i for a in node.attribute):
        idx = idx.T
    rows = idx.T if i == 1 else idx  # [output channels, input features]
    for axis, dim in enumerate(shape):
        if dim == rows.shape[0] and np.array_equal(
            np.moveaxis(stored, axis, 0).reshape(dim, -1), rows
        ):
            return axis
    return None
