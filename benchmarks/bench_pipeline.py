"""Benchmark: compress and verify every sample model; time, peak memory, size, accuracy.

    python benchmarks/bench_pipeline.py [--policies all,raw] [--models fashion_cnn_sparse,...]
                                        [--max-bits-per-weight B]

Each run is a fresh child process, so the peak resident memory (ru_maxrss) is that run's own.
With calibration data, compress gets --calib (bias correction; importance weights), and the
policies importance and dictionary search the smallest blob within the model's --max-drop on
the calibration data (MODELS below), or, with --max-bits-per-weight, the most accurate blob of
at most B bits per weight; accuracy is then measured on the test data. Baselines
measured in the same run: the int8 levels of the same weights as raw bytes and
compressed by zstd level 19 (if the `zstandard` package is installed: the `bench` extra).
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
