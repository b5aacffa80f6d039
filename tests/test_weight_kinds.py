"""Every kind of weight real models have, end to end (issue 14): compress, verify bit-exact,
decompress, and the same outputs within the quantization error; int8/uint8 weights exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from weight_models import (
    embedding_block,
    qdq_uint8_conv,
    recurrent,
    weight_first_and_shape_ops,
    weight_only_int8,
)

from xorc import api, errors, runtime
from xorc.codecs import CodecId
from xorc.config import CompressOptions
from xorc.decode import decode_levels
from xorc.format import read_bytes, v1


def _run(model_bytes: bytes, feeds: dict) -> list[np.ndarray]:
    return runtime.session(model_bytes, "m").run(None, feeds)


def _round_trip(tmp_path: Path, model: onnx.ModelProto, options: CompressOptions):
    src = tmp_path / "m.onnx"
    onnx.save(model, src)
    summary = api.compress(src, tmp_path / "m.xorc", options)
    report = api.verify(tmp_path / "m.xorc")
    assert report.bit_exact
    back = api.decompress(tmp_path / "m.xorc", tmp_path / "back.onnx")
    return summary, src.read_bytes(), Path(back).read_bytes()


def _initializers(data: bytes) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(data).graph.initializer}


def _rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


FLOAT_MODELS = {
    "embedding_block": (embedding_block, {"emb", "wq", "wk", "wv", "wo", "w1", "w2", "pos"}),
    "bidirectional_lstm": (lambda: recurrent("LSTM", True), {"W", "R"}),
    "gru": (lambda: recurrent("GRU", False), {"W", "R"}),
    "weight_first_and_shape_ops": (weight_first_and_shape_ops, {"wa", "wt", "wr"}),
}


@pytest.mark.parametrize("name", sorted(FLOAT_MODELS))
def test_float_kinds_compress_and_give_the_same_outputs(tmp_path: Path, name: str) -> None:
    build, expected = FLOAT_MODELS[name]
    model, feeds = build()
    summary, src, back = _round_trip(tmp_path, model, CompressOptions(policy="all"))
    got = {t.name for t in summary.tensors}
    assert expected - {"pos"} <= got  # "pos" is an elementwise operand: left float
    assert "pos" not in got
    for a, b in zip(_run(src, feeds), _run(back, feeds), strict=True):
        assert _rel_error(a, b) < 0.03, name
    assert summary.totals()["share_compressed"] > 0.8


def test_axes_of_the_new_kinds(tmp_path: Path) -> None:
    cases = [
        (embedding_block()[0], {"emb": 0, "wq": 1, "w2": 1}),
        (recurrent("LSTM", True)[0], {"W": 1, "R": 1}),
        (weight_first_and_shape_ops()[0], {"wa": 0, "wt": 0, "wr": 2}),
    ]
    for model, axes in cases:
        onnx.save(model, tmp_path / "m.onnx")
        summary = api.compress(
            tmp_path / "m.onnx", tmp_path / "m.xorc", CompressOptions(policy="raw")
        )
        got = {t.name: t.axis for t in summary.tensors}
        assert {k: got[k] for k in axes} == axes


def test_recurrent_biases_stay_float_and_are_listed(tmp_path: Path) -> None:
    model, _ = recurrent("LSTM", True)
    onnx.save(model, tmp_path / "m.onnx")
    summary = api.compress(tmp_path / "m.onnx", tmp_path / "m.xorc", CompressOptions(policy="raw"))
    (group,) = summary.uncompressed()["groups"]
    assert group["largest"] == ["B"] and group["reason"] == "recurrent bias or initial state"
    t = summary.totals()
    assert t["uncompressed_params"] == 2 * 80 and t["n_weights"] == 2 * 40 * 12 + 2 * 40 * 10


@pytest.mark.parametrize("zero_point", [0, 5])
def test_weight_only_int8_is_stored_exactly(tmp_path: Path, zero_point: int) -> None:
    model, feeds = weight_only_int8(zero_point=zero_point)
    summary, src, back = _round_trip(tmp_path, model, CompressOptions(policy="all"))
    (rec,) = summary.tensors
    assert rec.dtype == "int8" and rec.stats["prequantized"]["mode"] == "lossless"
    np.testing.assert_array_equal(_initializers(back)["wq"], _initializers(src)["wq"])
    for a, b in zip(_run(src, feeds), _run(back, feeds), strict=True):
        np.testing.assert_array_equal(a, b)
    t = summary.totals()  # against its own bytes: 1 per weight
    assert t["original_bytes"] == rec.n_weights and t["fp32_bytes"] == 4 * rec.n_weights


def test_uint8_qdq_conv_is_stored_exactly_with_its_zero_points(tmp_path: Path) -> None:
    model, _ = qdq_uint8_conv()
    summary, src, back = _round_trip(tmp_path, model, CompressOptions(policy="ebpc"))
    (rec,) = summary.tensors
    assert rec.dtype == "uint8" and rec.axis == 0 and rec.offsets is not None
    assert list(rec.offsets) == [int(z) for z in _initializers(src)["wz"]]
    np.testing.assert_array_equal(_initializers(back)["wq"], _initializers(src)["wq"])
    data = (tmp_path / "m.xorc").read_bytes()
    assert v1.read_layout(data).required_flags & v1.INT_OFFSETS


@pytest.mark.parametrize("policy", ["raw", "all", "ebpc"])
def test_full_range_uint8_is_stored_exactly(tmp_path: Path, policy: str) -> None:
    model, feeds = qdq_uint8_conv(full_range=True)
    summary, src, back = _round_trip(tmp_path, model, CompressOptions(policy=policy))
    (rec,) = summary.tensors
    assert rec.codec == CodecId.RAW and rec.params["full_range"] is True and rec.axis is None
    assert rec.offsets == (128,) and rec.stats["prequantized"]["mode"] == "lossless"
    assert (policy == "raw") != ("fallback" in rec.stats)  # all / ebpc store it with raw
    data = (tmp_path / "m.xorc").read_bytes()
    assert v1.read_layout(data).required_flags & v1.FULL_RANGE
    assert int(decode_levels(read_bytes(data), rec).min()) == -128
    np.testing.assert_array_equal(_initializers(back)["wq"], _initializers(src)["wq"])
    for a, b in zip(_run(src, feeds), _run(back, feeds), strict=True):
        np.testing.assert_array_equal(a, b)


def test_full_range_requantized_at_8_bits_is_exact_and_below_is_not(tmp_path: Path) -> None:
    model, _ = qdq_uint8_conv(full_range=True)
    summary, src, back = _round_trip(tmp_path, model, CompressOptions(requantize=True))
    assert summary.tensors[0].stats["prequantized"]["mode"] == "lossless"
    np.testing.assert_array_equal(_initializers(back)["wq"], _initializers(src)["wq"])
    options = CompressOptions(policy="raw", bits=6, requantize=True)
    summary, src, back = _round_trip(tmp_path, model, options)
    assert summary.tensors[0].stats["prequantized"]["mode"] == "requantized"
    assert not summary.tensors[0].params.get("full_range")
    assert np.abs(_initializers(back)["wq"].astype(int) - _initializers(src)["wq"]).max() > 0


def test_full_range_in_different_channels_is_exact_per_channel(tmp_path: Path) -> None:
    model, _ = qdq_uint8_conv(full_range="channels")
    summary, src, back = _round_trip(tmp_path, model, CompressOptions(policy="all"))
    (rec,) = summary.tensors
    assert rec.axis is not None and rec.offsets is not None and len(rec.offsets) > 1
    np.testing.assert_array_equal(_initializers(back)["wq"], _initializers(src)["wq"])


def test_fewer_bits_on_int8_needs_requantize(tmp_path: Path) -> None:
    model, feeds = weight_only_int8()
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(errors.UnsupportedModel, match=r"'wq'.*--bits 4.*--requantize"):
        api.compress(tmp_path / "m.onnx", tmp_path / "m.xorc", CompressOptions(bits=4))
    assert not (tmp_path / "m.xorc").exists()
    options = CompressOptions(bits=4, requantize=True)
    summary, src, back = _round_trip(tmp_path, model, options)
    (rec,) = summary.tensors
    assert rec.bits == 4 and rec.stats["prequantized"] == {
        "source_dtype": "int8",
        "mode": "requantized",
        "bits": 4,
    }
    for a, b in zip(_run(src, feeds), _run(back, feeds), strict=True):
        assert _rel_error(a, b) < 0.2  # 4 bits


def test_cli_refusal_is_one_line_exit_5(tmp_path: Path, capsys) -> None:
    from click.testing import CliRunner

    from xorc.cli import cli

    model, _ = weight_only_int8()
    onnx.save(model, tmp_path / "m.onnx")
    result = CliRunner().invoke(cli, ["compress", str(tmp_path / "m.onnx"), "--bits", "4"])
    assert result.exit_code == 5
    assert "'wq'" in result.output and "Traceback" not in result.output
    ok = CliRunner().invoke(
        cli, ["compress", str(tmp_path / "m.onnx"), "--bits", "4", "--requantize", "--json"]
    )
    assert ok.exit_code == 0
    doc = json.loads(ok.stdout)
    assert doc["options"]["requantize"] is True and doc["totals"]["compression_ratio"] > 1


def test_datapath_counts_embedding_rows_and_recurrent_steps(tmp_path: Path) -> None:
    from dataclasses import replace

    from xorc import datapath
    from xorc.format import v1 as fmt

    onnx.save(embedding_block()[0], tmp_path / "e.onnx")
    api.compress(tmp_path / "e.onnx", tmp_path / "e.xorc", CompressOptions(policy="raw"))
    result, _ = api.simulate(tmp_path / "e.xorc")
    emb = next(t for t in result.tensors if t.name == "emb")
    assert emb.access["rows"] == 50 and emb.access["uncompressed_bytes_per_row"] == 16
    assert emb.access["dram_bytes_per_row"] == round(emb.counters.dram_bytes / 50, 2)
    assert next(t for t in result.tensors if t.name == "wq").access is None

    onnx.save(recurrent("LSTM", True, hidden=40)[0], tmp_path / "l.onnx")  # W: 3,840 int8
    api.compress(tmp_path / "l.onnx", tmp_path / "l.xorc", CompressOptions(policy="raw"))
    container = fmt.read((tmp_path / "l.xorc").read_bytes())
    big = datapath.simulate(container, datapath.load_config(None, None))
    small_sp = replace(datapath.load_config(None, None), sp_kib=1)
    small = datapath.simulate(container, small_sp)
    w_big = next(t for t in big.tensors if t.name == "W").access
    w_small = next(t for t in small.tensors if t.name == "W").access
    assert w_big["fits_on_chip"] and w_big["dram_bytes_per_step"] == 0
    assert not w_small["fits_on_chip"]
    assert (
        w_small["dram_bytes_per_step"]
        == next(t for t in small.tensors if t.name == "W").counters.dram_bytes
    )


def test_calibration_on_a_model_without_float_layers(tmp_path: Path) -> None:
    """--calib on a weight-only int8 model: no layer to calibrate, no error."""
    model, feeds = weight_only_int8()
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.concatenate([feeds["x"]] * 4))
    summary = api.compress(
        tmp_path / "m.onnx", tmp_path / "m.xorc", CompressOptions(), calib=tmp_path / "calib.npz"
    )
    assert [t.name for t in summary.tensors] == ["wq"]
