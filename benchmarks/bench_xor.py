"""Benchmark of codec `xor` against its bounds and against raw int8 and int8 + zstd -19.

Models: the synthetic ResNet-18-shaped model (scripts/make_resnet18_synthetic.py: 11.7 M
Laplace weights, magnitude-pruned to each --sparsity, int8 per channel), or the weight
initializers (ndim >= 2) of an ONNX file given with --onnx, quantized per output channel
(zeros already in the model stay the pruning mask unless --prune is given).

Printed per configuration: bits/weight of planes, patches and mask next to their lower bounds
(Q(1-S) for the planes, H(S) for the mask), raw int8 and int8 + zstd level 19 on the same int8
bytes, encode, decode and datapath-simulator time and throughput (single process), peak
memory, alternative patch formats measured on the same patches, and for --budgets the
`importance` policy trade-off.

    python benchmarks/bench_xor.py                 # S = 0.8, 0.9; effort 1, 4; variants 1, 2, 3
    python benchmarks/bench_xor.py --sparsity 0.5,0.7,0.9,0.95 --effort 1 --variants 1,2,3
    python benchmarks/bench_xor.py --quick         # a 1.4 M-weight subset, S = 0.9, effort 1
    python benchmarks/bench_xor.py --onnx model.onnx --budgets 0.9,0.98
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import resource
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.raw.decode import decode as raw_decode
from xorc.codecs.xor.decode import decode as xor_decode
from xorc.codecs.xor.encode import encode, finish, solve_tensor
from xorc.codecs.xor.mask import best_k, positions_to_gaps
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import decode_patches
from xorc.tensor import Encoded, QuantTensor

REPO = Path(__file__).resolve().parent.parent


def synthetic(sparsity: float, quick: bool) -> list[QuantTensor]:
    spec = importlib.util.spec_from_file_location(
        "make_resnet18_synthetic", REPO / "scripts" / "make_resnet18_synthetic.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tensors = mod.make_tensors(sparsity)
    return tensors[:12] if quick else tensors


def from_onnx(path: Path, bits: int, prune: float | None) -> list[QuantTensor]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    top = 2 ** (bits - 1) - 1
    out = []
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim < 2 or not np.issubdtype(w.dtype, np.floating):
            continue
        w = w.astype(np.float32)
        if prune is not None:
            cut = np.quantile(np.abs(w), prune)
            w = np.where(np.abs(w) <= cut, 0.0, w)
        chan = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        scales = np.where(chan > 0, chan / top, 1.0).astype(np.float32)
        lv = np.clip(np.round(w / scales.reshape((-1,) + (1,) * (w.ndim - 1))), -top, top)
        lv = np.where((w != 0) & (lv == 0), np.sign(w), lv).astype(np.int16)
        out.append(QuantTensor(init.name, lv, bits, scales, 0))
    return out


def entropy(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def zstd19_bits(tensors: list[QuantTensor]) -> int:
    import zstandard

    data = b"".join(t.values.astype(np.int8).tobytes() for t in tensors)
    return 8 * len(zstandard.ZstdCompressor(level=19).compress(data))


def simulate(t: QuantTensor, e: Encoded) -> np.ndarray:
    """The datapath simulator's decoded levels (docs/datapath.md)."""
    from xorc.datapath import DatapathConfig, simulate_tensor

    return simulate_tensor(t.shape, t.bits, e.codec, e.params, e.streams, DatapathConfig())[0]


def decode_any(t: QuantTensor, e: Encoded) -> np.ndarray:
    dec = xor_decode if e.codec == CodecId.XOR else raw_decode
    return dec(t.shape, t.bits, e.params, e.streams)


@dataclass
class PatchFormats:
    """Bits of the same patches in three formats."""

    absolute: int = 0  # Rice-coded gaps of absolute positions (the format)
    care: int = 0  # Rice-coded gaps of care indices (ranks among kept weights)
    per_slice: int = 0  # Rice-coded count per slice + log2(n_out)-bit offsets


