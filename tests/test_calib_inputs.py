"""Calibration and evaluation data for models whose inputs are not all float (runtime.load_data):
a bool mask input is read as bool; a bool array for a float input, or numbers for a bool input,
is a DataError naming the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from xorc import api, runtime
from xorc.config import CompressOptions
from xorc.errors import DataError


def _masked_model(path: Path) -> Path:
    """x [N, 16] float, mask [N, 16] bool -> MatMul(Where(mask, x, 0), w [16, 8])."""
    w = (np.random.default_rng(0).normal(size=(16, 8)) * 0.3).astype(np.float32)
    n = helper.make_node
    graph = helper.make_graph(
        [n("Where", ["mask", "x", "zero"], ["xm"]), n("MatMul", ["xm", "w"], ["y"])],
        "masked",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", 16]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(1, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _data(path: Path, mask: np.ndarray, seed: int) -> Path:
    x = np.random.default_rng(seed).normal(size=(64, 16)).astype(np.float32)
    np.savez(path, x=x, mask=mask)
    return path


def test_bool_mask_input_calibrates_and_verifies(tmp_path: Path) -> None:
    model = _masked_model(tmp_path / "m.onnx")
    mask = np.random.default_rng(1).random((64, 16)) > 0.3
    calib, test = _data(tmp_path / "c.npz", mask, 2), _data(tmp_path / "t.npz", mask, 3)
    blob = tmp_path / "m.xorc"
    summary = api.compress(model, blob, CompressOptions(policy="raw", bits=4), calib=calib)
    method = {t.name: t.stats["reconstruction"]["method"] for t in summary.tensors}
    assert method["w"] == "gptq", method
    report = api.verify(blob, model=model, data=test, max_drop=100.0)
    assert report.bit_exact and report.accuracy is not None
    assert report.accuracy.output_cosine > 0.98


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (np.ones((64, 16), np.int64), ("'mask'", "int64", "bool")),
        (np.ones((64, 16), np.float32), ("'mask'", "float32", "bool")),
    ],
)
def test_numbers_for_a_bool_input_are_refused(
    tmp_path: Path, mask: np.ndarray, words: tuple
) -> None:
    model = _masked_model(tmp_path / "m.onnx")
    data = _data(tmp_path / "c.npz", mask, 2)
    sess = runtime.session(model.read_bytes(), str(model))
    with pytest.raises(DataError) as err:
        runtime.load_data(data, sess)
    assert all(w in str(err.value) for w in words), str(err.value)
