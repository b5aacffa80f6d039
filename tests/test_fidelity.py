"""The fidelity check at the end of every compress (xorc/fidelity.py): synthetic inputs, the
output comparison, the per-layer attribution, the warning, --strict and the low-bits note."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import sample
from onnx import TensorProto, helper

from xorc import fidelity, runtime
from xorc.cli import cli
from xorc.hessian import Hessian


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _dynamic_model(path: Path) -> Path:
    """MatMul of an input [N, T, 4] (T dynamic) with a 4x3 weight, plus an int64 input."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.linspace(-1, 1, 12).tolist())
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"]),
            helper.make_node("Identity", ["ids"], ["ids_out"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", 3]),
            helper.make_tensor_value_info("ids_out", TensorProto.INT64, ["N", 5]),
        ],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_synthetic_inputs_follow_the_declared_shapes_and_are_deterministic(
    tmp_path: Path,
) -> None:
    path = _dynamic_model(tmp_path / "d.onnx")
    sess = runtime.session(path.read_bytes(), "d")
    first, shapes = fidelity.synthetic_inputs(sess)
    again, _ = fidelity.synthetic_inputs(sess)
    n, t = fidelity.SYNTHETIC_SAMPLES, fidelity.DYNAMIC_DIM
    assert shapes == {"x": [n, t, 4], "ids": [n, 5]}
    assert first.inputs["x"].dtype == np.float32 and first.inputs["ids"].dtype == np.int64
    assert set(np.unique(first.inputs["ids"])) <= {0, 1}
    for name in shapes:
        np.testing.assert_array_equal(first.inputs[name], again.inputs[name])


def test_compare_cosine_sqnr_and_match() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 10)).astype(np.float32)
    noise = 0.1 * rng.standard_normal((6, 10)).astype(np.float32)
    ids = np.arange(12).reshape(6, 2)
    got = fidelity.compare([a, a, ids], [a, a + noise, ids * (ids < 9)], ["same", "noisy", "ids"])
    assert got[0] == {"name": "same", "cosine": 1.0, "sqnr_db": None}
    want = 10 * np.log10((a.astype(np.float64) ** 2).sum() / (noise.astype(np.float64) ** 2).sum())
    assert got[1]["sqnr_db"] == pytest.approx(want, abs=1e-3)
    assert 0.99 < got[1]["cosine"] < 1.0
    assert got[2] == {"name": "ids", "match": 0.75}
    bad = fidelity.compare([a], [np.full_like(a, np.nan)], ["y"])
    check = fidelity.Fidelity({"measured": True, "n_samples": 6, "source": "calib"}, bad, [], 0.5)
    assert bad[0]["cosine"] is None and not check.passed and "non-finite" in check.warning()


def _job(w: np.ndarray, levels: np.ndarray, scales: np.ndarray) -> SimpleNamespace:
    q = SimpleNamespace(scales=scales, axis=0, group=None)
    return SimpleNamespace(
        prequantized=False,
        encoded=SimpleNamespace(decoded=levels),
        enc=SimpleNamespace(decoded=levels),
        q=q,
        weight=SimpleNamespace(array=w, axis=0),
    )


