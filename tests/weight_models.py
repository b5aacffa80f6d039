"""Small models built with onnx.helper, one per kind of weight real models have (issue 14):
embeddings, recurrent layers, weight-only int8, uint8 QDQ, weights behind shape operators.

Each builder returns (model, inputs): the inputs are seeded, shapes like the real thing, small.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits, opset: int = 17, ms: bool = False) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()]
    )
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] * ms)
    return helper.make_model(graph, opset_imports=ops)


def _w(r: np.random.Generator, *shape: int, scale: float = 0.2) -> np.ndarray:
    return (r.normal(size=shape) * scale).astype(np.float32)


def embedding_block(seed: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Token embedding (Gather) + one attention/MLP block with LayerNorm, and an output head
    tied to the embedding through Transpose (as GPT-2 exports it)."""
    r = np.random.default_rng(seed)
    v, d, t = 50, 16, 6
    inits = {
        "emb": _w(r, v, d, scale=1.0),
        "wq": _w(r, d, d),
        "wk": _w(r, d, d),
        "wv": _w(r, d, d),
        "wo": _w(r, d, d),
        "w1": _w(r, d, 4 * d),
        "w2": _w(r, 4 * d, d),
        "gamma": np.ones(d, np.float32),
        "beta": np.zeros(d, np.float32),
        "pos": _w(r, t, d),
    }
    n = helper.make_node
    nodes = [
        n("Gather", ["emb", "ids"], ["x0"]),
        n("Add", ["x0", "pos"], ["x"]),
        n("LayerNormalization", ["x", "gamma", "beta"], ["h"], axis=-1),
        n("MatMul", ["h", "wq"], ["q"]),
        n("MatMul", ["h", "wk"], ["k"]),
        n("MatMul", ["h", "wv"], ["vv"]),
        n("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        n("MatMul", ["q", "kt"], ["s"]),
        n("Softmax", ["s"], ["p"], axis=-1),
        n("MatMul", ["p", "vv"], ["a"]),
        n("MatMul", ["a", "wo"], ["o"]),
        n("Add", ["x", "o"], ["x2"]),
        n("MatMul", ["x2", "w1"], ["m1"]),
        n("Relu", ["m1"], ["m2"]),
        n("MatMul", ["m2", "w2"], ["m3"]),
        n("Add", ["x2", "m3"], ["x3"]),
        n("Transpose", ["emb"], ["emb_t"], perm=[1, 0]),
        n("MatMul", ["x3", "emb_t"], ["logits"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, t])],
        [helper.make_tensor_value_info("logits", F, [2, t, v])],
        inits,
    )
    return model, {"ids": r.integers(0, v, size=(2, t)).astype(np.int64)}


def recurrent(
    op: str, bidirectional: bool, seed: int = 0, hidden: int = 10
) -> tuple[onnx.ModelProto, dict]:
    """LSTM or GRU over [T, N, I] with W [dirs, G*H, I], R [dirs, G*H, H], B [dirs, 2*G*H]."""
    r = np.random.default_rng(seed)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs, t, b, i, h = (2 if bidirectional else 1), 7, 2, 12, hidden
    inits = {
        "W": _w(r, dirs, gates * h, i, scale=0.3),
        "R": _w(r, dirs, gates * h, h, scale=0.3),
        "B": _w(r, dirs, 2 * gates * h, scale=0.1),
    }
    direction = "bidirectional" if bidirectional else "forward"
    node = helper.make_node(op, ["x", "W", "R", "B"], ["y"], hidden_size=h, direction=direction)
    model = _model(
        [node],
        [helper.make_tensor_value_info("x", F, [t, b, i])],
        [helper.make_tensor_value_info("y", F, [t, dirs, b, h])],
        inits,
    )
    return model, {"x": r.normal(size=(t, b, i)).astype(np.float32)}


