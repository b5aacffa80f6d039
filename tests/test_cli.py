"""The command line: exit codes, JSON purity, help, atomic output, one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOLDEN

from xorc.cli import cli

MALFORMED = GOLDEN / "malformed"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0 and "Usage:" in out and cli.commands[command].help


def test_compress_inspect_verify_decompress(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    blob = tmp_path / "t.xorc"
    code, out, _ = run("compress", tiny_model, "-o", blob, "--policy", "raw", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["format_version"] == "1.1"
    assert {
        "name",
        "shape",
        "codec",
        "policy",
        "bits",
        "sparsity",
        "n_weights",
        "payload_bytes",
        "bits_per_weight",
    } <= set(doc["tensors"][0])
    assert {
        "original_bytes",
        "blob_bytes",
        "weight_payload_bytes",
        "bits_per_weight",
        "compression_ratio",
    } <= set(doc["totals"])
    code, out, _ = run("inspect", blob, "--json")
    assert code == 0 and json.loads(out)["tensors"] == doc["tensors"]
    code, out, _ = run(
        "verify",
        blob,
        "--model",
        tiny_model,
        "--accuracy",
        "--data",
        tiny_data,
        "--max-drop",
        "10",
        "--json",
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["bit_exact"] is True and report["passed"] is True
    assert report["accuracy"]["metric"] == "agreement"
    assert set(report["accuracy"]) >= {"metric", "original", "compressed", "drop_pp", "n_samples"}
    code, out, _ = run("decompress", blob, "-o", tmp_path / "back.onnx")
    assert code == 0 and (tmp_path / "back.onnx").exists()


def test_verify_gate_fails_with_exit_3(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    blob = tmp_path / "t.xorc"
    assert run("compress", tiny_model, "-o", blob, "--policy", "raw", "--bits", "2")[0] == 0
    code, out, _ = run(
        "verify", blob, "--model", tiny_model, "--data", tiny_data, "--max-drop", "0", "--json"
    )
    report = json.loads(out)
    assert code == 3 and report["passed"] is False and report["accuracy"]["drop_pp"] > 0


@pytest.mark.parametrize("name", sorted(p.name for p in MALFORMED.glob("*.xorc")))
def test_corrupt_blob_exits_4_with_one_line(name: str) -> None:
    code, _, err = run("verify", MALFORMED / name)
    assert code == 4, err
    assert err.count("\n") == 1 and err.startswith("xorc: error:") and "Traceback" not in err


def test_inspect_names_the_damaged_section() -> None:
    code, out, err = run("inspect", MALFORMED / "payload_bit_flip.xorc", "--json")
    assert code == 4
    doc = json.loads(out)
    assert doc["integrity_ok"] is False
    assert any("PAYLOAD" in d for d in doc["damaged"])
    assert "PAYLOAD" in err


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["compress", "missing.onnx"], 5),
        (["compress", "{model}", "--bits", "9"], 2),
        (["compress", "{model}", "--policy", "nope"], 2),
        (["compress", "{model}", "--config", "missing.toml"], 2),
        (["compress", "{model}", "-o", "{model}"], 2),
        (["verify", "missing.xorc"], 2),
        (["verify", "{blob}", "--accuracy"], 2),
        (["verify", "{blob}", "--data", "{data}"], 2),
        (["nosuchcommand"], 2),
        (["compress", "{model}", "--no-such-flag"], 2),
        (["inspect"], 2),
    ],
)
def test_usage_errors(
    args: list[str], code: int, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    blob = tmp_path / "t.xorc"
    run("compress", tiny_model, "-o", blob, "--policy", "raw")
    fill = {"model": str(tiny_model), "blob": str(blob), "data": str(tiny_data)}
    got, _, err = run(*[a.format(**fill) for a in args])
    assert got == code, err
    assert "Traceback" not in err
    assert err.startswith("xorc: error: ") and len(err.strip().splitlines()) == 1, err


def test_not_onnx_exits_5_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    code, _, err = run("compress", bad, "-o", tmp_path / "out.xorc")
    assert code == 5 and "bad.onnx" in err
    assert list(tmp_path.iterdir()) == [bad]


def test_bad_config_names_the_key(tiny_model: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text('bits = 8\n[[layer]]\nmatch = "w*"\nbitz = 4\n')
    code, _, err = run("compress", tiny_model, "--config", cfg)
    assert code == 2 and "bitz" in err


def test_compress_is_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.xorc", tmp_path / "b.xorc"
    for out in (a, b):
        assert (
            run("compress", tiny_model, "-o", out, "--policy", "raw", "--sparsity", "0.5")[0] == 0
        )
    assert a.read_bytes() == b.read_bytes()


def test_real_subprocess_json_only_on_stdout(tiny_model: Path, tmp_path: Path) -> None:
    blob = tmp_path / "t.xorc"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xorc",
            "compress",
            str(tiny_model),
            "-o",
            str(blob),
            "--policy",
            "raw",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["blob_bytes"] == blob.stat().st_size
    proc = subprocess.run(
        [sys.executable, "-m", "xorc", "inspect", str(tmp_path / "nope.xorc")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("policy", ["all", "importance", "dictionary", "raw"])
def test_verify_with_each_decoder(policy: str, tiny_model: Path, tmp_path: Path) -> None:
    blob = tmp_path / "t.xorc"
    extra = ["--error-budget", "4"] if policy == "importance" else []
    assert run("compress", tiny_model, "-o", blob, "--policy", policy, *extra)[0] == 0
    for decoder, expected in [
        ("reference", ["reference"]),
        ("datapath", ["datapath"]),
        ("both", ["reference", "datapath"]),
    ]:
        code, out, err = run("verify", blob, "--decoder", decoder, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["decoders"] == expected and report["bit_exact"]


def test_simulate(tiny_model: Path, tmp_path: Path) -> None:
    blob = tmp_path / "t.xorc"
    assert run("compress", tiny_model, "-o", blob)[0] == 0
    code, out, _ = run("simulate", blob, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["simulation"]["totals"]["bit_exact"] is True
    assert doc["area"]
    code, out, _ = run("simulate", blob)
    assert code == 0 and "MAC array" in out
    code, _, err = run("simulate", blob, "--preset", "no-such-preset")
    assert code == 2 and "no-such-preset" in err


@pytest.mark.parametrize("policy", ["all", "importance", "dictionary", "ebpc", "raw"])
def test_every_policy_is_deterministic_across_processes(
    policy: str, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    blobs = []
    for i, seed in enumerate(("0", "12345")):  # different hash seeds, same bytes
        out = tmp_path / f"{i}.xorc"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "xorc",
                "compress",
                str(tiny_model),
                "-o",
                str(out),
                "--policy",
                policy,
                "--calib",
                str(tiny_data),
                "--error-budget",
                "2",
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert proc.returncode == 0, proc.stderr
        blobs.append(out.read_bytes())
    assert blobs[0] == blobs[1]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--policy", "raw", "--max-bits-per-weight", "4"], "needs --calib"),
        (["--policy", "dictionary", "--max-bits-per-weight", "4", "--max-drop", "1"], "not both"),
    ],
)
def test_size_target_usage_errors(
    tiny_model: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    out = tmp_path / "t.xorc"
    code, _, err = run("compress", tiny_model, "-o", out, *flags)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_unreachable_size_target_warns(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.xorc"
    code, stdout, err = run(
        "compress", tiny_model, "-o", out, "--policy", "dictionary", "--max-bits-per-weight",
        "0.01", "--json",
    )  # fmt: skip
    assert code == 0 and out.exists()
    assert json.loads(stdout)["search"]["met"] is False
    assert "warning: --max-bits-per-weight: the smallest blob" in err
