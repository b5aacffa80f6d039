"""Benchmark: does reconstruction matter for Gather tables and recurrent weights?

    PYTHONPATH=$PWD python benchmarks/bench_calib_kinds.py MODELS_DIR [--bits 4] [--only A,B]

`--calib` gives GPTQ the H of each Conv/Gemm/MatMul weight's input (xorc/hessian.py); an
embedding table read by `Gather` and the W/R weights of LSTM/GRU/RNN get none and are rounded
to nearest (docs/weights.md §5). For every `*.onnx` in MODELS_DIR that has such weights, in
one process: the output cosine (`fidelity.compare`, smallest over the float outputs, mean
over the evaluation inputs) when

* `kinds only`: only the embedding and recurrent weights are rounded to nearest at `--bits`
  (per channel on their rule-table axis, bfloat16 scales, as compress does), the rest float:
  what those weights cost, the most GPTQ on them could win back;
* `rtn`: `compress` at `--bits` without data (every weight rounded to nearest);
* `calib`: `compress` at `--bits` with `--calib` (GPTQ on the layers it reaches; the embedding
  and recurrent weights still rounded to nearest), and the share of the quantized parameters
  GPTQ reconstructed.

`--all` measures the models without such weights too (rtn against calib alone).
`--per-layer MODEL` instead rounds each quantized weight of one model alone and lists the ten
that cost the most output cosine (what caused PP-OCRv4 det's low cosine, docs/weights.md §6).

Inputs are `bench_coverage.inputs_for` (seeded, declared shapes): calibration samples from one seed,
evaluation samples from another, never the same. Without the folder it says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_coverage import inputs_for, models_in

KINDS = ("embedding", "recurrent")
CALIB_SAMPLES = 16


def _cosine(src: Any, out: Any, inputs: list[dict]) -> float:
    from xorc import fidelity

    names = [o.name for o in src.get_outputs()]
    values = []
    for f in inputs:
        cmp = fidelity.compare(src.run(None, f), out.run(None, f), names)
        values.append(min(o["cosine"] for o in cmp if o.get("cosine") is not None))
    return float(np.mean(values))


def rounded(path: Path, bits: int, pick: Any) -> tuple[bytes, int, int]:
    """The model with the quantized weights `pick(weight)` selects rounded to nearest at
    `bits` (per channel on their rule-table axis, bfloat16 scales, as compress does), the
    rest float; their count, and the count of every quantized parameter."""
    import onnx
    from onnx import numpy_helper

    from xorc.quantize import quantize

    proto = onnx.load(path)
    tensors = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None:
            tensors[node.output[0]] = value
    weights = _quantized(path)
    picked = [w for w in weights if pick(w) and w.name in tensors]
    for w in picked:
        a = w.array.astype(np.float32)
        levels, scales = quantize(a, bits, w.axis, "bfloat16")
        shape = [-1 if d == w.axis else 1 for d in range(a.ndim)]
        back = levels * scales.reshape(shape if w.axis is not None else [1] * a.ndim)
        t = tensors[w.name]
        t.CopyFrom(numpy_helper.from_array(back.astype(a.dtype), t.name))
    return proto.SerializeToString(), sum(w.size for w in picked), sum(w.size for w in weights)


def _quantized(path: Path) -> list:
    from xorc import onnx_io

    return [w for w in onnx_io.find_weights(onnx_io.load_model(path)) if w.treatment == "quantize"]


def per_layer(path: Path, bits: int, worst: int) -> None:
    """Each quantized weight rounded alone: the output cosine, worst first (what one layer
    costs; `--per-layer`)."""
    from xorc import runtime

    src = runtime.session(path.read_bytes(), str(path))
    inputs = inputs_for(src, seed=0)
    weights = _quantized(path)
    model_bytes = rounded(path, bits, lambda w: True)[0]
    print(f"{path.stem}, {bits} bits, every weight: cosine "
          f"{_cosine(src, runtime.session(model_bytes, 'all'), inputs):.5f}")  # fmt: skip
    rows = []
    for w in weights:
        one = rounded(path, bits, lambda v, name=w.name: v.name == name)[0]
        rows.append((_cosine(src, runtime.session(one, w.name), inputs), w))
    print("| weight alone | shape | kind | axis | cosine |")
    print("|---|---|---|---|---|")
    for c, w in sorted(rows, key=lambda r: r[0])[:worst]:
        print(f"| {w.name} | {list(w.shape)} | {w.role} | {w.axis} | {c:.5f} |")


def measure(path: Path, bits: int, tmp: Path, every: bool = False) -> dict | None:
    from xorc import api, runtime
    from xorc.config import CompressOptions

    model_bytes, n_kinds, n_all = rounded(path, bits, lambda w: w.role in KINDS)
    if not n_kinds and not every:
        return None
    src = runtime.session(path.read_bytes(), str(path))
    inputs = inputs_for(src, seed=0)
    calib = inputs_for(src, seed=1, samples=CALIB_SAMPLES)
    np.savez(tmp / "calib.npz", **{k: np.concatenate([f[k] for f in calib]) for k in calib[0]})
    row = {"kinds_share": n_kinds / n_all}
    row["kinds_only"] = _cosine(src, runtime.session(model_bytes, "kinds"), inputs)
    for name, calib_path in (("rtn", None), ("calib", tmp / "calib.npz")):
        blob = tmp / f"{name}.xorc"
        summary = api.compress(
            path, blob, CompressOptions(bits=bits), calib=calib_path, min_fidelity=None
        )
        back = api.decompress(blob, tmp / f"{name}.onnx")
        row[name] = _cosine(src, runtime.session(Path(back).read_bytes(), name), inputs)
        if calib_path is not None:
            gptq = sum(
                t.n_weights
                for t in summary.tensors
                if t.stats.get("reconstruction", {}).get("method") == "gptq"
            )
            row["gptq_share"] = gptq / n_all
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--only", default="")
    parser.add_argument("--per-layer", type=Path, help="one model: each weight rounded alone")
    parser.add_argument("--all", action="store_true", help="also models without such weights")
    args = parser.parse_args()
    if args.per_layer is not None:
        per_layer(args.per_layer, args.bits, 10)
        return
    models = models_in(args.models, args.only, "bench_calib_kinds")
    if not models:
        return
    print(f"| model ({args.bits} bits) | embedding + recurrent share | cosine, kinds only "
          "| cosine, rtn | cosine, calib | GPTQ share |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for m in models:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                r = measure(m, args.bits, Path(tmp), args.all)
            except Exception as exc:  # a model these inputs cannot run: named, not measured
                print(f"| {m.stem} | failed: {str(exc).splitlines()[0][:100]} | | | | |")
                continue
        if r is not None:
            print(
                f"| {m.stem} | {100 * r['kinds_share']:.1f} % | {r['kinds_only']:.5f} | "
                f"{r['rtn']:.5f} | {r['calib']:.5f} | {100 * r['gptq_share']:.1f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
