"""Benchmark of the datapath simulator (docs/datapath.md): throughput in weights per second per
codec, next to the reference decoders measured in the same run, plus what it simulates.

Weight sets:

* `resnet18`: the synthetic ResNet-18-shaped set (scripts/make_resnet18_synthetic.py: 21 tensors,
  11,678,912 Laplace weights, magnitude-pruned to 90 %, int8 per output channel); MACs of each
  layer at a 224 x 224 input, batch 1;
* `fashion_cnn_sparse`: the weights (ndim >= 2) of sample_models/fashion_cnn_sparse.onnx, read
  with onnx.numpy_helper and quantized per output channel (axis 0) to 8 bits with
  `xorc.quantize.quantize`; zeros in the model are the pruning mask. Its layers' MACs come from
  ONNX shape inference (batch 1), for the load-versus-compute columns.

Each registered policy (raw, all, importance with error budget 0.9, all-v2 = all with XOR
variant 2, dictionary, ebpc when registered) encodes every tensor; then the simulator
(`simulate_tensor`) and the reference decoder (`xorc.codecs.decoders`) decode all of them, best
of --repeat runs each, single process (numpy is single-threaded here). Both are checked against
the encoder's intended values.

Columns: bits/w counts every codec stream (not the scales); `load cyc` are the weight-load
cycles on the chosen preset, `row-rate` on `gemmini-row-rate` (front ends as wide as a
scratchpad row), `int8 cyc` loading the same weights uncompressed; `lat128` and `int8@lat` the
same on `gemmini-dram-latency` (128-cycle DRAM latency: half the bus bandwidth); `compute` the
layers' MACs / 256.

    python benchmarks/bench_datapath.py                 # both sets, all policies
    python benchmarks/bench_datapath.py --set fashion_cnn_sparse --repeat 5
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from xorc.codecs import CodecId
from xorc.codecs.decoders import DECODERS as REGISTERED_DECODERS
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.codecs.ebpc.options import EbpcOptions
from xorc.codecs.raw.options import RawOptions
from xorc.codecs.xor.options import XorOptions
from xorc.datapath import DatapathConfig, area_estimate, get_preset, render_area, simulate_tensor
from xorc.format import Container, TensorRecord
from xorc.format.container import layout_payload, levels_digest
from xorc.policies import POLICIES as REGISTERED_POLICIES
from xorc.quantize import quantize
from xorc.tensor import Encoded, QuantTensor

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = {name: p.encode_with for name, p in REGISTERED_POLICIES.items()}
ENCODERS["all-v2"] = ENCODERS["all"]  # codec xor variant 2 (docs/codecs/xor.md §11)
DECODERS = dict(REGISTERED_DECODERS)
ROW_RATE = get_preset("gemmini-row-rate")
LATENCY = get_preset("gemmini-dram-latency")

POLICIES: dict[str, Any] = {
    "raw": RawOptions(),
    "all": XorOptions(),
    "importance": XorOptions(patch_policy="importance", error_budget=0.9),
    "all-v2": XorOptions(variant=2),
    "dictionary": DictionaryOptions(),
    "ebpc": EbpcOptions(),
}


def resnet18() -> tuple[list[QuantTensor], dict[str, int]]:
    spec = importlib.util.spec_from_file_location(
        "mk", ROOT / "scripts" / "make_resnet18_synthetic.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tensors = mod.make_tensors(0.9)
    # output side of each layer at a 224 x 224 input, batch 1 (torchvision ResNet-18)
    side = {"conv1": 112, "layer1": 56, "layer2": 28, "layer3": 14, "layer4": 7, "fc": 1}
    macs = {q.name: side[q.name.split(".")[0]] ** 2 * q.values.size for q in tensors}
    return tensors, macs


def _macs(model: onnx.ModelProto) -> dict[str, int]:
    """MACs per weight tensor at batch 1, from shape inference (Conv and Gemm/MatMul)."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        dims = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    weights = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights:
            w = weights[node.input[1]]
            out_elems = int(np.prod(shapes.get(node.output[0], [1])))
            out[node.input[1]] = out_elems * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            out[node.input[1]] = int(np.prod(weights[node.input[1]]))  # batch 1
    return out


def fashion_cnn_sparse() -> tuple[list[QuantTensor], dict[str, int]]:
    model = onnx.load(str(ROOT / "sample_models" / "fashion_cnn_sparse.onnx"))
    tensors = []
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim < 2:
            continue
        levels, scales = quantize(w, 8, 0)
        tensors.append(QuantTensor(init.name, levels, 8, scales, 0))
    return tensors, _macs(model)


SETS: dict[str, Callable[[], tuple[list[QuantTensor], dict[str, int]]]] = {
    "resnet18": resnet18,
    "fashion_cnn_sparse": fashion_cnn_sparse,
}


