"""Calibration: statistics of each layer's input, and what xorc derives from them.

For a weight w[o, i, ...] that multiplies input channel i, an error Δw changes the output by
Δw·x_i. So:

* the **sensitivity** of input channel i is E[x_i²], the mean square of the layer's input over
  the calibration samples and spatial positions; the `importance` policy weighs an error by the
  weight change times this sensitivity;
* the **second moment** E[x x^T] of the input features, for layers whose weight rows read the
  input channels directly (Gemm, MatMul, 1x1 Conv), lets the dictionary encoder compensate
  errors (docs/codecs/dictionary.md, 7.3);
* the **mean shift** of output channel o is Σ_i Δw[o, i, ...]·E[x_i]; *bias correction*
  (Nagel et al., ICCV 2019, empirical variant) subtracts it from the layer's bias, so that
  quantization and codec errors do not move the mean of the layer's output.

The inputs are read from onnxruntime intermediate outputs of the main graph; weights in
subgraphs, or read by more than one node, are left alone (sensitivity 1, no correction).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from xorc import hessian, onnx_io, runtime

MAX_CALIB_SAMPLES = 512
STATS_BATCH_BYTES = 128 << 20
"""The statistics pass runs batches whose layer inputs, all together, take at most this."""
MAX_MOMENT_FEATURES = 4096
"""Inputs with more channels get no second moment (it would take 8 C^2 bytes)."""


@dataclass(frozen=True)
class InputStats:
    """Per-input-channel mean and mean square of one layer's data input."""

    layer: onnx_io.Layer
    mean: NDArray[np.float64]
    mean_square: NDArray[np.float64]
    moment: NDArray[np.float64] | None = None  # [C, C] E[x x^T], when asked for
    hessian: hessian.Hessian | None = None  # per-row features' E[x x^T] (xorc/hessian.py)
    shifted_mean: NDArray[np.float64] | None = None  # asymmetric order: the compressed input's


def input_stats(
    model: onnx_io.SourceModel,
    calib_path: str | Path | runtime.Dataset,
    moments: Collection[str] = (),
    hessians: Mapping[str, tuple[tuple[int, ...], int | None]] | None = None,
) -> dict[str, InputStats]:
    """Run the model on the calibration data; statistics of every layer input, by weight name.
    The weights named in `moments` also get their input's second moment (channels-last
    features; inputs of at most MAX_MOMENT_FEATURES channels); those in `hessians` (name ->
    (shape, output axis)) the H of their rows' features (xorc/hessian.py). `calib_path` may
    also be the inputs themselves (xorc/selfcalib.py)."""
    source = Source.open(model, calib_path)
    if source is None:  # no float layer reads a weight directly (a weight-only int8 model, say)
        return {}
    return source.stats(source.layers, moments, hessians)


@dataclass
class Source:
    """A session on the source model that yields every layer input, and its calibration data:
    `stats` can be asked for all layers at once or for a block of them (xorc/blockwise.py), with
    the same batches, so a layer's statistics are the same numbers either way."""

    layers: dict[str, onnx_io.Layer]
    taps: list[str]
    sess: runtime.ort.InferenceSession
    data: runtime.Dataset

    @classmethod
    def open(
        cls, model: onnx_io.SourceModel, calib_path: str | Path | runtime.Dataset
    ) -> Source | None:
        layers = onnx_io.layers(model, reach=True)  # Constant weights, shape ops: onnx_io.reach
        taps = sorted({layer.data for layer in layers.values()})
        if not taps:
            return None
        sess = runtime.source_session(model, taps)
        data = (
            calib_path
            if isinstance(calib_path, runtime.Dataset)
            else runtime.load_data(calib_path, sess)
        ).take(MAX_CALIB_SAMPLES)
        return cls(layers, taps, sess, data)

    def stats(
        self,
        names: Collection[str],
        moments: Collection[str] = (),
        hessians: Mapping[str, tuple[tuple[int, ...], int | None]] | None = None,
    ) -> dict[str, InputStats]:
        """`input_stats` of the layers of the weights in `names` (one pass over the data)."""
        layers = {n: layer for n, layer in self.layers.items() if n in names}
        accs = {
            name: hessian.Accumulator(layers[name], shape, axis)
            for name, (shape, axis) in (hessians or {}).items()
            if name in layers
        }
        want = sorted({layer.data for layer in layers.values()})
        if not want:
            return {}
        wanted = {f"{_kind(layers[w])}:{layers[w].data}" for w in moments if w in layers}
        second: dict[str, list] = {}  # (layer kind, tap) -> [feature vectors, X^T X]
        sums: dict[str, list] = {}  # tap -> [count, sum, sum of squares], per (layer kind, tap)
        for outputs in tap_batches(self.sess, self.data, self.taps, want):
            for tap, x in zip(want, outputs, strict=True):
                for kind in {_kind(layer) for layer in layers.values() if layer.data == tap}:
                    axes = _sample_axes(kind, x)
                    if axes is None:
                        continue
                    acc = sums.setdefault(f"{kind}:{tap}", [0, 0.0, 0.0])
                    acc[0] += int(np.prod([x.shape[a] for a in axes]))
                    acc[1] = acc[1] + x.sum(axis=axes, dtype=np.float64)
                    acc[2] = acc[2] + np.square(x).sum(axis=axes, dtype=np.float64)
                    if f"{kind}:{tap}" in wanted:
                        _add_moment(second, f"{kind}:{tap}", x.astype(np.float64), kind)
                for acc_h in (a for a in accs.values() if a.layer.data == tap):
                    acc_h.add(x)
        out = {}
        for name, layer in layers.items():
            acc = sums.get(f"{_kind(layer)}:{layer.data}")
            h = accs[name].result() if name in accs else None
            if acc is not None and acc[0]:
                mom = second.get(f"{_kind(layer)}:{layer.data}") if name in moments else None
                moment = mom[1] / mom[0] if mom is not None and mom[0] else None
                out[name] = InputStats(layer, acc[1] / acc[0], acc[2] / acc[0], moment, h)
            elif h is not None:  # no per-channel statistics (MatMul's first operand), but an H
                out[name] = InputStats(layer, np.zeros(0), np.zeros(0), None, h)
        return out


