"""Device variation on the crossbar (docs/crossbar.md §4): the bit-sliced write model, the
column-gain compensation, `xorc verify --variation` on a real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xorc import api
from xorc.cli import cli
from xorc.config import CompressOptions
from xorc.datapath.crossbar import get_preset
from xorc.errors import UsageError
from xorc.hessian import Hessian
from xorc.variation import Variation, column_gains, program

levels_8 = hnp.arrays(np.int16, st.tuples(st.integers(1, 5), st.integers(1, 7)),
                      elements=st.integers(-127, 127))  # fmt: skip


@given(levels_8, st.integers(1, 8), st.booleans())
def test_noiseless_write_is_exact(levels: np.ndarray, cell_bits: int, differential: bool) -> None:
    cfg = get_preset("crossbar-128", {"cell_bits": cell_bits, "differential": differential})
    out = program(levels, 8, cfg, Variation(0.0), np.random.default_rng(0))
    np.testing.assert_array_equal(out, levels)


def test_noise_is_multiplicative_per_cell_and_seeded() -> None:
    cfg = get_preset("crossbar-128")
    levels = np.array([[0, 1, -5, 127]], np.int16)
    a = program(levels, 8, cfg, Variation(0.2), np.random.default_rng([3, 0]))
    b = program(levels, 8, cfg, Variation(0.2), np.random.default_rng([3, 0]))
    np.testing.assert_array_equal(a, b)
    assert a[0, 0] == 0 and a[0, 1] > 0 and a[0, 2] < 0 and a[0, 3] != 127  # 0 stays 0
    stuck = program(levels, 8, cfg, Variation(0.0, stuck_at=1.0), np.random.default_rng(1))
    top = 3 * (1 + 4 + 16 + 64)  # every cell of 4 slices at 0 or 3: a multiple of the slices
    assert (np.abs(stuck) <= top).all() and not np.array_equal(stuck, levels)


def test_column_gain_undoes_a_gain_error() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 6))
    x = rng.normal(size=(200, 6))
    hess = Hessian((x.T @ x / 200)[None], 200)
    gains = column_gains(w, w * np.array([1.1, 0.9, 1.0, 2.0])[:, None], 0, hess)
    assert gains is not None
    np.testing.assert_allclose(gains, [1 / 1.1, 1 / 0.9, 1.0, 0.5])


def test_variation_option_is_checked() -> None:
    assert Variation.parse("lognormal:0.1", 0.01, 5).sigma == 0.1
    for bad in ("gauss:0.1", "lognormal:x", "lognormal:-1"):
        with pytest.raises(UsageError, match="lognormal"):
            Variation.parse(bad)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("variation")
    data = np.load("sample_models/digits_test.npz")
    calib, test = folder / "calib.npz", folder / "test.npz"
    np.savez(calib, input=data["input"][:270])  # calibration is never the evaluation data
    np.savez(test, input=data["input"][270:], labels=data["labels"][270:])
    blob = folder / "d.xorc"
    api.compress("sample_models/digits_mlp.onnx", blob, CompressOptions(scale_dtype="pow2"))
    return blob, calib, test


def test_verify_variation_json(digits: tuple[Path, Path, Path]) -> None:
    blob, calib, test = digits
    args = ["verify", str(blob), "--model", "sample_models/digits_mlp.onnx", "--accuracy",
            "--data", str(test), "--variation", "lognormal:0.3", "--trials", "3",
            "--compensate", "--calib", str(calib), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["variation"]
    assert [r["compensate"] for r in runs] == [False, True]
    assert all(len(r["accuracies"]) == 3 and r["sigma"] == 0.3 for r in runs)
    again = json.loads(CliRunner().invoke(cli, args).stdout)["variation"]
    assert again == runs  # deterministic seeds
    noiseless = json.loads(result.stdout)["accuracy"]["compressed"]
    assert runs[0]["accuracy_mean"] <= noiseless + 2


def test_verify_variation_needs_calib_to_compensate(digits: tuple[Path, Path, Path]) -> None:
    blob, _, test = digits
    args = ["verify", str(blob), "--model", "sample_models/digits_mlp.onnx", "--accuracy",
            "--data", str(test), "--variation", "lognormal:0.1", "--compensate"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--calib" in result.stderr