@dataclass
class Row:
    policy: str
    weights: int
    stream_bytes: int
    encode_s: float
    sim_s: float
    ref_s: float
    exact: bool
    load_cycles: int
    row_rate_cycles: int
    latency_cycles: int
    latency_int8_cycles: int
    int8_cycles: int
    stalls: int
    compute_cycles: int | None
    codecs: str


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run_policy(
    tensors: list[QuantTensor],
    macs: dict[str, int],
    policy: str,
    config: DatapathConfig,
    repeat: int,
) -> tuple[Row, list[Encoded]]:
    encode = ENCODERS[policy]
    t0 = time.perf_counter()
    encoded = [encode(q, POLICIES[policy]) for q in tensors]
    encode_s = time.perf_counter() - t0
    results: list = []

    def sim() -> None:
        results.clear()
        for q, e in zip(tensors, encoded, strict=True):
            results.append(simulate_tensor(q.shape, q.bits, e.codec, e.params, e.streams, config))

    def ref() -> None:
        for q, e in zip(tensors, encoded, strict=True):
            DECODERS[e.codec](q.shape, q.bits, e.params, e.streams)

    sim_s = best_of(repeat, sim)
    ref_s = best_of(repeat, ref)
    exact = all(
        np.array_equal(lv, e.decoded)
        and np.array_equal(lv, DECODERS[e.codec](q.shape, q.bits, e.params, e.streams))
        for (lv, _), q, e in zip(results, tensors, encoded, strict=True)
    )
    counters = [c for _, c in results]
    other = {
        cfg.name: [
            simulate_tensor(q.shape, q.bits, e.codec, e.params, e.streams, cfg)[1]
            for q, e in zip(tensors, encoded, strict=True)
        ]
        for cfg in (ROW_RATE, LATENCY)
    }
    compute = [
        (-(-macs[q.name] // config.macs_per_cycle), c)
        for q, c in zip(tensors, counters, strict=True)
        if q.name in macs
    ]
    row = Row(
        policy=policy,
        weights=sum(q.values.size for q in tensors),
        stream_bytes=sum(len(s) for e in encoded for s in e.streams.values()),
        encode_s=encode_s,
        sim_s=sim_s,
        ref_s=ref_s,
        exact=exact,
        load_cycles=sum(c.cycles for c in counters),
        row_rate_cycles=sum(c.cycles for c in other[ROW_RATE.name]),
        latency_cycles=sum(c.cycles for c in other[LATENCY.name]),
        latency_int8_cycles=sum(c.uncompressed_cycles for c in other[LATENCY.name]),
        int8_cycles=sum(c.uncompressed_cycles for c in counters),
        stalls=sum(c.stall_cycles for c in counters),
        compute_cycles=sum(m for m, _ in compute) if compute else None,
        codecs="+".join(sorted({CodecId(e.codec).name.lower() for e in encoded})),
    )
    return row, encoded


def container_of(tensors: list[QuantTensor], encoded: list[Encoded]) -> Container:
    streams = [
        [("scales", q.scales.astype("<f4").tobytes()), *e.streams.items()]
        for q, e in zip(tensors, encoded, strict=True)
    ]
    payload, refs = layout_payload(streams)
    records = tuple(
        TensorRecord(
            name=q.name, shape=q.shape, dtype="float32", bits=q.bits, axis=q.axis,
            codec=int(e.codec), codec_name=CodecId(e.codec).name.lower(), policy="all",
            params=e.params, streams=r,
            n_weights=int(q.values.size), n_nonzero=int(np.count_nonzero(e.decoded)),
            digest=levels_digest(e.decoded), stats={},
        )
        for q, e, r in zip(tensors, encoded, refs, strict=True)
    )  # fmt: skip
    meta = {
        "format": "xorc",
        "tool": "xorc",
        "tool_version": "bench",
        "source_sha256": "0" * 64,
        "options": {},
    }
    return Container(meta, records, b"", payload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--set", choices=sorted(SETS), action="append", help="weight set (default: all)"
    )
    ap.add_argument(
        "--policy", choices=list(POLICIES), action="append", help="policy (default: all)"
    )
    ap.add_argument("--preset", default="gemmini-default")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    config = get_preset(args.preset)
    policies = args.policy or list(POLICIES)
    print(f"datapath preset {config.name}")
    for set_name in args.set or list(SETS):
        tensors, macs = SETS[set_name]()
        n = sum(q.values.size for q in tensors)
        sparsity = 1 - sum(int(np.count_nonzero(q.values)) for q in tensors) / n
        print(
            f"\n== {set_name}: {len(tensors)} tensors, {n:,} weights, sparsity {sparsity:.3f}, int8"
        )
        print(
            f"{'policy':<11} {'codecs':<15} {'bits/w':>6} {'encode s':>8} {'sim Mw/s':>9} "
            f"{'ref Mw/s':>9} {'exact':>5} {'load cyc':>9} {'row-rate':>9} {'int8 cyc':>9} "
            f"{'stalls':>9} {'lat128':>9} {'int8@lat':>9} {'compute':>9}"
        )
        for policy in policies:
            row, encoded = run_policy(tensors, macs, policy, config, args.repeat)
            compute = "?" if row.compute_cycles is None else row.compute_cycles
            print(
                f"{row.policy:<11} {row.codecs:<15} {8 * row.stream_bytes / row.weights:>6.3f} "
                f"{row.encode_s:>8.2f} {row.weights / row.sim_s / 1e6:>9.1f} "
                f"{row.weights / row.ref_s / 1e6:>9.1f} {'yes' if row.exact else 'NO':>5} "
                f"{row.load_cycles:>9} {row.row_rate_cycles:>9} {row.int8_cycles:>9} "
                f"{row.stalls:>9} {row.latency_cycles:>9} {row.latency_int8_cycles:>9} "
                f"{compute:>9}"
            )
            if set_name == "fashion_cnn_sparse" and policy == "all":
                print("\n  area estimate, fashion_cnn_sparse, policy all:")
                for line in render_area(
                    area_estimate(container_of(tensors, encoded), config)
                ).splitlines():
                    print("  " + line)
                print()


if __name__ == "__main__":
    main()