def patch_formats(t: QuantTensor, e: Encoded) -> PatchFormats:
    p = e.params
    n = t.values.size
    positions = decode_patches(e.streams["patches"], p["patches"], p["patch_k"], p["patch_bits"], n)
    kept = np.flatnonzero(t.values.ravel())
    n_slices = -(-n // p["n_out"])
    f = PatchFormats()
    care_coded = p.get("variant") == 3  # variant 3's patches are care indices (§12.3)
    for run in positions:
        pos = kept[run] if care_coded else run
        care = run if care_coded else np.searchsorted(kept, pos)
        f.absolute += best_k(positions_to_gaps(pos))[1]
        f.care += best_k(positions_to_gaps(care))[1]
        counts = np.bincount(pos // p["n_out"], minlength=n_slices).astype(np.uint64)
        f.per_slice += best_k(counts)[1] + pos.size * int(math.log2(p["n_out"]))
    return f


SUMMARY: list[str] = []
"""One line per run, printed together at the end."""


def run(
    tensors: list[QuantTensor], label: str, effort: int, budgets: list[float], variant: int = 1
) -> None:
    n = sum(t.values.size for t in tensors)
    q = tensors[0].bits
    kept = sum(int((t.values != 0).sum()) for t in tensors)
    s = 1 - kept / n
    options = XorOptions(effort=effort, variant=variant)
    t0 = time.perf_counter()
    encoded = [encode(t, options) for t in tensors]
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = [decode_any(t, e) for t, e in zip(tensors, encoded, strict=True)]
    t_dec = time.perf_counter() - t0
    assert all(np.array_equal(d, t.values) for d, t in zip(decoded, tensors, strict=True))
    t0 = time.perf_counter()
    simulated = [simulate(t, e) for t, e in zip(tensors, encoded, strict=True)]
    t_sim = time.perf_counter() - t0
    assert all(np.array_equal(d, t.values) for d, t in zip(simulated, tensors, strict=True))
    plane = patch = mask = other = 0
    n_xor = kept_xor = 0
    formats = PatchFormats()
    fallbacks = []
    for t, e in zip(tensors, encoded, strict=True):
        if e.codec == CodecId.XOR:
            n_xor += t.values.size
            kept_xor += int((t.values != 0).sum())
            plane += sum(e.stats["plane_bits"])
            patch += sum(e.stats["patch_bits"])
            mask += e.stats["mask_bits"]
            f = patch_formats(t, e)
            formats.absolute += f.absolute
            formats.care += f.care
            formats.per_slice += f.per_slice
        else:
            other += 8 * sum(len(x) for x in e.streams.values())
            fallbacks.append(t.name)
    total = 8 * sum(len(x) for e in encoded for x in e.streams.values())
    raw_masked = n + kept * q  # codec raw with its bitmap mask
    zstd = zstd19_bits(tensors)
    big = max(tensors, key=lambda t: t.values.size)
    tracemalloc.start()
    encode(big, options)
    enc_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    nx = max(n_xor, 1)
    sx = 1 - kept_xor / nx
    print(f"\n## {label}: {len(tensors)} tensors, {n:,} weights, S = {s:.3f}, Q = {q}, "
          f"effort {effort}, variant {variant}")  # fmt: skip
    print(f"xor-coded tensors: {n_xor:,} weights (S = {sx:.3f}); fallbacks to raw: "
          f"{len(fallbacks)} tensors, {n - n_xor:,} weights")  # fmt: skip
    print(
        f"{'part (per weight of the xor-coded tensors)':<44}{'bits/w':>8}{'bound':>8}{'ratio':>7}"
    )
    rows = [
        ("planes (seeds)", plane / nx, None),
        (f"patches ({'care-index' if variant == 3 else 'absolute'} gaps, Rice)", patch / nx, None),
        ("planes + patches", (plane + patch) / nx, q * (1 - sx)),
        ("mask", mask / nx, entropy(sx)),
        ("xor total", (plane + patch + mask) / nx, q * (1 - sx) + entropy(sx)),
    ]
    for name, v, b in rows:
        bound = f"{b:8.3f}{v / b:7.3f}" if b else ""
        print(f"{name:<44}{v:8.4f}{bound}")
    print(f"{'whole model (per weight)':<44}{'bits/w':>8}{'vs xor':>8}")
    for name, v in (
        ("all streams (xor + raw fallbacks)", total / n),
        ("raw int8", 8.0),
        ("codec raw (bitmap mask + Q-bit kept)", raw_masked / n),
        ("int8 + zstd -19", zstd / n),
    ):
        print(f"{name:<44}{v:8.4f}{v / (total / n):8.2f}")
    print(f"patch formats on the same patches: absolute {formats.absolute / nx:.4f}, "
          f"care-index {formats.care / nx:.4f}, per-slice count+offset "
          f"{formats.per_slice / nx:.4f} bits/weight")  # fmt: skip
    if fallbacks:
        print(f"fallbacks to raw: {', '.join(fallbacks)}")
    pp = (plane + patch) / nx / (q * (1 - sx)) if sx < 1 else float("nan")
    SUMMARY.append(
        f"{label[:34]:<34}{s:7.3f}{effort:4d}{variant:4d}{pp:9.3f}"
        f"{(plane + patch + mask) / nx:9.4f}"
        f"{total / n:9.4f}{zstd / n:9.4f}{total / zstd:8.3f}{len(fallbacks):5d}"
        f"{n / t_enc / 1e6:8.2f}{n / t_dec / 1e6:8.1f}{n / t_sim / 1e6:8.1f}"
    )
    print(f"encode {t_enc:.2f} s ({n / t_enc / 1e6:.2f} M weights/s, "
          f"{q * n / t_enc / 1e6:.1f} Mbit/s of planes); decode {t_dec:.2f} s "
          f"({n / t_dec / 1e6:.1f} M weights/s, {q * n / t_dec / 1e6:.0f} Mbit/s); datapath "
          f"simulator {t_sim:.2f} s ({n / t_sim / 1e6:.1f} M weights/s)")  # fmt: skip
    print(f"peak memory: encoder working set on the largest tensor ({big.values.size:,} weights) "
          f"{enc_peak / 2**20:.0f} MiB (tracemalloc); process peak RSS {rss:.0f} MiB")  # fmt: skip
    if budgets:
        importance_table(tensors, effort, budgets, total)


def importance_table(
    tensors: list[QuantTensor], effort: int, budgets: list[float], all_bits: int
) -> None:
    n = sum(t.values.size for t in tensors)
    o = XorOptions(effort=effort, patch_policy="importance")
    t0 = time.perf_counter()
    solved = [solve_tensor(t, o) for t in tensors]
    t_solve = time.perf_counter() - t0
    print(f"policy importance (solve once: {t_solve:.2f} s; unit importance):")
    print(f"{'budget':>8}{'bits/w':>9}{'vs all':>8}{'left':>10}{'changed w':>11}"
          f"{'rel MSE':>10}{'finish s':>9}")  # fmt: skip
    for b in budgets:
        t0 = time.perf_counter()
        enc = [finish(st, b) for st in solved]
        t_fin = time.perf_counter() - t0
        bits = 8 * sum(len(x) for e in enc for x in e.streams.values())
        left = sum(sum(e.stats.get("errors_left", [0])) for e in enc)
        changed = sum(int((e.decoded != t.values).sum()) for e, t in zip(enc, tensors, strict=True))
        err = sum(
            float(((e.decoded - t.values).astype(np.float64) ** 2).sum())
            for e, t in zip(enc, tensors, strict=True)
        )
        ref = sum(float((t.values.astype(np.float64) ** 2).sum()) for t in tensors)
        print(f"{b:8.3f}{bits / n:9.4f}{bits / all_bits - 1:+8.1%}{left:10d}{changed:11d}"
              f"{err / ref:10.2e}{t_fin:9.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark codec xor.")
    ap.add_argument("--quick", action="store_true", help="first 12 tensors, S = 0.9, effort 1")
    ap.add_argument("--sparsity", default="0.8,0.9", help="synthetic model sparsities")
    ap.add_argument("--effort", default="1,4", help="restart counts to run")
    ap.add_argument("--budgets", default="", help="importance budgets, e.g. 0.9,0.98")
    ap.add_argument("--variants", default="1,2,3", help="XOR variants to run (docs/codecs/xor.md)")
    ap.add_argument("--onnx", type=Path, help="bench this model's initializers instead")
    ap.add_argument("--bits", type=int, default=8, help="--onnx: quantization bits")
    ap.add_argument("--prune", type=float, help="--onnx: magnitude-prune to this sparsity")
    args = ap.parse_args()
    efforts = [1] if args.quick else [int(x) for x in args.effort.split(",")]
    variants = [int(x) for x in args.variants.split(",")]
    budgets = [float(x) for x in args.budgets.split(",") if x]
    print(f"numpy {np.__version__}; bit order per xorc.bits ({bitio.__name__})")
    if args.onnx:
        tensors = from_onnx(args.onnx, args.bits, args.prune)
        for effort in efforts:
            for v in variants:
                run(tensors, f"{args.onnx.name}", effort, budgets, v)
    else:
        sparsities = [0.9] if args.quick else [float(x) for x in args.sparsity.split(",")]
        for s in sparsities:
            tensors = synthetic(s, args.quick)
            for effort in efforts:
                name = "ResNet-18-shaped synthetic" + (" (quick subset)" if args.quick else "")
                for v in variants:
                    run(tensors, name, effort, budgets, v)
    print("\n## summary (planes+patches / Q(1-S) over the xor-coded tensors; bits/weight)")
    print(f"{'model':<34}{'S':>7}{'eff':>4}{'var':>4}{'pp/bound':>9}{'xor tot':>9}"
          f"{'all':>9}{'zstd19':>9}{'/zstd':>8}{'raw':>5}{'enc M/s':>8}{'dec M/s':>8}"
          f"{'sim M/s':>8}")  # fmt: skip
    print("\n".join(SUMMARY))


if __name__ == "__main__":
    main()
