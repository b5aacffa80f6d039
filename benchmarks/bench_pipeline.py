"""Benchmark: compress and verify every sample model; time, peak memory, size, accuracy.

    python benchmarks/bench_pipeline.py [--policies all,raw] [--models fashion_cnn_sparse,...]
                                        [--max-bits-per-weight B] [--kinds-only]

Each run is a fresh child process, so the peak resident memory (ru_maxrss) is that run's own.
With calibration data, compress gets --calib (bias correction; importance weights), and the
policies importance and dictionary search the smallest blob within the model's --max-drop on
the calibration data (MODELS below), or, with --max-bits-per-weight, the most accurate blob of
at most B bits per weight; accuracy is then measured on the test data. Baselines
measured in the same run: the int8 levels of the same weights as raw bytes and
compressed by zstd level 19 (if the `zstandard` package is installed: the `bench` extra).

A second table has a row per kind of weight (issue 14: embedding, recurrent, weight-only int8,
uint8 QDQ, weight-first MatMul and weights behind shape operators), on the small models that
tests/weight_models.py builds: share of parameters compressed, bits per weight, ratio against
the source's own bytes and against fp32, the largest relative output error against the source
model, and, as the baseline of the same run, zstd-19 of the source's own weight bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
MODELS = {  # model: (test data, calibration data, --max-drop for the searched policies)
    "digits_mlp": ("digits_test.npz", None, None),
    "fashion_cnn": ("fashion_test.npz", "fashion_calib.npz", 0.5),
    "fashion_cnn_sparse": ("fashion_test.npz", "fashion_calib.npz", 0.5),
    "efficientnet_lite0": ("photos.npz", "photos.npz", 2.5),
}
SEARCHED = ("importance", "dictionary")

CHILD = r"""
import json, resource, sys, time
from xorc import api
from xorc.config import CompressOptions
model, blob, data, calib, policy, max_drop, max_bpw = sys.argv[1:8]
t0 = time.perf_counter()
options = CompressOptions(policy=policy, max_drop=float(max_drop) if max_drop else None,
                          max_bits_per_weight=float(max_bpw) if max_bpw else None)
summary = api.compress(model, blob, options, calib=calib or None)
t1 = time.perf_counter()
report = api.verify(blob, model=model, data=data)
t2 = time.perf_counter()
print(json.dumps({"compress_s": t1 - t0, "verify_s": t2 - t1,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "totals": summary.totals(), "bit_exact": report.bit_exact,
                  "accuracy": report.accuracy.to_json()}))
