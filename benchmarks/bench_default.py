"""The default compress without calibration data: round to nearest, the prior H, synthetic H.

Every sample model is compressed with the default options and no `--calib`, three times in one
run:

* `rtn`: `--reconstruct none` (round to nearest, the default until the prior);
* `prior`: `--reconstruct prior` (convolution kernels rounded by GPTQ on the data-free prior H
  of xorc/prior.py; every other weight rounds to nearest);
* `synthetic`: the default (`--reconstruct synthetic`: kernels on the prior as above, and the
  1x1 Conv, Gemm and MatMul weights by GPTQ on the H of synthetic inputs, xorc/selfcalib.py);

and `verify --accuracy` measures each blob on the model's held-out data (photos.npz for
EfficientNet-Lite0, the test sets of the others): output cosine, top-1 (accuracy with labels,
agreement with the original without), the drop in points, and whether `verify`'s default gate
(a drop of at most 1.0 point) passes. `--bits 4` rows show the prior at low bits too.

    python benchmarks/bench_default.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
MODELS = [  # (model, held-out data)
    ("digits_mlp.onnx", "digits_test.npz"),
    ("fashion_cnn.onnx", "fashion_test.npz"),
    ("fashion_cnn_sparse.onnx", "fashion_test.npz"),
    ("efficientnet_lite0.onnx", "photos.npz"),
]
SETTINGS = [("8-bit (default)", []), ("4-bit", ["--bits", "4"])]
METHODS = {"rtn": ["--reconstruct", "none"], "prior": ["--reconstruct", "prior"], "synthetic": []}
DEFAULT_GATE_PP = 1.0


def _xorc(args: list[str]) -> dict:
    """`python -m xorc ARGS --json` in a child; its JSON (exit 3, a failed gate, is data)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "xorc", *args, "--json"], capture_output=True, env=env, check=False
    )
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"xorc {' '.join(args)} failed: {proc.stderr.decode()[-400:]}")
    return json.loads(proc.stdout)


def measure(model: Path, data: Path, flags: list[str], blob: Path) -> dict:
    """Compress without data, then verify on the held-out data."""
    summary = _xorc(["compress", str(model), "-o", str(blob), *flags])
    check = ["verify", str(blob), "--model", str(model), "--accuracy", "--data", str(data)]
    acc = _xorc([*check, "--max-drop", "100", "--decoder", "reference"])["accuracy"]
    return {
        "bits_per_weight": summary["totals"]["bits_per_weight"],
        "cosine": acc["output_cosine"],
        "top1": acc.get("top1_agreement", acc.get("compressed")),
        "metric": acc["metric"],
        "drop_pp": acc["drop_pp"],
        "n": acc["n_samples"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8-bit rows only")
    args = parser.parse_args()
    settings = SETTINGS[:1] if args.quick else SETTINGS
    print(
        "| model | setting | method | bits/w | output cosine | top-1 % (metric, n) | drop pp "
        "| default gate |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model, data in MODELS:
            for label, flags in settings:
                for method, extra in METHODS.items():
                    blob = Path(tmp) / "m.xorc"
                    r = measure(SAMPLES / model, SAMPLES / data, flags + extra, blob)
                    gate = "pass" if r["drop_pp"] <= DEFAULT_GATE_PP else "FAIL"
                    print(
                        f"| {model} | {label} | {method} | {r['bits_per_weight']:.3f} "
                        f"| {r['cosine']:.4f} | {r['top1']} ({r['metric']}, {r['n']}) "
                        f"| {r['drop_pp']} | {gate} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
