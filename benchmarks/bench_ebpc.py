"""EBPC throughput and feature-map compression (issue 4).

Measures, on one core:

* encode and decode MB/s of `xorc.codecs.ebpc` on real 8-bit feature maps (every ReLU / ReLU6 /
  Clip(0, x) output of EfficientNet-Lite0 on sample_models/photos.npz) and on dense uniform
  random int8, next to zstandard (level 3) on the same bytes as a baseline measured in the same
  run; decode with the numpy parser and, if numba is installed, the compiled one;
* network and per-layer compression ratios of EBPC, zero-RLE (max run 16) and ZVC on
  efficientnet_lite0 and fashion_cnn, with the paper's quantization and a calibrated
  round-to-nearest one (`xorc.fmap`);
* the same network ratios with the non-RTL study variants (block size 16 at W = 8, swapped
  zero codes), paper quantization, to show how much of the paper's gain they account for.

Run:  python benchmarks/bench_ebpc.py [--images 8] [--fashion 64] [--repeat 3] [--layers]
      [--efficientnet-data imagenet20.npz]   (real ILSVRC images: scripts/make_imagenet20.py)

MB = 10**6 int8 values (one byte each). Times are best of --repeat runs; wall clock (the process
is pinned to one CPU when the OS allows it) and CPU time are both shown.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xorc import fmap  # noqa: E402
from xorc.codecs.ebpc import decode, decode_many, encode, parse_jit  # noqa: E402

SAMPLES = ROOT / "sample_models"
MODELS = {
    "efficientnet_lite0": ("efficientnet_lite0.onnx", "photos.npz"),
    "fashion_cnn": ("fashion_cnn.onnx", "fashion_test.npz"),
}


def activation_maps(model_path: Path, data_path: Path, count: int) -> dict[str, np.ndarray]:
    """Run the model in onnxruntime (1 thread) with every Relu and Clip(0, x) output exposed."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    consts = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    names = []
    for node in model.graph.node:
        if node.op_type == "Relu":
            names.append(node.output[0])
        elif node.op_type == "Clip":
            low = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            if low is None:
                low = next((a.f for a in node.attribute if a.name == "min"), None)
            if low is not None and float(np.asarray(low)) == 0.0:
                names.append(node.output[0])
    known = {o.name for o in model.graph.output}
    for name in names:
        if name not in known:
            model.graph.output.append(onnx.helper.make_value_info(name, onnx.TypeProto()))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed_name = sess.get_inputs()[0].name
    with np.load(data_path) as data:
        x = data[feed_name if feed_name in data else data.files[0]][:count].astype(np.float32)
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(x), 4):
        for name, arr in zip(names, sess.run(names, {feed_name: x[i : i + 4]}), strict=True):
            outs[name].append(arr)
    return {f"{k:03d}:{n}": np.concatenate(outs[n]) for k, n in enumerate(names)}


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Best wall and CPU seconds of `repeat` runs."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


# the BPC parsers (xorc/codecs/ebpc/parse_jit.py): speculative numpy, and the numba walk if
# numba is installed
PARSERS = ["numpy", *(["compiled"] if parse_jit.compiled_walker() else [])]


def throughput_rows(
    label: str, per_input: list[list[np.ndarray]], repeat: int
) -> list[tuple[str, str, float, float, float]]:
    """Encode / decode MB/s of EBPC (per map and batched per input) and zstd on the maps."""
    maps = [m for group in per_input for m in group]
    mb = sum(m.size for m in maps) / 1e6
    records = [encode(m) for m in maps]
    grouped = []
    k = 0
    for group in per_input:
        grouped.append(records[k : k + len(group)])
        k += len(group)
    for rec, m in zip(records, maps, strict=True):
        assert np.array_equal(decode(rec), m)
    ratio = sum(m.size * 8 for m in maps) / sum(r.compressed_bits for r in records)
    rows = []
    w, c = best_of(repeat, lambda: [encode(m) for m in maps])
    rows.append((label, "EBPC encode", mb / w, mb / c, ratio))
    for parser in PARSERS:
        with parse_jit.using(parser):
            w, c = best_of(repeat, lambda: [decode(r) for r in records])
            rows.append((label, f"EBPC decode per map, {parser}", mb / w, mb / c, ratio))
            w, c = best_of(repeat, lambda: [decode_many(g) for g in grouped])
            rows.append((label, f"EBPC decode_many per input, {parser}", mb / w, mb / c, ratio))
    try:
        import zstandard
    except ImportError:
        return rows
    blobs = [m.tobytes() for m in maps]
    cctx, dctx = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
    packed = [cctx.compress(b) for b in blobs]
    zratio = sum(len(b) for b in blobs) / sum(len(p) for p in packed)
    w, c = best_of(repeat, lambda: [cctx.compress(b) for b in blobs])
    rows.append((label, "zstd-3 compress (baseline)", mb / w, mb / c, zratio))
    w, c = best_of(repeat, lambda: [dctx.decompress(p) for p in packed])
    rows.append((label, "zstd-3 decompress (baseline)", mb / w, mb / c, zratio))
    return rows


