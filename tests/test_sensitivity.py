"""Sensitivity analysis and per-layer mixed precision (docs/sensitivity.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from xorc import api, mixed, onnx_io, runtime, sensitivity
from xorc.cli import cli
from xorc.config import CompressOptions
from xorc.sensitivity import Point, Setting
from xorc.suffix import SuffixRunner

GRID = {"bits": (2, 4, 8), "sparsity": (0.0, 0.5)}


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def two_branch(gain: float = 0.01) -> onnx.ModelProto:
    """y = x @ A + gain * (x @ B): A matters, B hardly does; same shapes and weights."""
    r = np.random.default_rng(3)
    a = r.normal(size=(16, 16)).astype(np.float32)
    b = a[::-1].copy()
    nodes = [
        helper.make_node("MatMul", ["x", "A"], ["ha"], name="fa"),
        helper.make_node("MatMul", ["x", "B"], ["hb"], name="fb"),
        helper.make_node("Mul", ["hb", "g"], ["hg"], name="gain"),
        helper.make_node("Add", ["ha", "hg"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_branch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
        [
            numpy_helper.from_array(a, "A"),
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(np.array(gain, np.float32), "g"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def branch_files(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "branch.onnx"
    onnx.save(two_branch(), model)
    data = tmp_path / "branch.npz"
    np.savez(data, x=np.random.default_rng(4).normal(size=(64, 16)).astype(np.float32))
    return model, data


def test_every_layer_at_every_setting(tiny_model: Path, tiny_data: Path) -> None:
    a = sensitivity.analyze(tiny_model, tiny_data, CompressOptions(policy="raw"), **GRID)
    assert [ly.name for ly in a.layers] == ["w1", "w2", "w3"]
    assert a.outputs == ["y"] and a.samples == sensitivity.SAMPLES
    for ly in a.layers:
        labels = [p.setting.label for p in ly.points]
        assert labels == ["float", "8b", "4b", "2b", "8b/s0.5", "4b/s0.5", "2b/s0.5"]
        assert ly.points[0].nsr == 0 and ly.points[0].bits_per_weight == 32.0
        dense = [ly.at(Setting(b)) for b in (8, 4, 2)]
        assert dense[0].nsr < dense[1].nsr < dense[2].nsr  # fewer bits, more error
        assert dense[0].bits_per_weight > dense[1].bits_per_weight > dense[2].bits_per_weight
        assert dense[0].cosine["y"] > 0.999
    doc = json.loads(json.dumps(a.to_json(), allow_nan=False))
    assert {ly["name"] for ly in doc["layers"]} == {"w1", "w2", "w3"}


def test_suffix_trial_equals_a_full_run(tiny_model: Path, tiny_data: Path) -> None:
    """The suffix session with a weight as input gives what the whole model gives with that
    weight substituted, and the original weight gives the original outputs exactly."""
    model = onnx_io.load_model(tiny_model)
    runner = SuffixRunner(model, tiny_data, 16, [["w2"], ["w3", "b3"]])
    for names in (["w2"], ["w3", "b3"]):
        suffix = runner.session_for(names)
        cos, sqnr, nsr = runner.errors(suffix, names, {})
        assert nsr == 0.0 and sqnr["y"] is None and cos["y"] == 1.0
    w2 = onnx_io.initializer(model, "w2")
    changed = np.round(w2 * 8) / 8
    _, sqnr, nsr = runner.errors(runner.session_for(["w2"]), ["w2"], {"w2": changed})
    sess = runtime.session(onnx_io.substitute(model, {"w2": changed}), "m")
    ref = runtime.session(onnx_io.serialize(model), "m")
    data = runtime.load_data(tiny_data, ref).take(16)
    (y0,) = runtime.run(ref, data)
    (y1,) = runtime.run(sess, data)
    want = float(np.sum((y0 - y1) ** 2.0) / np.sum(y0**2.0))
    assert nsr == pytest.approx(want, rel=1e-4)


def _points(pairs: list[tuple[int, float]]) -> list[Point]:
    return [Point(Setting(8), size, 8.0, {}, {}, nsr) for size, nsr in pairs]


def test_hull_skips_points_above_the_lower_hull() -> None:
    pts = _points([(100, 0.0), (80, 0.5), (60, 0.1), (40, 0.3), (20, 2.0), (10, 9.0)])
    assert mixed.hull(pts) == [0, 2, 3, 4, 5]  # (80, 0.5) lies above the hull


def test_greedy_path_takes_the_cheapest_saving_first() -> None:
    cheap = _points([(100, 0.0), (50, 0.01), (25, 0.5)])
    dear = _points([(100, 0.0), (50, 0.4)])
    start, steps = mixed.greedy_path([cheap, dear])
    assert start == [0, 0]
    assert [(s.layer, s.point) for s in steps] == [(0, 1), (1, 1), (0, 2)]
    assert [s.slope for s in steps] == sorted(s.slope for s in steps)
    assert mixed.state(start, steps, 2) == [1, 1]


def test_size_target_gives_the_sensitive_layer_more_bits(
    branch_files: tuple[Path, Path], tmp_path: Path
) -> None:
    model, data = branch_files
    out = tmp_path / "b.xorc"
    options = CompressOptions(policy="raw", max_bits_per_weight=5.0)
    summary = api.compress(model, out, options, calib=data)
    bits = {t.name: t.bits for t in summary.tensors}
    assert bits["A"] > bits["B"]
    totals = summary.totals()
    search = summary.meta["search"]
    assert totals["bits_per_weight"] <= 5.0
    assert search["payload_bytes"] == totals["weight_payload_bytes"]
    assert search["knob"] == "per_layer" and search["met"] is True
    trials = search["trials"]  # the per-layer choice, confirmed against the uniform ones
    assert trials[0]["choice"] == "per_layer" and len(trials) > 1
    assert all(t["payload_bytes"] <= search["max_payload_bytes"] for t in trials)
    assert search["chosen"] == max(trials, key=lambda t: t["cosine"])["choice"] == "per_layer"
    assert search["layers"]["A"]["bits"] == bits["A"]
    record = {t.name: t.stats for t in summary.tensors}
    assert record["B"]["per_layer"] == search["layers"]["B"]
    for name in ("A", "B"):  # the reconstruction of the chosen setting, not of the global one
        pruned = search["layers"][name]["sparsity"] > 0
        assert record[name]["reconstruction"]["method"] == "gptq"
        assert record[name]["reconstruction"]["prune"] == ("obs" if pruned else None)
    again = tmp_path / "c.xorc"
    api.compress(model, again, options, calib=data)
    assert out.read_bytes() == again.read_bytes()  # deterministic


def test_max_drop_zero_keeps_the_sensitive_layer_in_float(
    branch_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """No drop allowed on agreement: whatever the path, the measured drop is 0, and a layer
    whose error moves the top-1 stays float (it is found, not configured)."""
    model, data = branch_files
    out = tmp_path / "b.xorc"
    summary = api.compress(model, out, CompressOptions(policy="all", max_drop=0.0), calib=data)
    search = summary.meta["search"]
    assert search["goal"] == "drop" and search["drop_pp"] == 0.0
    report = api.verify(out, model=model, data=data, max_drop=0.0)
    assert report.accuracy is not None and report.accuracy.drop_pp == 0.0
    chosen = search["layers"]
    assert chosen["B"]["bits"] is not None  # the insensitive layer is compressed
    a_bits = chosen["A"]["bits"]
    assert a_bits is None or a_bits >= chosen["B"]["bits"]


def test_analyze_cli_json_and_table(tiny_model: Path, tiny_data: Path) -> None:
    code, out, err = run(
        "analyze", tiny_model, "--calib", tiny_data, "--bits-grid", "2,4,8",
        "--sparsity-grid", "0,0.5", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema_version"] == 1
    layers = doc["analysis"]["layers"]
    nsr4 = [next(s["nsr"] for s in ly["settings"] if s["bits"] == 4 and not s["sparsity"])
            for ly in layers]  # fmt: skip
    assert nsr4 == sorted(nsr4, reverse=True)  # most sensitive first
    assert doc["chosen"]["bits_per_weight"] <= 4.0
    code, out, err = run("analyze", tiny_model, "--calib", tiny_data, "--bits-grid", "4,8",
                         "--sparsity-grid", "0")  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].split()[:4] == ["#", "layer", "op", "weights"]
    assert len([line for line in out.splitlines() if line[:3].strip().isdigit()]) == 3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--policy", "importance"], "Invalid value for '--policy'"),
        (["--bits-grid", "4,9"], "bits must be integers in [2, 8]"),
        (["--sparsity-grid", "x"], "--sparsity-grid must be a comma-separated list"),
    ],
)
def test_analyze_usage_errors(
    tiny_model: Path, tiny_data: Path, flags: list[str], message: str
) -> None:
    code, _, err = run("analyze", tiny_model, "--calib", tiny_data, *flags)
    assert code == 2 and message in err and err.count("\n") == 1


def test_per_layer_size_target_needs_calibration(tiny_model: Path, tmp_path: Path) -> None:
    code, _, err = run("compress", tiny_model, "-o", tmp_path / "t.xorc", "--policy", "raw",
                       "--max-bits-per-weight", "4")  # fmt: skip
    assert code == 2 and "needs --calib" in err


def test_defaults_agree() -> None:
    """api.analyze and the analyze command default to the documented grid and sample count."""
    import inspect

    params = inspect.signature(api.analyze).parameters
    assert params["bits"].default == sensitivity.BITS_GRID
    assert params["sparsity"].default == sensitivity.SPARSITY_GRID
    assert params["samples"].default == sensitivity.SAMPLES
    from xorc.cli_analyze import analyze

    opts = {p.name: p.default for p in analyze.params}
    assert opts["bits_grid"] == ",".join(map(str, sensitivity.BITS_GRID))
    assert [float(s) for s in opts["sparsity_grid"].split(",")] == list(sensitivity.SPARSITY_GRID)
    assert opts["samples"] == sensitivity.SAMPLES


def test_fill_spends_what_a_big_step_leaves() -> None:
    """The path's step from 100 to 20 bytes overshoots a budget of 140 for both layers; the
    fill moves the layer that gains most back up as far as the budget allows."""
    big = _points([(100, 0.0), (60, 0.2), (20, 0.3)])
    small = _points([(100, 0.0), (50, 0.01)])
    assert mixed.fill([big, small], [2, 1], 140 - 70) == [1, 1]
    assert mixed.fill([big, small], [2, 1], 150 - 70) == [0, 1]
    assert mixed.fill([big, small], [2, 1], 10) == [2, 1]
