"""ONNX in and out: where weights live, external data, quantized models, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from models import constant_and_if, quantized_matmul, tiny_cnn
from onnx import numpy_helper

from xorc import api, errors, onnx_io, runtime
from xorc.config import CompressOptions


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def test_finds_initializers_constants_and_subgraph_weights(tmp_path: Path) -> None:
    path = save(constant_and_if(), tmp_path / "m.onnx")
    weights = {w.name: w for w in onnx_io.find_weights(onnx_io.load_model(path))}
    assert {"wc", "then_w", "else_w"} <= {n for n, w in weights.items() if w.compressible}
    assert weights["wc"].kind == "constant"
    assert weights["then_w"].graph.startswith("main/branch.then_branch")
    assert weights["else_w"].kind == "constant"
    assert not weights["zero"].compressible


def test_subgraph_and_constant_model_round_trips(tmp_path: Path) -> None:
    path = save(constant_and_if(), tmp_path / "m.onnx")
    summary = api.compress(path, tmp_path / "m.xorc", CompressOptions(policy="raw"))
    assert {t.name for t in summary.tensors} == {"wc", "then_w", "else_w"}
    out = api.decompress(tmp_path / "m.xorc", tmp_path / "back.onnx")
    onnx.checker.check_model(onnx.load(out))
    x = np.ones((1, 6), np.float32)
    for path_ in (path, out):
        sess = runtime.session(Path(path_).read_bytes(), "m")
        y = sess.run(None, {"x": x})[0]
        assert y.shape == (1, 3)


def test_channel_axes() -> None:
    weights = {w.name: w for w in onnx_io.find_weights(onnx_io.SourceModel(tiny_cnn(), "", "t"))}
    assert weights["w1"].axis == 0  # Conv [out, in, kh, kw]
    assert weights["w2"].axis == 1  # MatMul B [in, out]
    assert weights["w3"].axis == 0  # Gemm transB=1 [out, in]
    assert not weights["b3"].compressible  # a bias is not a weight input


def test_external_data_is_read(tmp_path: Path) -> None:
    model = tiny_cnn()
    onnx.save(
        model,
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.bin",
        size_threshold=0,
    )
    loaded = onnx_io.load_model(tmp_path / "ext.onnx")
    got = {w.name: w.array for w in onnx_io.find_weights(loaded)}
    for init in tiny_cnn().graph.initializer:  # save() turned `model` into references
        np.testing.assert_array_equal(got[init.name], numpy_helper.to_array(init))


@pytest.mark.parametrize(
    "location", ["/etc/passwd", "../outside.bin", "sub/../../x.bin", "missing.bin"]
)
def test_unsafe_or_missing_external_data_is_refused(tmp_path: Path, location: str) -> None:
    model = tiny_cnn()
    onnx.save(
        model,
        tmp_path / "ext.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.bin",
        size_threshold=0,
    )
    proto = onnx.load(tmp_path / "ext.onnx", load_external_data=False)
    for init in proto.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, tmp_path / "bad.onnx")
    with pytest.raises(errors.ExternalDataError, match="external data"):
        onnx_io.load_model(tmp_path / "bad.onnx")


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all", b"\x08\x07" * 50])
def test_not_onnx(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.onnx").write_bytes(content)
    with pytest.raises(errors.NotOnnx, match=r"x\.onnx"):
        onnx_io.load_model(tmp_path / "x.onnx")


def test_prequantized_weights_are_kept_exact(tmp_path: Path) -> None:
    path = save(quantized_matmul(), tmp_path / "q.onnx")
    summary = api.compress(path, tmp_path / "q.xorc", CompressOptions(policy="raw"))
    (record,) = summary.tensors
    assert record.dtype == "int8" and record.bits == 8
    out = api.decompress(tmp_path / "q.xorc", tmp_path / "q2.onnx")
    back = {i.name: numpy_helper.to_array(i) for i in onnx.load(out).graph.initializer}
    orig = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    np.testing.assert_array_equal(back["wq"], orig["wq"])


def test_prequantized_with_lossy_policy_is_refused(tmp_path: Path) -> None:
    path = save(quantized_matmul(), tmp_path / "q.onnx")
    with pytest.raises(errors.UnsupportedModel, match="already quantized"):
        api.compress(path, tmp_path / "q.xorc", CompressOptions(policy="importance"))


def test_prequantized_with_asymmetric_zero_point_is_kept_exact(tmp_path: Path) -> None:
    path = save(quantized_matmul(zero_point=3), tmp_path / "q.onnx")
    api.compress(path, tmp_path / "q.xorc", CompressOptions(policy="raw"))
    out = api.decompress(tmp_path / "q.xorc", tmp_path / "q2.onnx")
    back = {i.name: numpy_helper.to_array(i) for i in onnx.load(out).graph.initializer}
    orig = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    np.testing.assert_array_equal(back["wq"], orig["wq"])