def weight_only_int8(seed: int = 0, zero_point: int = 0) -> tuple[onnx.ModelProto, dict]:
    """int8 weight -> Cast -> Sub(zero point) -> Mul(per-column scale) -> MatMul (the weight-only
    int8 exports of LLM tool chains); the weight uses -128."""
    r = np.random.default_rng(seed)
    k, m = 24, 16
    wq = r.integers(-128, 120, size=(k, m)).astype(np.int8)
    wq[0, 0] = -128
    inits = {
        "wq": wq,
        "zp": np.array(zero_point, np.float32),
        "scale": (r.random(m) * 0.01 + 0.005).astype(np.float32),
    }
    n = helper.make_node
    nodes = [
        n("Cast", ["wq"], ["wf"], to=F),
        n("Sub", ["wf", "zp"], ["wc"]),
        n("Mul", ["wc", "scale"], ["w"]),
        n("MatMul", ["x", "w"], ["y"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", F, [3, k])],
        [helper.make_tensor_value_info("y", F, [3, m])],
        inits,
    )
    return model, {"x": r.normal(size=(3, k)).astype(np.float32)}


def qdq_uint8_conv(seed: int = 0, full_range: bool | str = False) -> tuple[onnx.ModelProto, dict]:
    """uint8 weight with per-channel zero points -> DequantizeLinear(axis 0) -> Conv. With
    `full_range` the weight uses all 256 values, in one channel of every axis (no lossless
    8-bit levels), or ("channels") in different channels of some axis."""
    r = np.random.default_rng(seed)
    co, ci = 8, 3
    zp = r.integers(100, 156, size=co).astype(np.uint8)
    wq = np.clip(zp[:, None, None, None] + r.integers(-90, 90, size=(co, ci, 3, 3)), 0, 255)
    wq = wq.astype(np.uint8)
    if full_range == "channels":  # 0 and 255 in different channels of every axis but 0
        wq[0, 0, 0, 0], wq[1, 1, 1, 1] = 0, 255
    elif full_range:  # a channel of every axis uses all 256 values
        wq[0, 0, 0, 0], wq[0, 0, 0, 1] = 0, 255
        wq[1, 1, 1, 2], wq[2, 2, 2, 2] = 0, 255
    inits = {"wq": wq, "ws": (r.random(co) * 0.01 + 0.002).astype(np.float32), "wz": zp}
    n = helper.make_node
    nodes = [
        n("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
        n("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", F, [1, ci, 8, 8])],
        [helper.make_tensor_value_info("y", F, [1, co, 8, 8])],
        inits,
        opset=19,
    )
    return model, {"x": r.normal(size=(1, ci, 8, 8)).astype(np.float32)}


def weight_first_and_shape_ops(seed: int = 0) -> tuple[onnx.ModelProto, dict]:
    """MatMul(weight, x) with the weight first; a weight behind Transpose; one behind Reshape
    (stored [3, 2, 6], read as a [6, 6] MatMul B: its output axis is the stored axis 2)."""
    r = np.random.default_rng(seed)
    inits = {
        "wa": _w(r, 5, 12),  # y1 = wa @ x: [5, 12] x [12, 4]: output rows = axis 0
        "wt": _w(r, 6, 5),  # Transpose -> [5, 6] as MatMul B: output channel = stored axis 0
        "wr": _w(r, 3, 2, 6),  # Reshape -> [6, 6] as MatMul B: output axis 1 = stored axis 2
        "shape": np.array([6, 6], np.int64),
    }
    n = helper.make_node
    nodes = [
        n("MatMul", ["wa", "x"], ["y1"]),
        n("Transpose", ["y1"], ["y1t"]),
        n("Transpose", ["wt"], ["wtt"], perm=[1, 0]),
        n("MatMul", ["y1t", "wtt"], ["y2"]),
        n("Reshape", ["wr", "shape"], ["wrr"]),
        n("MatMul", ["y2", "wrr"], ["y"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", F, [12, 4])],
        [helper.make_tensor_value_info("y", F, [4, 6])],
        inits,
    )
    return model, {"x": r.normal(size=(12, 4)).astype(np.float32)}
