"""Benchmark of codec `dictionary`: bits/weight, accuracy and speed on the sample models.

For each model: the float weights of Conv, Gemm and MatMul (initializers with ndim >= 2) are
quantized here, symmetric per output channel to 8 bits (round to nearest, clip to +-127; axis 0
for Conv and for Gemm with transB=1, axis 1 for MatMul and Gemm with transB=0). Baselines
measured in the same run: raw int8 (8 bits/weight) and the same int8 bytes through zstd level
19. Each dictionary method encodes every tensor, decodes it again (checked bit-exact against
`Encoded.decoded`), and the dequantized decoded weights replace the originals for an
onnxruntime run on the model's test set: top-1 against the labels, or top-1 agreement with the
float model when the set has no labels (photos.npz). Bits/weight count every codec stream
(codebooks, Huffman tables, masks, indices), not the float scales, which all methods share.

    python benchmarks/bench_dictionary.py                      # all sample models
    python benchmarks/bench_dictionary.py --model fashion_cnn --methods 16,32,auto,16/g8

A method is K (dictionary size), `auto`, or either followed by `/gN` (N output channels per
codebook) or `/dw` (depthwise convolutions kept lossless: K = 256).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import zstandard
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc.codecs.dictionary.decode import decode
from xorc.codecs.dictionary.encode import Prepared, encode_prepared
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.tensor import Encoded, QuantTensor

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "digits_mlp": ("digits_mlp.onnx", "digits_test.npz"),
    "fashion_cnn": ("fashion_cnn.onnx", "fashion_test.npz"),
    "fashion_cnn_sparse": ("fashion_cnn_sparse.onnx", "fashion_test.npz"),
    "efficientnet_lite0": ("efficientnet_lite0.onnx", "photos.npz"),
}
DEFAULT_METHODS = "8,16,32,64,auto,16/g8,32/g8,auto/g8"
BITS = 8


@dataclass(frozen=True)
class Weight:
    name: str
    values: NDArray[np.float32]
    axis: int
    depthwise: bool


def weights_of(model: onnx.ModelProto) -> list[Weight]:
    """Float Conv/Gemm/MatMul weight initializers with ndim >= 2 and their channel axis."""
    inits = {t.name: t for t in model.graph.initializer}
    found: dict[str, Weight] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in inits or name in found:
            continue
        arr = numpy_helper.to_array(inits[name])
        if arr.ndim < 2 or arr.dtype.kind != "f":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            axis = 0
        elif node.op_type == "Gemm":
            axis = 0 if attrs.get("transB", 0) else 1
        else:
            axis = arr.ndim - 1
        depthwise = node.op_type == "Conv" and int(attrs.get("group", 1)) > 1
        found[name] = Weight(name, arr.astype(np.float32), axis, depthwise)
    return list(found.values())


def quantize(w: Weight) -> QuantTensor:
    """Symmetric per-channel 8-bit levels (round to nearest, clip to +-127)."""
    top = (1 << (BITS - 1)) - 1
    other = tuple(i for i in range(w.values.ndim) if i != w.axis)
    peak = np.abs(w.values).max(axis=other, keepdims=True)
    scale = np.where(peak > 0, peak / top, 1.0).astype(np.float32)
    levels = np.clip(np.rint(w.values / scale), -top, top).astype(np.int16)
    return QuantTensor(w.name, levels, BITS, scale.ravel(), w.axis)


def dequantize(q: QuantTensor, levels: NDArray[np.int16]) -> NDArray[np.float32]:
    shape = [1] * levels.ndim
    assert q.axis is not None
    shape[q.axis] = -1
    return (levels.astype(np.float32) * q.scales.reshape(shape)).astype(np.float32)


class Evaluator:
    """Runs a model with substituted weights on its test set."""

    def __init__(self, model: onnx.ModelProto, data: dict[str, NDArray]) -> None:
        self.model = model
        self.input_name = model.graph.input[0].name
        self.inputs = data["input"].astype(np.float32)
        self.labels = data.get("labels")
        self.reference = self._top1(model)
        self.int8: NDArray[np.int64] | None = None  # top-1 of the int8 model, set by the caller

    def _top1(self, model: onnx.ModelProto) -> NDArray[np.int64]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        out = [
            sess.run(None, {self.input_name: self.inputs[i : i + 64]})[0]
            for i in range(0, len(self.inputs), 64)
        ]
        return np.concatenate(out).argmax(axis=1)

    def top1(self, replaced: dict[str, NDArray[np.float32]]) -> NDArray[np.int64]:
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for init in model.graph.initializer:
            if init.name in replaced:
                init.CopyFrom(numpy_helper.from_array(replaced[init.name], init.name))
        return self._top1(model)

    def score(self, replaced: dict[str, NDArray[np.float32]]) -> tuple[float, float]:
        """Top-1 accuracy (%) with labels, else top-1 agreement (%) with the float model; and
        top-1 agreement (%) with the int8 model."""
        top1 = self.top1(replaced)
        target = self.labels if self.labels is not None else self.reference
        vs_int8 = float((top1 == self.int8).mean()) if self.int8 is not None else 1.0
        return 100.0 * float((top1 == target).mean()), 100.0 * vs_int8


def parse_method(text: str) -> tuple[int | None, int | None, bool]:
    """'32' -> (32, None, False); 'auto/g8' -> (None, 8, False); '32/dw' -> (32, None, True)."""
    head, *mods = text.split("/")
    k = None if head == "auto" else int(head)
    group, lossless_dw = None, False
    for mod in mods:
        if mod == "dw":
            lossless_dw = True
        elif mod.startswith("g"):
            group = int(mod[1:])
        else:
            raise SystemExit(f"unknown method modifier {mod!r} in {text!r}")
    return k, group, lossless_dw


@dataclass
class Result:
    label: str
    bits_per_weight: float
    score: float
    vs_int8: float
    encode_s: float
    decode_s: float
    huffman_share: float
    detail: str = ""


def run_method(text: str, weights: list[Weight], qs: list[QuantTensor], ev: Evaluator) -> Result:
    k, group, lossless_dw = parse_method(text)
    total_bits = 0
    n = sum(q.values.size for q in qs)
    replaced = {}
    enc_s = dec_s = 0.0
    huff_weights = 0
    for w, q in zip(weights, qs, strict=True):
        size = 256 if lossless_dw and w.depthwise else k
        t0 = time.perf_counter()
        e: Encoded = encode_prepared(
            Prepared(q, DictionaryOptions(dict_size=size, dict_group=group)), size
        )
        t1 = time.perf_counter()
        out = decode(q.shape, q.bits, e.params, e.streams)
        t2 = time.perf_counter()
        enc_s += t1 - t0
        dec_s += t2 - t1
        if not np.array_equal(out, e.decoded):
            raise SystemExit(f"{text}: decoder mismatch on {q.name}")
        total_bits += 8 * sum(len(s) for s in e.streams.values())
        huff_weights += q.values.size if e.params["huffman"] else 0
        replaced[q.name] = dequantize(q, out)
    return Result(text, total_bits / n, *ev.score(replaced), enc_s, dec_s, huff_weights / n)


def zero_layouts(qs: list[QuantTensor], ks: list[int]) -> list[str]:
    """Bits/weight per zero layout (each with its better index coding) on tensors with zeros."""
    lines = []
    sparse = [q for q in qs if (q.values == 0).any()]
    if not sparse:
        return lines
    n = sum(q.values.size for q in sparse)
    zeros = sum(int((q.values == 0).sum()) for q in sparse)
    share = 100 * zeros / n
    lines.append(
        f"  zero layouts on {len(sparse)} tensors with zeros ({n} weights, {share:.1f} % zero):"
    )
    head = ("K", "entry b/w", "mask b/w", "entry huff", "mask huff", "runs b/w")
    lines.append("  {:>5} {:>10} {:>10} {:>11} {:>10} {:>9}".format(*head))
    for k in ks:
        row = {}
        for layout in ("entry", "mask", "runs"):
            bits = 0
            huff = 0
            for q in sparse:
                e = encode_prepared(Prepared(q, DictionaryOptions()), k, zeros=layout)
                bits += 8 * sum(len(s) for s in e.streams.values())
                huff += q.values.size if e.params["huffman"] else 0
            row[layout] = (bits / n, 100 * huff / n)
        lines.append(
            f"  {k:>5} {row['entry'][0]:>10.3f} {row['mask'][0]:>10.3f} "
            f"{row['entry'][1]:>10.0f}% {row['mask'][1]:>9.0f}% {row['runs'][0]:>9.3f}"
        )
    return lines


def bench_model(name: str, methods: list[str], layout_ks: list[int]) -> None:
    onnx_file, data_file = MODELS[name]
    model_path = ROOT / "sample_models" / onnx_file
    data_path = ROOT / "sample_models" / data_file
    if not model_path.exists() or not data_path.exists():
        print(f"{name}: skipped, {model_path.name} or {data_path.name} not found")
        return
    model = onnx.load(str(model_path))
    weights = weights_of(model)
    qs = [quantize(w) for w in weights]
    n = sum(q.values.size for q in qs)
    with np.load(data_path) as npz:
        ev = Evaluator(model, {key: npz[key] for key in npz.files})
    metric = "top-1 %" if ev.labels is not None else "agree %"
    float_score = ev.score({})[0]
    int8 = {q.name: dequantize(q, q.values) for q in qs}
    ev.int8 = ev.top1(int8)
    int8_score = ev.score(int8)[0]
    raw = b"".join(q.values.astype(np.int8).tobytes() for q in qs)
    t0 = time.perf_counter()
    zst = zstandard.ZstdCompressor(level=19).compress(raw)
    zst_s = time.perf_counter() - t0
    print(f"\n{name}: {len(weights)} weight tensors, {n} weights, {len(ev.inputs)} test inputs")
    head = ("method", "bits/w", metric, "drop", "enc Mw/s", "dec Mw/s", "huff", "=int8 %")
    print("  {:<12} {:>7} {:>8} {:>6} {:>9} {:>9} {:>5} {:>8}".format(*head))
    print(f"  {'float32':<12} {32:>7.3f} {float_score:>8.2f}")
    print(f"  {'int8 raw':<12} {8:>7.3f} {int8_score:>8.2f} {float_score - int8_score:>6.2f}")
    zst_bpw = 8 * len(zst) / n
    drop8 = float_score - int8_score
    zst_speed = n / zst_s / 1e6
    print(
        f"  {'int8+zstd19':<12} {zst_bpw:>7.3f} {int8_score:>8.2f} {drop8:>6.2f} {zst_speed:>9.2f}"
    )
    for text in methods:
        r = run_method(text, weights, qs, ev)
        speed = f"{n / r.encode_s / 1e6:>9.2f} {n / r.decode_s / 1e6:>9.2f}"
        print(
            f"  {'dict ' + r.label:<12} {r.bits_per_weight:>7.3f} {r.score:>8.2f}"
            f" {float_score - r.score:>6.2f} {speed}"
            f" {100 * r.huffman_share:>4.0f}% {r.vs_int8:>8.1f}"
        )
        sys.stdout.flush()
    for line in zero_layouts(qs, layout_ks):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", choices=sorted(MODELS), help="default: all")
    parser.add_argument(
        "--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})"
    )
    parser.add_argument("--layout-ks", default="4,16,64", help="K values for the zero-layout table")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    layout_ks = [int(k) for k in args.layout_ks.split(",") if k]
    print(
        "drop = float32 score - method score (points); huff = share of weights with Huffman indices"
    )
    for name in args.model or list(MODELS):
        bench_model(name, methods, layout_ks)


if __name__ == "__main__":
    main()
