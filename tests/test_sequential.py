"""Sequential reconstruction (xorc/sequential.py) and the graph prefix it runs (onnx_io.prefix)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from xorc import api, onnx_io, runtime
from xorc.config import CompressOptions
from xorc.errors import ConfigError
from xorc.format import read_bytes, read_file

OPSET = [helper.make_opsetid("", 17)]


def _two_layers(path: Path) -> Path:
    """x -> Conv 3x3 (w1) -> Relu (r1) -> Conv 1x1 (w2) -> y; an unrelated branch z."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(6, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(16, 6, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["y"]),
        helper.make_node("Neg", ["x"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
        ],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    onnx.save(helper.make_model(graph, opset_imports=OPSET), path)
    return path


def _calib(path: Path, n: int = 24, seed: int = 1) -> Path:
    x = np.random.default_rng(seed).normal(size=(n, 3, 8, 8)).cumsum(axis=3) / 2 + 0.3
    np.savez(path, x=x.astype(np.float32))
    return path


def test_prefix_computes_the_tap_with_the_given_weights(tmp_path: Path) -> None:
    model = onnx_io.load_model(_two_layers(tmp_path / "m.onnx"))
    x = {"x": np.random.default_rng(2).normal(size=(2, 3, 8, 8)).astype(np.float32)}
    full = runtime.session(onnx_io.with_outputs(onnx_io.serialize(model), ["r1"]), "full")
    (want,) = full.run(["r1"], x)
    part = onnx.load_model_from_string(onnx_io.prefix(model, "r1", {}))
    assert [n.op_type for n in part.graph.node] == ["Conv", "Relu"]
    assert [o.name for o in part.graph.output] == ["r1"]
    assert [t.name for t in part.graph.initializer] == ["w1"]
    (got,) = runtime.session(part.SerializeToString(), "part").run(None, x)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    w1 = onnx_io.initializer(model, "w1")
    doubled = onnx_io.prefix(model, "r1", {"w1": 2 * w1})
    (twice,) = runtime.session(doubled, "doubled").run(None, x)
    np.testing.assert_allclose(twice, 2 * want, rtol=1e-5, atol=1e-5)  # Relu(2z) = 2 Relu(z)


def test_sequential_reconstructs_later_layers_on_compressed_inputs(tmp_path: Path) -> None:
    """The first layer reads the model input, so both orders give it the same levels; the
    second reads the compressed first layer's output in sequential mode, so its levels differ.
    Sequential blobs are deterministic."""
    model, calib = _two_layers(tmp_path / "m.onnx"), _calib(tmp_path / "c.npz")
    levels = {}
    for order in ("parallel", "sequential", "sequential"):
        blob = tmp_path / f"{order}.xorc"
        # clip_search off: on these tiny layers it can pick the same levels for both orders
        options = CompressOptions(bits=4, policy="raw", reconstruct_order=order, clip_search=False)
        api.compress(model, blob, options, calib=calib)
        container = read_bytes(read_file(blob))
        assert container.meta["options"]["reconstruct_order"] == order
        assert all(t.stats["reconstruction"]["method"] == "gptq" for t in container.tensors)
        if order in levels:
            assert blob.read_bytes() == levels[order + "_bytes"]
        levels[order] = {t.name: t.digest for t in container.tensors}
        levels[order + "_bytes"] = blob.read_bytes()
    assert levels["parallel"]["w1"] == levels["sequential"]["w1"]
    assert levels["parallel"]["w2"] != levels["sequential"]["w2"]


def test_reconstruct_order_is_checked() -> None:
    with pytest.raises(ConfigError, match="reconstruct_order"):
        CompressOptions(reconstruct_order="random")


def test_original_target_is_the_least_squares_fit_to_the_original_output() -> None:
    """W* minimizes E|W x_ref - W* x|^2 (with a vanishing damp), and is W when x = x_ref."""
    from xorc.hessian import Hessian, original_target

    rng = np.random.default_rng(3)
    x_ref = rng.normal(size=(4000, 6)) @ rng.normal(size=(6, 6))
    x = x_ref + 0.3 * rng.normal(size=x_ref.shape) + 0.1
    w = rng.normal(size=(5, 6))
    h, cross = (x.T @ x / len(x))[None], (x_ref.T @ x / len(x))[None]
    got = original_target(w[None], Hessian(h, len(x), cross=cross), 1e-12)[0]
    want = np.linalg.lstsq(x, x_ref @ w.T, rcond=None)[0].T
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    same = original_target(w[None], Hessian(h, len(x), cross=h), 0.01)[0]
    np.testing.assert_allclose(same, w, atol=1e-12)


def test_asymmetric_gptq_is_closer_to_the_original_output() -> None:
    """With inputs that differ from the original ones, GPTQ against the original output
    (cross moment given) has a smaller error E|W x_ref - Q x|^2 than GPTQ of W on x alone."""
    from xorc.hessian import Hessian
    from xorc.reconstruct import Method, reconstruct

    rng = np.random.default_rng(4)
    x_ref = rng.normal(size=(3000, 16)).cumsum(axis=1) / 3
    x = x_ref * 1.1 + 0.2 * rng.normal(size=x_ref.shape)
    w = rng.normal(size=(8, 16)).astype(np.float32)
    h, cross = x.T @ x / len(x), x_ref.T @ x / len(x)
    errors = {}
    for name, hess in (
        ("sym", Hessian(h[None], len(x))),
        ("asym", Hessian(h[None], len(x), cross=cross[None])),
    ):
        levels, scales, info = reconstruct(w, 0, True, hess, Method(bits=4, clip=True))
        q = levels * scales[:, None]
        errors[name] = float(np.mean((x_ref @ w.T - x @ q.T) ** 2))
        assert ("target" in info) == (name == "asym")
    assert errors["asym"] < 0.8 * errors["sym"]


def test_asymmetric_order_targets_the_original_output(tmp_path: Path) -> None:
    """The first layer reads the model input (nothing upstream: plain GPTQ); the second is
    fitted to the original model's output; blobs are deterministic."""
    model, calib = _two_layers(tmp_path / "m.onnx"), _calib(tmp_path / "c.npz")
    blobs = []
    for _ in range(2):
        blob = tmp_path / f"a{len(blobs)}.xorc"
        options = CompressOptions(bits=4, policy="raw", reconstruct_order="asymmetric")
        api.compress(model, blob, options, calib=calib)
        blobs.append(blob.read_bytes())
        container = read_bytes(read_file(blob))
        assert container.meta["options"]["reconstruct_order"] == "asymmetric"
        targets = {t.name: t.stats["reconstruction"].get("target") for t in container.tensors}
        assert targets == {"w1": None, "w2": "original"}
    assert blobs[0] == blobs[1]


def test_corrected_bias_of_the_asymmetric_order(tmp_path: Path) -> None:
    """With the compressed input's means (`shifted_mean`), the bias absorbs Q E[x] - W E[x_ref];
    without them, (Q - W) E[x_ref] as before."""
    from types import SimpleNamespace

    from xorc import bias, calibrate

    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 4)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=OPSET), tmp_path / "g.onnx")
    model = onnx_io.load_model(tmp_path / "g.onnx")
    levels = rng.integers(-7, 8, size=w.shape).astype(np.int16)
    scales = np.full(3, 0.25, np.float32)
    q = SimpleNamespace(values=levels, scales=scales, axis=0, group=None)
    job = SimpleNamespace(prequantized=False, q=q, weight=SimpleNamespace(array=w))
    mean, shifted = rng.normal(size=4), rng.normal(size=4)
    st = calibrate.InputStats(onnx_io.layers(model)["w"], mean, mean**2)
    deq = levels * 0.25
    plain = bias.corrected_bias(model, job, levels, st)
    np.testing.assert_allclose(plain, b - (deq - w) @ mean, rtol=1e-6)
    moved = bias.corrected_bias(model, job, levels, replace(st, shifted_mean=shifted))
    np.testing.assert_allclose(moved, b - (deq @ shifted - w @ mean), rtol=1e-6)
