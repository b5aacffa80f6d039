"""Parts of benchmarks/bench_insitu.py: decode / simulate speed of insitu records, and the
residual combination (generated levels plus a sparse residual coded by another codec)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from xorc import hsource, pipeline
from xorc.codecs import CodecId
from xorc.codecs.insitu.encode import Prepared
from xorc.codecs.insitu.options import InsituOptions
from xorc.config import CompressOptions
from xorc.datapath import DatapathConfig, simulate_tensor
from xorc.decode import decode_levels
from xorc.format import read_bytes
from xorc.onnx_io import load_model
from xorc.policies import POLICIES
from xorc.tensor import QuantTensor


def speed(folder: Path, model: str) -> None:
    """Reference decode and datapath simulation of every insitu record of the model's blobs."""
    config = DatapathConfig()
    n = 0
    t_ref = t_sim = 0.0
    macs = 0
    for path in sorted(folder.glob(f"{model}.insitu*.xorc")):
        container = read_bytes(path.read_bytes())
        for rec in container.tensors:
            if rec.codec != CodecId.INSITU:
                continue
            streams = container.codec_streams(rec)
            start = time.perf_counter()
            ref = decode_levels(container, rec)
            t_ref += time.perf_counter() - start
            start = time.perf_counter()
            dp, counters = simulate_tensor(
                rec.shape, rec.bits, rec.codec, rec.params, streams, config
            )
            t_sim += time.perf_counter() - start
            assert np.array_equal(ref, dp)
            n += ref.size
            macs += int(counters.details["generator_macs"])
    if n:
        print(
            f"\nspeed, {model} insitu records of every blob above ({n:,} weights, "
            f"{macs / n:.1f} generator MACs per weight), one core: reference decode "
            f"{n / t_ref / 1e6:.1f} M weights/s, simulate {n / t_sim / 1e6:.1f} M weights/s"
        )


def _quantized(paths: tuple[Path, Path, Path]) -> list[QuantTensor]:
    """The tensors policy insitu encodes, quantized as `compress --calib` does (with H)."""
    model_path, calib, _ = paths
    options = CompressOptions(policy="insitu").resolved(True)
    model = load_model(model_path)
    jobs, _ = pipeline.plan_stage(model, options)
    stats = hsource.calibration_stage(model, jobs, calib, options)
    pipeline.quantize_stage(jobs, options, stats)
    return [j.q for j in jobs]


def _residual_point(
    prep: Prepared, levels: np.ndarray, keep: float, codec: str
) -> tuple[int, float]:
    """Bits and relative output error of `levels` plus the largest `keep` share of the
    residual, coded by policy `codec`'s encoder (lossless on what it keeps)."""
    q = prep.q
    res = (q.values.astype(np.int64) - levels.astype(np.int64)).ravel()
    count = int(keep * res.size)
    order = np.argsort(-np.abs(res), kind="stable")
    kept = np.zeros_like(res)
    kept[order[:count]] = res[order[:count]]
    kept = np.clip(kept, -127, 127).reshape(q.shape).astype(np.int16)
    rq = QuantTensor("r", kept, 8, np.ones(1, np.float32), None)
    policy = POLICIES[codec]
    enc = policy.encode(rq, CompressOptions(policy=codec).settings_for("r", []), CompressOptions())
    bits = 8 * sum(len(s) for s in enc.streams.values())
    total = np.clip(levels.astype(np.int64) + enc.decoded, -127, 127)
    assert prep.layer is not None
    matrix = np.moveaxis(total, prep.axis, 0).reshape(prep.split[0], prep.split[1])
    return bits, prep.layer.error(matrix.astype(np.int16))


def residual(paths: tuple[Path, Path, Path]) -> None:
    """Does a sparse residual on top of a small generation beat a larger generation at the
    same output error? For each insitu-coded layer: plain insitu's frontier against
    (small candidate + top-k residual) with the dictionary and XOR (`all`) codecs."""
    print("\n## residual combination (fashion_cnn, --calib H): bits for the same output error")
    print(f"{'layer':<14} {'base (Bi,Bo,q)':<18} {'keep':>5} {'codec':<11} {'bits':>8} "
          f"{'rel.err':>8} {'plain insitu bits at <= err':>28}")  # fmt: skip
    pays = 0
    total = 0
    for q in _quantized(paths):
        prep = Prepared(q, InsituOptions())
        if not prep.points:
            continue
        frontier = sorted(prep.points, key=lambda p: p.bits)
        for base in frontier[:: max(len(frontier) // 4, 1)][:3]:
            enc = prep.choose(base.error)
            if enc.codec != CodecId.INSITU:
                continue
            base_bits = 8 * sum(len(s) for s in enc.streams.values())
            for keep in (0.01, 0.05, 0.2):
                for codec in ("dictionary", "all"):
                    bits, err = _residual_point(prep, enc.decoded, keep, codec)
                    bits += base_bits
                    plain = [p.bits for p in prep.points if p.error <= err]
                    best = min(plain) if plain else None
                    total += 1
                    pays += best is None or bits < best
                    r = enc.params
                    label = f"{r['bi']},{r['bo']},{r['qb']}/{r['qu']}/{r['qv']}"
                    print(f"{q.name:<14} {label:<18} {keep:5.2f} {codec:<11} {bits:8d} "
                          f"{err:8.4f} {best if best is not None else 'none':>28}")  # fmt: skip
    print(f"combination smaller than plain insitu at the same error: {pays} of {total} points")