def test_layer_error_with_h_is_the_relative_output_error() -> None:
    """tr(dW H dW^T) / tr(W H W^T) equals |X dW^T|^2 / |X W^T|^2 on the data H came from."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    w = rng.standard_normal((5, 8)).astype(np.float32)
    scales = (np.abs(w).max(axis=1) / 7).astype(np.float32)
    levels = np.clip(np.rint(w / scales[:, None]), -7, 7).astype(np.int16)
    dw = levels * scales[:, None] - w.astype(np.float64)
    st = SimpleNamespace(hessian=Hessian((x.T @ x / len(x))[None], len(x)), mean=np.zeros(0))
    error, basis = fidelity.layer_error(_job(w, levels, scales), st)
    want = ((x @ dw.T) ** 2).sum() / ((x @ w.T.astype(np.float64)) ** 2).sum()
    assert basis == "H" and error == pytest.approx(want, rel=1e-4)
    plain, basis = fidelity.layer_error(_job(w, levels, scales), None)
    assert basis == "weights" and plain == pytest.approx((dw**2).sum() / (w**2).sum(), rel=1e-4)


@pytest.mark.parametrize("calib", [False, True])
def test_compress_reports_fidelity_and_strict_exits_3(tmp_path: Path, calib: bool) -> None:
    """fashion_cnn at 3 bits and 75 % sparsity falls below 0.99: one warning line naming
    layers; --strict exits 3 (the blob is written); 8 bits passes."""
    model = sample("fashion_cnn.onnx")
    data = ["--calib", sample("fashion_calib.npz")] if calib else []
    blob = tmp_path / "f.xorc"
    lossy = ["--bits", "3", "--sparsity", "0.75", "--policy", "raw", "-o", blob, *data]
    code, out, err = run("compress", model, *lossy, "--json")
    doc = json.loads(out)["fidelity"]
    assert code == 0 and not doc["passed"] and doc["min_cosine"] < 0.99
    assert doc["inputs"]["source"] == ("calib" if calib else "synthetic")
    assert doc["inputs"]["n_samples"] == (fidelity.CALIB_INPUTS if calib else 8)
    assert {layer["basis"] for layer in doc["layers"]} == ({"H"} if calib else {"weights"})
    warnings = [line for line in err.splitlines() if "warning: fidelity" in line]
    assert len(warnings) == 1 and doc["worst_layers"][0] in warnings[0]
    assert (err.count("need") == 0) if calib else (err.count("--calib DATA.npz") == 1)
    code, _, err = run("compress", model, *lossy, "--strict")
    assert code == 3 and "--strict" in err and blob.exists()
    code, out, err = run("compress", model, "-o", blob, *data, "--strict", "--json")
    doc = json.loads(out)["fidelity"]
    assert code == 0 and doc["passed"] and doc["min_cosine"] >= 0.99 and "warning" not in err
    assert doc["outputs"][0]["name"] == "logits" and doc["outputs"][0]["sqnr_db"] > 20


def test_min_fidelity_threshold_and_text_summary(tmp_path: Path) -> None:
    model = sample("digits_mlp.onnx")
    code, out, err = run("compress", model, "-o", tmp_path / "d.xorc", "--min-fidelity", "1")
    assert code == 0 and "fidelity on 8 synthetic inputs: logits cosine" in out
    assert "warning: fidelity" in err and "< 1.0" in err
    code, _, err = run("compress", model, "-o", tmp_path / "d.xorc", "--min-fidelity", "0.5")
    assert code == 0 and "warning" not in err and "note" not in err


def test_inspect_has_no_fidelity(tmp_path: Path) -> None:
    blob = tmp_path / "d.xorc"
    assert run("compress", sample("digits_mlp.onnx"), "-o", blob)[0] == 0
    code, out, _ = run("inspect", blob, "--json")
    assert code == 0 and json.loads(out)["fidelity"] is None


def test_bias_correction_is_kept_only_where_it_helps(tmp_path: Path) -> None:
    """fashion_cnn at 3 bits, 75 % magnitude pruning: bias correction lowers the cosine on the
    calibration inputs, so the blob keeps the original biases (and says so)."""
    model, calib = sample("fashion_cnn.onnx"), sample("fashion_calib.npz")
    flags = ["--bits", "3", "--sparsity", "0.75", "--reconstruct", "none", "--prune", "magnitude"]
    code, out, _ = run(
        "compress", model, "-o", tmp_path / "f.xorc", *flags, "--calib", calib, "--json"
    )
    doc = json.loads(out)
    guard = doc["fidelity"]["bias_correction"]
    assert code == 0 and guard["kept"] is False and guard["cosine_without"] > guard["cosine_with"]
    assert doc["fidelity"]["min_cosine"] == guard["cosine_without"]
    assert not any(t["details"].get("bias_corrected") for t in doc["tensors"])
    code, out, _ = run("compress", model, "-o", tmp_path / "g.xorc", "--calib", calib, "--json")
    guard = json.loads(out)["fidelity"]["bias_correction"]
    assert code == 0 and guard["kept"] is (guard["cosine_with"] >= guard["cosine_without"])