def quantized_inputs(maps: dict[str, np.ndarray], method: str) -> list[list[np.ndarray]]:
    scales = fmap.paper_scales(maps, 8) if method == "paper" else fmap.calibrate(maps, 8)
    batch = next(iter(maps.values())).shape[0]
    return [
        [fmap.quantize(x[i], scales[n], 8, method).ravel() for n, x in maps.items()]
        for i in range(batch)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8, help="photos for efficientnet_lite0")
    ap.add_argument("--fashion", type=int, default=64, help="images for fashion_cnn")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", action="store_true", help="print per-layer ratios")
    ap.add_argument(
        "--efficientnet-data",
        type=Path,
        help="inputs for efficientnet_lite0 instead of sample_models/photos.npz",
    )
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"numpy {np.__version__}, one core, best of {args.repeat}; MB = 10^6 int8 values")
    if "compiled" in PARSERS:
        t0 = time.perf_counter()
        decode(encode(np.arange(64) % 7))
        print(
            "compiled BPC parser: numba, first use in this process "
            f"(import, compile or load from cache) {time.perf_counter() - t0:.2f} s\n"
        )
    else:
        print("compiled BPC parser: numba not installed, numpy parser only\n")

    counts = {"efficientnet_lite0": args.images, "fashion_cnn": args.fashion}
    maps_by_model: dict[str, dict[str, np.ndarray]] = {}
    for name, (onnx_file, data_file) in MODELS.items():
        model_path, data_path = SAMPLES / onnx_file, SAMPLES / data_file
        if name == "efficientnet_lite0" and args.efficientnet_data:
            data_path = args.efficientnet_data
        if not (model_path.exists() and data_path.exists()):
            print(f"SKIP {name}: {model_path} or {data_path} missing")
            continue
        t0 = time.perf_counter()
        maps_by_model[name] = activation_maps(model_path, data_path, counts[name])
        n_vals = sum(x.size for x in maps_by_model[name].values())
        print(
            f"{name}: {len(maps_by_model[name])} activation tensors, {counts[name]} inputs, "
            f"{n_vals / 1e6:.1f} M values (onnxruntime {time.perf_counter() - t0:.1f} s)"
        )

    rows = []
    if "efficientnet_lite0" in maps_by_model:
        inputs = quantized_inputs(maps_by_model["efficientnet_lite0"], "paper")
        rows += throughput_rows("efficientnet_lite0 maps (paper q.)", inputs, args.repeat)
    rng = np.random.default_rng(0)
    dense = [[rng.integers(-128, 128, 1 << 20, dtype=np.int64).astype(np.int8)] for _ in range(4)]
    rows += throughput_rows("dense uniform int8 (4 x 1 MiB)", dense, args.repeat)
    print(f"\n{'data':36} {'operation':40} {'MB/s wall':>10} {'MB/s CPU':>9} {'ratio':>7}")
    for label, op, wall, cpu, ratio in rows:
        print(f"{label:36} {op:40} {wall:10.1f} {cpu:9.1f} {ratio:7.3f}")

    print(
        f"\n{'model':20} {'quant.':7} {'EBPC':>6} {'padded':>7} {'zeroRLE':>8} {'ZVC':>6} "
        f"{'gain vs best':>13} {'sparsity':>9}"
    )
    for name, maps in maps_by_model.items():
        for method in fmap.METHODS:
            result = fmap.analyze(maps, 8, method)
            sparsity = fmap.summary_rows(result)[-1][1]
            print(
                f"{name:20} {method:7} {result.network_ratio('ebpc'):6.3f} "
                f"{result.network_ratio('ebpc_padded'):7.3f} "
                f"{result.network_ratio('zero_rle'):8.3f} {result.network_ratio('zvc'):6.3f} "
                f"{100 * result.ebpc_gain:+12.1f}% {sparsity:9.3f}"
            )
            if args.layers:
                for layer, sp, e, z, v in fmap.summary_rows(result)[:-1]:
                    print(
                        f"    {layer[:40]:40} sparsity {sp:.2f}  "
                        f"EBPC {e:.2f}  zRLE {z:.2f}  ZVC {v:.2f}"
                    )

    print(f"\n{'model (paper q.)':20} {'EBPC variant':34} {'ratio':>6} {'gain vs best':>13}")
    for name, maps in maps_by_model.items():
        for label, ratio, gain in variant_rows(quantized_inputs(maps, "paper")):
            print(f"{name:20} {label:34} {ratio:6.3f} {100 * gain:+12.1f}%")


VARIANTS = {
    "RTL (W=8, N=8)": {},
    "N=16 (not RTL)": {"block_size": 16, "allow_non_rtl_block": True},
    "swapped zero codes (not RTL)": {"swap_zero_codes": True},
    "N=16 + swapped codes (not RTL)": {
        "block_size": 16,
        "allow_non_rtl_block": True,
        "swap_zero_codes": True,
    },
}


def variant_rows(per_input: list[list[np.ndarray]]) -> list[tuple[str, float, float]]:
    """Network ratio (per input, averaged) of each EBPC variant, and its gain over the better of
    zero-RLE and ZVC (the same definition as `xorc fmap`)."""
    raw = np.array([sum(m.size * 8 for m in group) for group in per_input], dtype=np.float64)
    records = {
        label: [[encode(m, 8, **options) for m in group] for group in per_input]
        for label, options in VARIANTS.items()
    }
    # every variant's ZNZ stream is the zero-RLE stream (max run 16): take the first one's
    zrle, zvc = [], []
    for group, recs in zip(per_input, next(iter(records.values())), strict=True):
        pairs = [(r, int(np.count_nonzero(m))) for m, r in zip(group, recs, strict=True)]
        zrle.append(sum(fmap.zero_rle_bits(r.znz_bitlen, k, 8) for r, k in pairs))
        zvc.append(sum(fmap.zvc_bits(r.n_words, k, 8) for r, k in pairs))
    best = max(float(np.mean(raw / np.array(zrle))), float(np.mean(raw / np.array(zvc))))
    rows = []
    for label, per_group in records.items():
        bits = np.array([sum(r.compressed_bits for r in recs) for recs in per_group])
        ratio = float(np.mean(raw / bits))
        rows.append((label, ratio, ratio / best - 1))
    return rows


if __name__ == "__main__":
    main()