"""


def zstd_baseline(model: Path) -> tuple[int, int | None]:
    """Bytes of the int8 levels (8 bits per weight) and their zstd-19 size."""
    import numpy as np

    from xorc import onnx_io
    from xorc.quantize import quantize

    loaded = onnx_io.load_model(model)
    parts = []
    for w in onnx_io.find_weights(loaded):
        if w.compressible:
            levels, _ = quantize(w.array, 8, w.axis)
            parts.append(levels.astype(np.int8).tobytes())
    raw = b"".join(parts)
    try:
        import zstandard
    except ImportError:
        return len(raw), None
    return len(raw), len(zstandard.ZstdCompressor(level=19).compress(raw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="all,raw")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--max-bits-per-weight",
        type=float,
        help="searched policies fit this size instead of searching within --max-drop",
    )
    parser.add_argument("--kinds-only", action="store_true", help="only the weight-kind table")
    args = parser.parse_args()
    if not args.kinds_only:
        sample_table(args)
    kinds_table()


def sample_table(args: argparse.Namespace) -> None:
    """The sample models, one row per model and policy."""
    header = (
        f"{'model':<20} {'policy':<10} {'weights':>9} {'bits/w':>7} {'int8+zstd19':>11} "
        f"{'blob KiB':>9} {'source KiB':>10} {'compress s':>10} {'verify s':>8} {'peak MB':>8} "
        f"{'metric':>9} {'orig %':>7} {'comp %':>7} {'bit-exact':>9}"
    )
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        data, calib, max_drop = MODELS[name]
        model = SAMPLES / f"{name}.onnx"
        raw_bytes, zstd_bytes = zstd_baseline(model)
        for policy in args.policies.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                blob = Path(tmp) / "b.xorc"
                calib_arg = str(SAMPLES / calib) if calib else ""
                searched = policy in SEARCHED
                bpw_arg = (
                    str(args.max_bits_per_weight) if searched and args.max_bits_per_weight else ""
                )
                drop_arg = (
                    str(max_drop) if searched and max_drop is not None and not bpw_arg else ""
                )
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(model),
                        str(blob),
                        str(SAMPLES / data),
                        calib_arg,
                        policy,
                        drop_arg,
                        bpw_arg,
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if proc.returncode != 0:
                print(f"{name:<20} {policy:<10} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout)
            t, acc = r["totals"], r["accuracy"]
            zstd = f"{8 * zstd_bytes / t['n_weights']:.3f}" if zstd_bytes else "n/a"
            print(
                f"{name:<20} {policy:<10} {t['n_weights']:>9} {t['bits_per_weight']:>7.3f} "
                f"{zstd:>11} {t['blob_bytes'] / 1024:>9.1f} "
                f"{t['source_model_bytes'] / 1024:>10.1f} "
                f"{r['compress_s']:>10.2f} {r['verify_s']:>8.2f} {r['peak_mb']:>8.0f} "
                f"{acc['metric']:>9} {acc['original']:>7.2f} {acc['compressed']:>7.2f} "
                f"{r['bit_exact']!s:>9}"
            )
    print(
        f"\n(int8 levels of the same weights: {raw_bytes} bytes for the last model; "
        "bits/w counts codec streams and scales)"
    )


KIND_CHILD = r"""
import json, sys, time
import numpy as np, onnx
sys.path.insert(0, sys.argv[1])
import weight_models as wm
from xorc import api, runtime
from xorc.config import CompressOptions
name, tmp = sys.argv[2:4]
build = {
    "embedding+block": wm.embedding_block,
    "bi-LSTM h=128": lambda: wm.recurrent("LSTM", True, hidden=128),
    "GRU h=128": lambda: wm.recurrent("GRU", False, hidden=128),
    "int8 Cast/Mul": wm.weight_only_int8,
    "uint8 QDQ Conv": wm.qdq_uint8_conv,
    "weight-first+shape": wm.weight_first_and_shape_ops,
}[name]
model, feeds = build()
src = tmp + "/m.onnx"
onnx.save(model, src)
t0 = time.perf_counter()
summary = api.compress(src, tmp + "/m.xorc", CompressOptions(policy="all"))
t1 = time.perf_counter()
back = api.decompress(tmp + "/m.xorc", tmp + "/back.onnx")
run = lambda b: runtime.session(open(b, "rb").read(), "m").run(None, feeds)
err = max(float(np.linalg.norm(a - b) / np.linalg.norm(a)) for a, b in zip(run(src), run(back)))
own = b"".join(i.raw_data for i in onnx.load(src).graph.initializer)
try:
    import zstandard
    zstd = len(zstandard.ZstdCompressor(level=19).compress(own))
except ImportError:
    zstd = None
print(json.dumps({"totals": summary.totals(), "err": err, "s": t1 - t0, "own": len(own),
                  "zstd": zstd}))
"""
KINDS = (
    "embedding+block",
    "bi-LSTM h=128",
    "GRU h=128",
    "int8 Cast/Mul",
    "uint8 QDQ Conv",
    "weight-first+shape",
)


def kinds_table() -> None:
    """One row per weight kind (module docstring)."""
    header = (
        f"\n{'kind':<20} {'params':>8} {'compressed':>10} {'bits/w':>7} {'x own':>6} "
        f"{'x fp32':>7} {'own+zstd19 x':>12} {'max rel err':>11} {'compress s':>10}"
    )
    print(header)
    print("-" * len(header))
    for name in KINDS:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-c", KIND_CHILD, str(ROOT / "tests"), name, tmp],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            print(f"{name:<20} failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout)
        t = r["totals"]
        zstd = f"{r['own'] / r['zstd']:.2f}" if r["zstd"] else "n/a"
        print(
            f"{name:<20} {t['n_weights'] + t['uncompressed_params']:>8} "
            f"{100 * t['share_compressed']:>9.1f}% {t['bits_per_weight']:>7.3f} "
            f"{t['compression_ratio']:>6.2f} {t['compression_ratio_fp32']:>7.2f} {zstd:>12} "
            f"{r['err']:>11.4f} {r['s']:>10.2f}"
        )
    print("(x own: source bytes of the compressed tensors over their payload; own+zstd19: the")
    print(" source's weight bytes over their zstd-19 size, all initializers, the same run)")


if __name__ == "__main__":
    main()
