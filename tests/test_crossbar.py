"""The crossbar target (docs/crossbar.md §2): presets, the mapper's counts on hand-checked
cases, `xorc simulate --preset crossbar-*` on a real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xorc import api
from xorc.cli import cli
from xorc.config import CompressOptions
from xorc.datapath import crossbar
from xorc.errors import ConfigError


def test_mapper_counts_a_hand_checked_layer() -> None:
    cfg = crossbar.get_preset("crossbar-128", {"rows": 8, "cols": 2})
    w = np.ones((4, 3, 2, 2), np.int16)  # Co 4, Ci 3, 2x2 kernel: a 12 x 4 matrix
    w[0:2, 0] = 0  # input channel 0 (rows 0-3) pruned in column block 0
    w[2:4, 2] = 0  # input channel 2 (rows 8-11) pruned in column block 1
    m = crossbar.map_layer("w", "Conv", w, 0, 4, 1, 5, cfg)
    assert (m.matrix, m.slices, m.tiles_dense, m.tiles_used) == ((12, 4), 2, 4, 2)
    assert (m.crossbars_dense, m.crossbars_used) == (16, 8)  # 2 slices x 2 (differential)
    assert m.adc_dense == 2 * 4 * 8 * 2 * 5 and m.adc_used == (2 + 2) * 8 * 2 * 5
    assert m.utilisation == pytest.approx(32 / (2 * 8 * 2))


def test_unroll_groups_and_matrix_orientation() -> None:
    w = np.arange(4 * 2 * 3 * 3).reshape(4, 2, 3, 3)
    mats = crossbar.unroll(w, 0, groups=2)
    assert [m.shape for m in mats] == [(18, 2), (18, 2)]
    np.testing.assert_array_equal(mats[1][:, 0], w[2].ravel())
    gemm = np.arange(6).reshape(2, 3)  # Gemm B without transB: [K, N], output axis 1
    np.testing.assert_array_equal(crossbar.unroll(gemm, 1)[0], gemm)


def test_presets_and_bad_options() -> None:
    assert crossbar.get_preset("crossbar-128").adc_bits_lossless == 10
    assert crossbar.get_preset("crossbar-64-slc").slices(8) == 7
    with pytest.raises(ConfigError, match="rows"):
        crossbar.get_preset("crossbar-128", {"rows": 0})
    with pytest.raises(ConfigError, match="unknown crossbar option"):
        crossbar.get_preset("crossbar-128", {"dim": 4})
    with pytest.raises(ConfigError, match="unknown crossbar preset"):
        crossbar.get_preset("crossbar-7")


def test_simulate_crossbar_on_fashion_cnn(tmp_path: Path) -> None:
    blob = tmp_path / "f.xorc"
    api.compress("sample_models/fashion_cnn.onnx", blob, CompressOptions(scale_dtype="pow2"))
    toml = tmp_path / "x.toml"
    toml.write_text('preset = "crossbar-128"\ncell_bits = 1\n')
    result = CliRunner().invoke(
        cli, ["simulate", str(blob), "--preset", "crossbar-128", "--config", str(toml), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["crossbar"]
    fc1 = next(layer for layer in doc["layers"] if layer["name"] == "fc1.weight")
    assert fc1["matrix"] == [3136, 128] and fc1["tiles_dense"] == 25 and fc1["slices"] == 7
    assert fc1["positions"] == 1 and doc["totals"]["tiles_dense"] == 30
    conv2 = next(layer for layer in doc["layers"] if layer["name"] == "conv2.weight")
    assert conv2["positions"] == 14 * 14  # a 14x14 output map
    text = CliRunner().invoke(cli, ["simulate", str(blob), "--preset", "crossbar-256"])
    assert text.exit_code == 0 and "crossbars (area proxy)" in text.output
