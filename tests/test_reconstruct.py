"""GPTQ and OBS pruning (xorc/reconstruct.py) and the per-layer H (xorc/hessian.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from xorc import api, calibrate, hessian, onnx_io, prior, reconstruct, runtime
from xorc.config import CompressOptions
from xorc.errors import ConfigError, UsageError
from xorc.format import read_bytes, read_file
from xorc.hessian import Hessian, matrix_form
from xorc.onnx_io import Layer
from xorc.quantize import dequantize, max_level, prune_to, quantize

OPSET = [helper.make_opsetid("", 17)]


def _features(rng: np.random.Generator, n: int, f: int, seed: int = 0) -> np.ndarray:
    """Correlated inputs with channel scales spread over two decades, as real layers see; the
    distribution is fixed by `seed`, the samples drawn from `rng`."""
    law = np.random.default_rng(1000 + seed)
    mix = law.normal(size=(f, f)) * 0.4 + np.eye(f)
    return (rng.normal(size=(n, f)) @ mix) * np.exp(law.normal(size=f))


def _layer(f: int = 48, rows: int = 24, seed: int = 0) -> tuple[np.ndarray, Hessian, np.ndarray]:
    """A weight [rows, f], the H of calibration inputs, and held-out inputs (same law)."""
    rng = np.random.default_rng(seed)
    calib, held = _features(rng, 3000, f, seed), _features(rng, 3000, f, seed)
    w = rng.normal(size=(rows, f)).astype(np.float32)
    return w, Hessian((calib.T @ calib / len(calib))[None], len(calib)), held


def _error(w: np.ndarray, levels: np.ndarray, scales: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm((w - dequantize(levels, scales, 0)) @ x.T))


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_gptq_beats_round_to_nearest_on_held_out_inputs(bits: int) -> None:
    w, h, held = _layer()
    levels, scales, info = reconstruct.reconstruct(w, 0, True, h, reconstruct.Method(bits))
    rtn = quantize(w, bits, 0, "bfloat16")
    assert _error(w, levels, scales, held) < 0.85 * _error(w, *rtn, held)
    assert info["method"] == "gptq" and info["n_samples"] == 3000


@pytest.mark.parametrize("scale_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_levels_and_scales_are_those_of_the_quantizer(scale_dtype: str, per_channel: bool) -> None:
    w, h, _ = _layer(seed=3)
    method = reconstruct.Method(4, scale_dtype=scale_dtype)
    levels, scales, _ = reconstruct.reconstruct(w, 0, per_channel, h, method)
    _, expected = quantize(w, 4, 0 if per_channel else None, scale_dtype)
    assert levels.dtype == np.int16 and levels.shape == w.shape
    assert np.abs(levels).max() <= max_level(4)
    assert np.array_equal(scales, expected)
    again = reconstruct.reconstruct(w, 0, per_channel, h, method)
    assert np.array_equal(again[0], levels) and np.array_equal(again[1], scales)


def test_obs_unstructured_meets_the_sparsity_and_beats_magnitude() -> None:
    w, h, held = _layer(seed=1)
    for s in (0.3, 0.5, 0.77):
        levels, scales, info = reconstruct.reconstruct(
            w, 0, True, h, reconstruct.Method(8, sparsity=s)
        )
        assert np.count_nonzero(levels == 0) >= int(np.ceil(s * w.size))
        magnitude = quantize(prune_to(w, s), 8, 0, "bfloat16")
        assert _error(w, levels, scales, held) < 0.8 * _error(w, *magnitude, held)
        assert info["prune"] == "obs"


def test_obs_two_four_pattern() -> None:
    w, h, held = _layer(f=50, seed=2)  # 50 features: the last group of a row holds 2
    levels, scales, _ = reconstruct.reconstruct(
        w, 0, True, h, reconstruct.Method(8, pattern=(2, 4))
    )
    padded = np.pad(levels, ((0, 0), (0, 2)))
    assert (np.count_nonzero(padded.reshape(w.shape[0], -1, 4), axis=2) <= 2).all()
    from xorc.quantize import prune_pattern

    magnitude = quantize(prune_pattern(w, 0, 2, 4), 8, 0, "bfloat16")
    assert _error(w, levels, scales, held) < _error(w, *magnitude, held)


def test_zeros_of_the_model_stay_zero() -> None:
    w, h, _ = _layer(seed=4)
    w[:, ::3] = 0
    done, info = reconstruct.for_tensor(w, w, 0, True, h, reconstruct.Method(4))
    assert done is not None and info["method"] == "gptq"
    assert (done[0][:, ::3] == 0).all() and np.count_nonzero(done[0][:, 1::3])


def test_hostile_hessians_give_finite_in_range_levels() -> None:
    w, h, _ = _layer(seed=5)
    dead = h.moment.copy()
    dead[:, 7, :] = 0
    dead[:, :, 7] = 0  # an input channel that is always zero: H is singular
    rng = np.random.default_rng(0)
    one = _features(rng, 1, w.shape[1], 5)  # one calibration vector: rank 1
    cases = [Hessian(dead, 3000), Hessian((one.T @ one)[None], 1), Hessian(np.zeros_like(dead), 5)]
    for hess in cases:
        levels, scales, info = reconstruct.reconstruct(
            w, 0, True, hess, reconstruct.Method(4, sparsity=0.5)
        )
        assert np.isfinite(scales).all() and np.abs(levels).max() <= max_level(4)
        assert np.count_nonzero(levels == 0) >= w.size // 2
        assert np.isfinite(info["damp"])
    zero = reconstruct.reconstruct(w, 0, True, cases[2], reconstruct.Method(4))[0]
    assert np.array_equal(zero, quantize(w, 4, 0, "bfloat16")[0])  # no information: RTN


def test_a_hessian_that_does_not_fit_falls_back_with_a_reason() -> None:
    w, h, _ = _layer()
    small = Hessian(h.moment[:, :10, :10], 3000)
    done, info = reconstruct.for_tensor(w, w, 0, True, small, reconstruct.Method(4))
    assert done is None and info["method"] == "none" and "does not fit" in info["reason"]


def _conv_layer(**conv: object) -> Layer:
    return Layer("w", "x", "Conv", int(conv.pop("group", 1)), 1, False, None, conv=conv)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        ((6, 2, 3, 3), {"group": 2, "strides": (2, 2), "pads": (1, 0, 1, 2)}),
        ((4, 1, 3, 3), {"group": 4, "dilations": (2, 2), "pads": (2, 1, 0, 2)}),
        ((4, 2, 3, 3), {"strides": (2, 2), "auto_pad": "SAME_UPPER"}),
        ((5, 4, 1, 1), {}),
        ((3, 4, 3), {"strides": (2,), "auto_pad": "SAME_LOWER"}),
    ],
)
def test_conv_features_reproduce_the_convolution(shape: tuple, attrs: dict) -> None:
    """W_g applied to the im2col features equals onnxruntime's Conv output."""
    rng = np.random.default_rng(0)
    group = int(attrs.get("group", 1))
    x = rng.normal(size=(2, shape[1] * group, *([9] * (len(shape) - 2)))).astype(np.float32)
    w = rng.normal(size=shape).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=OPSET).SerializeToString())
    (y,) = sess.run(None, {"x": x})
    f = hessian.features(_conv_layer(**attrs), x, shape)  # [groups, N x positions, F]
    rows = matrix_form(w, 0).reshape(group, shape[0] // group, -1)
    ours = np.matmul(rows, f.transpose(0, 2, 1))  # [groups, out per group, N x positions]
    ours = ours.reshape(shape[0], x.shape[0], -1).transpose(1, 0, 2)
    assert np.allclose(ours, y.reshape(x.shape[0], shape[0], -1), atol=1e-4)


def _model(kind: str, rng: np.random.Generator) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """One weighted layer (and a Relu before it, so inputs are not centred) of each kind."""
    if kind.startswith("conv") or kind == "depthwise":
        co, ci, k, group, stride = {
            "conv3x3_s2_g2": (8, 6, 3, 2, 2),
            "depthwise": (6, 6, 3, 6, 1),
            "conv1x1": (10, 6, 1, 1, 1),
        }[kind]
        w = rng.normal(size=(co, ci // group, k, k)).astype(np.float32)
        attrs = {"group": group, "strides": [stride, stride], "pads": [k // 2] * 4}
        node = helper.make_node("Conv", ["r", "w", "b"], ["y"], **attrs)
        inits = [w, rng.normal(size=co).astype(np.float32)]
        return _graph(node, inits, [1, ci, 10, 10]), (ci, 10, 10)
    if kind == "gemm_transb":
        node = helper.make_node("Gemm", ["r", "w", "b"], ["y"], transB=1)
        inits = [rng.normal(size=(12, 16)).astype(np.float32), np.zeros(12, np.float32)]
        return _graph(node, inits, [1, 16]), (16,)
    if kind == "matmul_second":
        node = helper.make_node("MatMul", ["r", "w"], ["y"])
        return _graph(node, [rng.normal(size=(16, 12)).astype(np.float32)], [1, 5, 16]), (5, 16)
    node = helper.make_node("MatMul", ["w", "r"], ["y"])  # the weight as first operand
    return _graph(node, [rng.normal(size=(12, 16)).astype(np.float32)], [1, 16, 5]), (16, 5)


def _graph(node: onnx.NodeProto, inits: list[np.ndarray], shape: list) -> onnx.ModelProto:
    names = ["w", "b"][: len(inits)]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), node],
        "one_layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in zip(inits, names, strict=True)],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def _inputs(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth inputs (neighbouring features correlate) with a positive mean."""
    raw = rng.normal(size=(n, *shape))
    for axis in range(1, raw.ndim):
        raw = raw.cumsum(axis=axis) / np.sqrt(raw.shape[axis])
    return (raw + 0.5).astype(np.float32)


KINDS = ["gemm_transb", "matmul_second", "matmul_first", "conv3x3_s2_g2", "depthwise", "conv1x1"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_kind_end_to_end(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    model, shape = _model(kind, rng)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=_inputs(rng, 48, shape))
    np.savez(tmp_path / "eval.npz", x=_inputs(np.random.default_rng(99), 32, shape))
    cosines = {}
    for name in ("none", "gptq"):  # both with calibration data, so both bias-corrected
        blob = tmp_path / f"{name}.xorc"
        options = CompressOptions(bits=3, policy="raw", reconstruct=name)
        api.compress(tmp_path / "m.onnx", blob, options, calib=tmp_path / "calib.npz")
        report = api.verify(blob, tmp_path / "m.onnx", tmp_path / "eval.npz", max_drop=100.0)
        assert report.bit_exact and report.accuracy is not None
        cosines[name] = report.accuracy.output_cosine
        record = read_bytes(read_file(blob)).tensors[0]
        assert record.stats.get("reconstruction", {}).get("method", "none") == name
    assert cosines["gptq"] > cosines["none"]


def test_obs_is_recorded_and_deterministic(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    model, shape = _model("conv3x3_s2_g2", rng)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=_inputs(rng, 16, shape))
    options = CompressOptions(bits=4, sparsity=0.5)
    blobs = []
    for i in range(2):
        api.compress(
            tmp_path / "m.onnx", tmp_path / f"{i}.xorc", options, calib=tmp_path / "calib.npz"
        )
        blobs.append((tmp_path / f"{i}.xorc").read_bytes())
    assert blobs[0] == blobs[1]
    container = read_bytes(read_file(tmp_path / "0.xorc"))
    assert container.meta["options"]["prune"] == "obs"
    assert container.meta["options"]["reconstruct"] == "gptq"
    record = container.tensors[0]
    assert record.stats["reconstruction"]["prune"] == "obs"
    assert record.n_weights - record.n_nonzero >= record.n_weights // 2
    json.dumps(record.stats)


def test_conv_transpose_falls_back_to_round_to_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    node = helper.make_node("ConvTranspose", ["r", "w"], ["y"], strides=[2, 2])
    model = _graph(node, [rng.normal(size=(4, 3, 3, 3)).astype(np.float32)], [1, 4, 5, 5])
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=_inputs(rng, 8, (4, 5, 5)))
    api.compress(
        tmp_path / "m.onnx", tmp_path / "b.xorc", CompressOptions(bits=4), tmp_path / "calib.npz"
    )
    record = read_bytes(read_file(tmp_path / "b.xorc")).tensors[0]
    assert record.stats["reconstruction"] == {
        "method": "none",
        "reason": "ConvTranspose: reconstruction not supported",
    }


def test_options_need_calibration_data_and_one_kind_of_sparsity() -> None:
    with pytest.raises(UsageError, match="--prune obs needs --calib"):
        CompressOptions(prune="obs", sparsity=0.5).resolved(has_calib=False)
    with pytest.raises(UsageError, match="--reconstruct gptq needs --calib"):
        CompressOptions(reconstruct="gptq").resolved(has_calib=False)
    with pytest.raises(ConfigError, match="not both"):
        CompressOptions(sparsity=0.5, prune_pattern="2:4")
    with pytest.raises(ConfigError, match="prune_pattern"):
        CompressOptions(prune_pattern="4:4")
    auto = CompressOptions(sparsity=0.5).resolved(has_calib=True)
    assert (auto.reconstruct, auto.prune) == ("gptq", "obs")
    plain = CompressOptions(sparsity=0.5).resolved(has_calib=False)
    assert (plain.reconstruct, plain.prune) == ("synthetic", "magnitude")


def test_the_prior_h_correlates_kernel_taps_and_only_spatial_kernels_have_one() -> None:
    def weight(shape: tuple[int, ...], op: str = "Conv", index: int = 1) -> onnx_io.WeightInfo:
        array = np.ones(shape, np.float32)
        return onnx_io.WeightInfo("w", array, "FLOAT", [onnx_io.Consumer(op, "n", index)], axis=0)

    h = prior.prior_hessian(weight((8, 2, 3, 3)))
    assert h is not None and h.moment is not None and h.moment.shape == (1, 18, 18)
    m = h.moment[0]
    assert m[0, 0] == 1.0 and m[0, 1] == prior.RHO and m[0, 4] == prior.RHO**2  # (0,0)-(1,1)
    assert (m[:9, 9:] == 0).all() and np.allclose(m, m.T)  # input channels apart
    assert np.linalg.eigvalsh(m).min() > 0
    for shape, op in [((8, 4, 1, 1), "Conv"), ((8, 4, 3, 3), "ConvTranspose"), ((8, 4), "Gemm")]:
        assert prior.prior_hessian(weight(shape, op)) is None


def test_without_data_the_prior_rounds_kernels_better_on_smooth_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    model, shape = _model("depthwise", rng)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "eval.npz", x=_inputs(np.random.default_rng(99), 32, shape))
    cosines = {}
    for name in ("none", "auto"):
        blob = tmp_path / f"{name}.xorc"
        api.compress(tmp_path / "m.onnx", blob, CompressOptions(bits=3, reconstruct=name))
        report = api.verify(blob, tmp_path / "m.onnx", tmp_path / "eval.npz", max_drop=100.0)
        assert report.bit_exact and report.accuracy is not None
        cosines[name] = report.accuracy.output_cosine
        record = read_bytes(read_file(blob)).tensors[0]
        if name == "auto":
            assert record.stats["reconstruction"]["h"] == "prior"
            assert record.stats["reconstruction"]["method"] == "gptq"
        else:
            assert "reconstruction" not in record.stats
    assert cosines["auto"] > cosines["none"]


def test_the_statistics_pass_holds_one_small_batch_and_gives_the_same_h(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    model, shape = _model("gemm_transb", rng)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=_inputs(rng, 37, shape))
    source = onnx_io.load_model(tmp_path / "m.onnx")
    want = {"w": ((12, 16), 0)}
    whole = calibrate.input_stats(source, tmp_path / "calib.npz", hessians=want)["w"]
    seen: list[int] = []
    batches = runtime.batches

    def spy(*args: Any, **kwargs: Any) -> Iterator[list[np.ndarray]]:
        for out in batches(*args, **kwargs):
            seen.append(out[0].shape[0])
            yield out

    monkeypatch.setattr(runtime, "batches", spy)
    monkeypatch.setattr(calibrate, "STATS_BATCH_BYTES", 5 * 16 * 4)  # 5 samples' inputs
    small = calibrate.input_stats(source, tmp_path / "calib.npz", hessians=want)["w"]
    assert seen == [1, *[5] * 7, 1] and sum(seen) == 37
    assert small.hessian is not None and whole.hessian is not None
    assert small.hessian.n_samples == whole.hessian.n_samples == 37
    assert np.allclose(small.hessian.moment, whole.hessian.moment, rtol=1e-6)
    assert np.allclose(small.mean_square, whole.mean_square, rtol=1e-6)
