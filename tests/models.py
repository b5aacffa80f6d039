"""Small ONNX models built in code, for the constructs real models use (models-data.md §5).

Each builder returns a ModelProto; weights are seeded, so the models are the same every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def tiny_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> Flatten -> MatMul + Gemm(transB=1), input x [N,1,8,8]."""
    r = _rng(seed)
    w1 = r.normal(size=(8, 1, 3, 3)).astype(np.float32)
    w1[r.random(w1.shape) < 0.5] = 0.0  # zeros already in the model count as pruned
    w2 = (r.normal(size=(8 * 4 * 4, 12)) * 0.1).astype(np.float32)
    w3 = (r.normal(size=(10, 12)) * 0.3).astype(np.float32)
    b3 = r.normal(size=(10,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "w2"], ["h"], name="fc1"),
        helper.make_node("Gemm", ["h", "w3", "b3"], ["y"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [
            numpy_helper.from_array(a, n)
            for a, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"), (b3, "b3"))
        ],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def tiny_inputs(n: int = 40, seed: int = 1) -> np.ndarray:
    return _rng(seed).normal(size=(n, 1, 8, 8)).astype(np.float32)


def constant_and_if(seed: int = 0) -> onnx.ModelProto:
    """A weight in a Constant node, and weights (initializer + Constant) inside If branches."""
    r = _rng(seed)
    wc = r.normal(size=(6, 4)).astype(np.float32)
    wt = r.normal(size=(4, 3)).astype(np.float32)
    we = r.normal(size=(4, 3)).astype(np.float32)

    def branch(name: str, w: np.ndarray, as_constant: bool) -> onnx.GraphProto:
        nodes = []
        inits = []
        if as_constant:
            nodes.append(
                helper.make_node("Constant", [], [f"{name}_w"], value=numpy_helper.from_array(w))
            )
        else:
            inits.append(numpy_helper.from_array(w, f"{name}_w"))
        nodes.append(
            helper.make_node("MatMul", ["h", f"{name}_w"], [f"{name}_out"], name=f"{name}_mm")
        )
        return helper.make_graph(
            nodes,
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
            inits,
        )

    nodes = [
        helper.make_node(
            "Constant", [], ["wc"], name="wc_const", value=numpy_helper.from_array(wc)
        ),
        helper.make_node("MatMul", ["x", "wc"], ["h"], name="mm0"),
        helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["cond"], name="gt"),
        helper.make_node(
            "If",
            ["cond"],
            ["y"],
            name="branch",
            then_branch=branch("then", wt, as_constant=False),
            else_branch=branch("else", we, as_constant=True),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_and_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def quantized_matmul(weights: np.ndarray | None = None, zero_point: int = 0) -> onnx.ModelProto:
    """A QDQ-style model: int8 weight -> DequantizeLinear -> MatMul."""
    w = weights if weights is not None else _rng(3).integers(-127, 128, size=(6, 4)).astype(np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq"),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(w, "wq"),
            numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
            numpy_helper.from_array(np.array(zero_point, np.int8), "wz"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def write_matmul_chain(
    folder: Path, width: int, layers: int, sparsity: float = 0.9, seed: int = 0
) -> Path:
    """A chain of `layers` MatMul [width, width] + Relu (none after the last), input x [N,
    width], written as folder/chain.onnx with every weight in folder/chain.bin, one layer at a
    time (a model of several GB never sits in memory). `sparsity` of each weight is zero; the
    others are He-scaled normals, so activations keep their size down the chain."""
    r = _rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    nodes, inits = [], []
    scale = np.sqrt(2.0 / (width * (1.0 - sparsity)))
    with open(folder / "chain.bin", "wb") as data:
        for i in range(layers):
            w = r.standard_normal((width, width), dtype=np.float32) * np.float32(scale)
            w[r.random((width, width), dtype=np.float32) < sparsity] = 0.0
            offset = data.tell()
            data.write(w.tobytes())
            tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[width, width])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", "chain.bin"), ("offset", offset), ("length", w.nbytes)):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
            inits.append(tensor)
            src = "x" if i == 0 else f"a{i - 1}"
            out = "y" if i == layers - 1 else f"h{i}"
            nodes.append(helper.make_node("MatMul", [src, f"w{i}"], [out], name=f"fc{i}"))
            if i < layers - 1:
                nodes.append(helper.make_node("Relu", [out], [f"a{i}"], name=f"relu{i}"))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=OPSET)
    onnx.save(model, folder / "chain.onnx")
    return folder / "chain.onnx"
