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
from xorc.variation import Tensor, Variation, column_gains, program, remap_columns, run_trials

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


def test_remap_rewrites_only_the_worst_columns_and_only_when_better() -> None:
    rng = np.random.default_rng(2)
    levels = rng.integers(-127, 128, size=(12, 20)).astype(np.int16)
    x = rng.normal(size=(300, 20))
    hess = Hessian((x.T @ x / 300)[None], 300)
    t = Tensor(0, levels, np.ones((12, 1), np.float32), 0, 8, np.dtype(np.float32), hess)
    cfg = get_preset("crossbar-128", {"cols": 4})  # 3 column blocks of 4 output channels
    var = Variation(0.0, stuck_at=0.05, spares=1)
    programmed = program(levels, 8, cfg, var, np.random.default_rng(0))
    out = remap_columns(t, programmed, cfg, var, np.random.default_rng(1))

    def err(v: np.ndarray) -> np.ndarray:
        d = v - levels
        return np.einsum("of,fg,og->o", d, hess.moment[0], d)

    changed = np.flatnonzero((out != programmed).any(axis=1))
    assert 1 <= changed.size <= 3 and len(set(changed // 4)) == changed.size  # one per block
    assert (err(out) <= err(programmed) + 1e-9).all() and err(out).sum() < err(programmed).sum()
    for o in changed:  # the rewritten column was its block's worst
        block = np.arange(4 * (o // 4), 4 * (o // 4) + 4)
        assert err(programmed)[o] == err(programmed)[block].max()
    assert remap_columns(t, programmed, cfg, Variation(0.0, spares=0), rng) is programmed


def test_modes_share_the_main_noise() -> None:
    levels = np.random.default_rng(3).integers(-50, 50, size=(6, 8)).astype(np.int16)
    t = Tensor(0, levels, np.ones((6, 1), np.float32), 0, 8, np.dtype(np.float32), None)
    seen: list[np.ndarray] = []
    cfg, var = get_preset("crossbar-128"), Variation(0.1, trials=2)
    for mode in ("none", "remap", True):  # without an H neither compensation changes a cell
        run_trials([t], lambda a: seen.append(a[0]) or 0.0, cfg, var, mode)
    np.testing.assert_array_equal(seen[0], seen[2])
    np.testing.assert_array_equal(seen[1], seen[3])
    np.testing.assert_array_equal(seen[0], seen[4])
    with pytest.raises(UsageError, match="--compensate"):
        run_trials([t], lambda a: 0.0, cfg, var, "spare")


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
    assert [r["compensation"] for r in runs] == ["none", "gain"]
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


def test_verify_variation_remap(digits: tuple[Path, Path, Path]) -> None:
    blob, calib, test = digits
    args = ["verify", str(blob), "--model", "sample_models/digits_mlp.onnx", "--accuracy",
            "--data", str(test), "--variation", "lognormal:0.3", "--trials", "2",
            "--stuck-at", "0.01", "--compensate", "remap", "--spare-columns", "4",
            "--calib", str(calib)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "compensated: remap" in result.output and "no compensation" in result.output
