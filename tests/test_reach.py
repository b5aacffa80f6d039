"""Calibration statistics for weights beyond initializers read directly (xorc/onnx_io/reach.py):
`Constant` node weights and MatMul/Gemm weights behind shape operators get an H and GPTQ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xorc import api, onnx_io
from xorc.config import CompressOptions

F = TensorProto.FLOAT


def _model(seed: int = 0) -> onnx.ModelProto:
    """x [N, 16] -> MatMul(Transpose(wt [24, 16])) -> Relu -> MatMul(Constant wc [24, 12])
    -> Gemm(Unsqueeze/Squeeze chain of wg [12, 8]) -> MatMul(Reshape(wm [4, 6, 8]))."""
    r = np.random.default_rng(seed)
    wt = (r.normal(size=(24, 16)) * 0.3).astype(np.float32)
    wc = (r.normal(size=(24, 12)) * 0.3).astype(np.float32)
    wg = (r.normal(size=(12, 8)) * 0.3).astype(np.float32)
    wm = (r.normal(size=(4, 6, 8)) * 0.3).astype(np.float32)
    n = helper.make_node
    nodes = [
        n("Transpose", ["wt"], ["wt_t"], perm=[1, 0]),
        n("MatMul", ["x", "wt_t"], ["h1"]),
        n("Relu", ["h1"], ["a1"]),
        n("Constant", [], ["wc"], value=numpy_helper.from_array(wc, "wc")),
        n("MatMul", ["a1", "wc"], ["h2"]),
        n("Unsqueeze", ["wg", "ax"], ["wg_u"]),
        n("Squeeze", ["wg_u", "ax"], ["wg_s"]),
        n("Gemm", ["h2", "wg_s"], ["h3"]),
        n("Reshape", ["wm", "shape"], ["wm_r"]),
        n("MatMul", ["h3", "wm_r"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(wt, "wt"),
        numpy_helper.from_array(wg, "wg"),
        numpy_helper.from_array(wm, "wm"),
        numpy_helper.from_array(np.array([0], np.int64), "ax"),
        numpy_helper.from_array(np.array([8, 24], np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", F, ["N", 16])],
        [helper.make_tensor_value_info("y", F, ["N", 24])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_reached_layers_orientation_and_what_is_left(tmp_path: Path) -> None:
    onnx.save(_model(), tmp_path / "m.onnx")
    model = onnx_io.load_model(tmp_path / "m.onnx")
    assert set(onnx_io.layers(model)) == set()  # no initializer is read directly
    reached = onnx_io.layers(model, reach=True)
    assert set(reached) == {"wt", "wc", "wg"}  # wm: its Reshape merges axes, no layer
    assert reached["wt"].trans_b and reached["wt"].data == "x"  # stored [out, in]
    assert not reached["wc"].trans_b and reached["wc"].data == "a1"
    assert not reached["wg"].trans_b and reached["wg"].op_type == "Gemm"


def test_calib_reconstructs_them_with_gptq(tmp_path: Path) -> None:
    method, errors = _gptq_against_rtn(_model(), tmp_path)
    assert method["wt"] == method["wc"] == method["wg"] == "gptq"
    assert method["wm"] == "none"  # its Reshape mixes rows and features: rounded to nearest
    assert errors["m"] < errors["rtn"]  # GPTQ on the reached weights beats round to nearest


def _merging_model(seed: int = 0) -> onnx.ModelProto:
    """x [N, 16] -> MatMul(Reshape(wh [2, 8, 12])) -> Relu -> Gemm(Reshape(wk [10, 12, 1, 1]),
    transB) -> MatMul(Transpose(wa [10, 12]), .) as the first operand of [N, 10, 1] columns."""
    r = np.random.default_rng(seed)
    wh = (r.normal(size=(2, 8, 12)) * 0.3).astype(np.float32)
    wk = (r.normal(size=(10, 12, 1, 1)) * 0.3).astype(np.float32)
    wa = (r.normal(size=(10, 12)) * 0.3).astype(np.float32)
    n = helper.make_node
    nodes = [
        n("Reshape", ["wh", "s16"], ["wh_r"]),
        n("MatMul", ["x", "wh_r"], ["h1"]),
        n("Relu", ["h1"], ["a1"]),
        n("Reshape", ["wk", "s10"], ["wk_r"]),
        n("Gemm", ["a1", "wk_r"], ["h2"], transB=1),
        n("Unsqueeze", ["h2", "ax2"], ["h2u"]),
        n("Transpose", ["wa"], ["wa_t"], perm=[1, 0]),
        n("MatMul", ["wa_t", "h2u"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(wh, "wh"),
        numpy_helper.from_array(wk, "wk"),
        numpy_helper.from_array(wa, "wa"),
        numpy_helper.from_array(np.array([16, 12], np.int64), "s16"),
        numpy_helper.from_array(np.array([10, -1], np.int64), "s10"),
        numpy_helper.from_array(np.array([2], np.int64), "ax2"),
    ]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", F, ["N", 16])],
        [helper.make_tensor_value_info("y", F, ["N", 12, 1])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_merging_reshapes_and_a_first_operand_get_their_rows(tmp_path: Path) -> None:
    onnx.save(_merging_model(), tmp_path / "r.onnx")
    reached = onnx_io.layers(onnx_io.load_model(tmp_path / "r.onnx"), reach=True)
    assert {k: v.view_axis for k, v in reached.items()} == {"wh": 2, "wk": 0, "wa": 1}
    assert reached["wa"].weight_index == 0 and reached["wa"].data == "h2u"
    method, errors = _gptq_against_rtn(_merging_model(), tmp_path)
    assert method == {"wh": "gptq", "wk": "gptq", "wa": "gptq"}
    assert errors["m"] < 0.8 * errors["rtn"]


def _gptq_against_rtn(model: onnx.ModelProto, tmp_path: Path) -> tuple[dict, dict]:
    """4 bits with --calib (64 inputs) and without: each weight's reconstruction method, and
    both blobs' relative output errors on 256 held-out inputs ("m": calibrated, "rtn")."""
    onnx.save(model, tmp_path / "m.onnx")
    r = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=r.normal(size=(64, 16)).astype(np.float32))
    summary = api.compress(
        tmp_path / "m.onnx", tmp_path / "m.xorc", CompressOptions(bits=4),
        calib=tmp_path / "calib.npz", min_fidelity=None,
    )  # fmt: skip
    method = {t.name: t.stats["reconstruction"]["method"] for t in summary.tensors}
    api.compress(tmp_path / "m.onnx", tmp_path / "rtn.xorc", CompressOptions(bits=4))
    x = np.random.default_rng(2).normal(size=(256, 16)).astype(np.float32)  # held out
    errors = {}
    for name in ("m", "rtn"):
        back = api.decompress(tmp_path / f"{name}.xorc", tmp_path / f"{name}.onnx.back")
        errors[name] = _error(tmp_path / "m.onnx", back, x)
    return method, errors


def _error(src: Path, back: Path, x: np.ndarray) -> float:
    from xorc import runtime

    a = runtime.session(src.read_bytes(), "a").run(None, {"x": x})[0]
    b = runtime.session(Path(back).read_bytes(), "b").run(None, {"x": x})[0]
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))
