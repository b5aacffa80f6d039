"""The data-free default: GPTQ on the H of synthetic inputs (xorc/selfcalib.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xorc import api, onnx_io, selfcalib
from xorc.config import CompressOptions
from xorc.format import read_bytes, read_file

OPSET = [helper.make_opsetid("", 17)]


def _mixing_model(rng: np.random.Generator, int_input: bool = False) -> onnx.ModelProto:
    """x [N, 2, H, W] -> 1x1 Conv `mix` (6 channels from 2: correlated) -> Relu -> 1x1 Conv `w`
    (its rows read those 6 channels). A dynamic spatial size; `int_input` casts an int64 x."""
    mix = rng.normal(size=(6, 2, 1, 1)).astype(np.float32)
    w = rng.normal(size=(8, 6, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["xf", "mix"], ["m"]),
        helper.make_node("Relu", ["m"], ["r"]),
        helper.make_node("Conv", ["r", "w"], ["y"]),
    ]
    dtype = TensorProto.INT64 if int_input else TensorProto.FLOAT
    nodes.insert(0, helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
    graph = helper.make_graph(
        nodes,
        "mixing",
        [helper.make_tensor_value_info("x", dtype, ["N", 2, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(mix, "mix"), numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def test_synthetic_inputs_follow_the_declared_shapes_and_are_deterministic(tmp_path: Path) -> None:
    onnx.save(_mixing_model(np.random.default_rng(0)), tmp_path / "m.onnx")
    model = onnx_io.load_model(tmp_path / "m.onnx")
    a, b = selfcalib.synthetic_data(model), selfcalib.synthetic_data(model)
    assert a is not None and b is not None
    x = a.inputs["x"]
    assert x.shape == (selfcalib.SAMPLES, 2, selfcalib.SIZES[0], selfcalib.SIZES[0])
    assert np.array_equal(x, b.inputs["x"])
    onnx.save(_mixing_model(np.random.default_rng(0), int_input=True), tmp_path / "i.onnx")
    assert selfcalib.synthetic_data(onnx_io.load_model(tmp_path / "i.onnx")) is None


def test_without_data_1x1_layers_get_the_synthetic_h_and_round_better(tmp_path: Path) -> None:
    onnx.save(_mixing_model(np.random.default_rng(3)), tmp_path / "m.onnx")
    held_out = 3.0 * np.random.default_rng(99).normal(size=(16, 2, 12, 12)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=held_out)
    cosines = {}
    for name in ("prior", "auto"):
        blob = tmp_path / f"{name}.xorc"
        api.compress(tmp_path / "m.onnx", blob, CompressOptions(reconstruct=name))
        report = api.verify(blob, tmp_path / "m.onnx", tmp_path / "eval.npz", max_drop=100.0)
        assert report.bit_exact and report.accuracy is not None
        cosines[name] = report.accuracy.output_cosine
        records = {r.name: r for r in read_bytes(read_file(blob)).tensors}
        recon = records["w"].stats.get("reconstruction")
        if name == "auto":
            assert recon["h"] == "synthetic" and recon["method"] == "gptq"
            assert recon["n_samples"] > 0
        else:
            assert recon is None  # the prior has no H for a 1x1 Conv: round to nearest
    assert cosines["auto"] > cosines["prior"]


def test_an_integer_input_keeps_the_prior(tmp_path: Path) -> None:
    onnx.save(_mixing_model(np.random.default_rng(3), int_input=True), tmp_path / "i.onnx")
    blob = tmp_path / "i.xorc"
    api.compress(tmp_path / "i.onnx", blob, CompressOptions(bits=4), min_fidelity=None)
    for record in read_bytes(read_file(blob)).tensors:
        assert "reconstruction" not in record.stats  # 1x1 kernels under the prior: rounded


def test_float_ids_and_a_fixed_sample_axis_keep_the_prior(tmp_path: Path) -> None:
    table = numpy_helper.from_array(np.ones((10, 4), np.float32), "table")
    nodes = [
        helper.make_node("Cast", ["x"], ["ids"], to=TensorProto.INT64),
        helper.make_node("Gather", ["table", "ids"], ["y"]),
    ]
    for name, dims in (("ids", ["N", 5]), ("fixed", [1, 5])):
        graph = helper.make_graph(
            nodes if name == "ids" else [helper.make_node("Relu", ["x"], ["y"])],
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [table] if name == "ids" else [],
        )
        onnx.save(helper.make_model(graph, opset_imports=OPSET), tmp_path / f"{name}.onnx")
        assert selfcalib.synthetic_data(onnx_io.load_model(tmp_path / f"{name}.onnx")) is None