def tap_batches(
    sess: runtime.ort.InferenceSession,
    data: runtime.Dataset,
    taps: list[str],
    want: list[str] | None = None,
) -> Iterator[list[NDArray]]:
    """Every layer input (`taps`) of the data, batch by batch: the first sample alone, then
    as many samples at once as keep one batch's layer inputs within STATS_BATCH_BYTES (at least
    one), so the pass holds one small batch of activations whatever the data or batch size.
    With `want` (some of the taps), only those are yielded, in the same batches."""
    first = data.take(1)
    out = next(runtime.batches(sess, first, taps, batch=1))
    per_sample = sum(x.nbytes for x in out)  # one sample's (runtime.batches cuts the padding)
    if want is not None:
        out = [out[taps.index(t)] for t in want]
    yield out
    del out
    batch = max(1, STATS_BATCH_BYTES // max(per_sample, 1))
    rest = runtime.Dataset({k: v[first.n_samples :] for k, v in data.inputs.items()}, None)
    if rest.n_samples:
        yield from runtime.batches(sess, rest, taps if want is None else want, batch=batch)


def _add_moment(second: dict[str, list], key: str, x: NDArray[np.float64], kind: str) -> None:
    """Accumulate X^T X over a batch's feature vectors (channel axis 1 for 'conv', the last axis
    for 'last'; `_sample_axes` has checked the rank)."""
    channels = x.shape[1] if kind == "conv" else x.shape[-1]
    if channels > MAX_MOMENT_FEATURES:
        return
    feats = (np.moveaxis(x, 1, -1) if kind == "conv" else x).reshape(-1, channels)
    acc = second.setdefault(key, [0, 0.0])
    acc[0] += feats.shape[0]
    acc[1] = acc[1] + feats.T @ feats


def channel_sum(layer: onnx_io.Layer, x: NDArray) -> tuple[int, NDArray[np.float64]] | None:
    """How many values of each input channel a batch of the layer's input holds, and their
    sum per channel (None where the layer's input has no channel axis)."""
    axes = _sample_axes(_kind(layer), x)
    if axes is None:
        return None
    return int(np.prod([x.shape[a] for a in axes])), x.sum(axis=axes, dtype=np.float64)


def _kind(layer: onnx_io.Layer) -> str:
    """How the input's channels are laid out: 'conv' (axis 1), 'last' (last axis) or 'none'."""
    if layer.op_type in ("Conv", "ConvTranspose"):
        return "conv"
    return "last" if layer.op_type == "Gemm" or layer.weight_index == 1 else "none"


def _sample_axes(kind: str, x: NDArray) -> tuple[int, ...] | None:
    """The axes to average over, leaving the input-channel axis."""
    if kind == "conv":
        return tuple(d for d in range(x.ndim) if d != 1) if x.ndim >= 2 else None
    if kind == "last":
        return tuple(range(x.ndim - 1)) if x.ndim >= 1 else None
    return None  # MatMul with the weight as first input: channels are rows of x; not handled


def per_weight(stats: InputStats, values: NDArray[np.float64], shape: tuple[int, ...]) -> NDArray:
    """Broadcast a per-input-channel vector to the weight's shape (None when it does not fit)."""
    layer = stats.layer
    if layer.op_type == "Conv":
        out_ch, in_per_group = shape[0], shape[1]
        group_of = np.arange(out_ch) // max(out_ch // layer.group, 1)
        idx = group_of[:, None] * in_per_group + np.arange(in_per_group)[None, :]
        per = values[np.minimum(idx, values.size - 1)]
    elif layer.op_type == "ConvTranspose":
        per = np.repeat(values[: shape[0], None], shape[1], axis=1)
    elif layer.trans_b:
        per = np.broadcast_to(values[None, :], shape[:2])
    else:
        per = np.broadcast_to(values[:, None], shape[:2])
    return np.broadcast_to(per.reshape(*per.shape, *([1] * (len(shape) - 2))), shape)


def sensitivity(stats: InputStats, shape: tuple[int, ...]) -> NDArray[np.float32] | None:
    """E[x²] of the input channel each weight multiplies, or None when the shapes do not fit."""
    if not _fits(stats, shape):
        return None
    return per_weight(stats, stats.mean_square, shape).astype(np.float32)


def bias_shift(stats: InputStats, delta_w: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Mean output shift per output channel caused by the weight change `delta_w`."""
    shape = delta_w.shape
    if not _fits(stats, shape) or stats.layer.op_type == "ConvTranspose":
        return None
    weighted = delta_w * per_weight(stats, stats.mean, shape)
    if stats.layer.op_type == "Conv":
        return weighted.reshape(shape[0], -1).sum(axis=1)
    return weighted.sum(axis=1) if stats.layer.trans_b else weighted.sum(axis=0)


def _fits(stats: InputStats, shape: tuple[int, ...]) -> bool:
    layer = stats.layer
    if len(shape) < 2:
        return False
    if layer.op_type == "Conv":
        return stats.mean.size == shape[1] * layer.group
    if layer.op_type == "ConvTranspose":
        return stats.mean.size == shape[0]
    return len(shape) == 2 and stats.mean.size == (shape[1] if layer.trans_b else shape[0])
