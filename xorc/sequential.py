"""Sequential reconstruction (`reconstruct_order = "sequential"`): each layer's H from the inputs
the already compressed layers before it produce (the GPTQ paper's setting for deep networks).

The layers GPTQ / OBS reconstructs are taken in graph order, grouped by the tensor they read
(layers reading the same input form one step). For each step, the part of the graph that
computes that input (`onnx_io.prefix`) runs on the calibration data with every weight compressed
so far replaced by its dequantized value; the H of the step's layers is accumulated from it, and
they are compressed at once. Weights that are not reconstructed (other policies, ConvTranspose,
no H) are rounded to nearest first and enter every step as such. One forward pass of a prefix per
step: on a chain of L layers about L/2 full passes more than the parallel mode. Per-channel
means (bias correction, sensitivities) stay those of the original model. See
docs/reconstruction.md, "Sequential mode".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xorc import bias, calibrate, hessian, onnx_io, runtime
from xorc.quantize import dequantize
from xorc.tensor import QuantTensor

if TYPE_CHECKING:
    from xorc.pipeline import TensorJob

QuantizeOne = Callable[["TensorJob", "calibrate.InputStats | None"], QuantTensor]


def reconstruct_in_order(
    model: onnx_io.SourceModel,
    jobs: list[TensorJob],
    reconstructs: Callable[[TensorJob], bool],
    stats: dict[str, calibrate.InputStats],
    calib: str | Path,
    quantize_one: QuantizeOne,
    asymmetric: bool = False,
    correct_bias: bool = True,
) -> None:
    """Fill `quantized` of every job: first those not reconstructed, then the reconstructed
    ones step by step; `stats` (the original model's, without H) gains each H it uses.

    `asymmetric` (order "asymmetric", GPTAQ): each step also runs the original model's prefix,
    so every H carries the cross moment E[x_ref x^T] and GPTQ targets the original output
    (`hessian.original_target`); the step's stats get the compressed input's channel means
    (`shifted_mean`) and, with `correct_bias`, its corrected biases enter the later steps
    (`bias.corrected_bias`)."""
    layers = onnx_io.layers(model)
    done: dict[str, np.ndarray] = {}
    later = [j for j in jobs if reconstructs(j) and j.name in layers]
    for job in jobs:
        if job not in later:
            job.quantized = quantize_one(job, stats.get(job.name))
            if not job.prequantized:
                done[job.name] = _dequantized(job)
    position = {name: i for i, name in enumerate(layers)}
    taps: list[str] = []
    for job in sorted(later, key=lambda j: position[j.name]):
        if layers[job.name].data not in taps:
            taps.append(layers[job.name].data)
    for tap in taps:
        step = [j for j in later if layers[j.name].data == tap]
        found, mean = _step_hessians(model, step, layers, tap, calib, done, asymmetric)
        for job in step:
            base = stats.get(job.name) or calibrate.InputStats(
                layers[job.name], np.zeros(0), np.zeros(0)
            )
            st = replace(base, hessian=found[job.name])
            shifted = mean is not None and mean.shape == base.mean.shape
            stats[job.name] = replace(st, shifted_mean=mean if shifted else None)
            job.quantized = quantize_one(job, stats[job.name])
            done[job.name] = _dequantized(job)
            h = found[job.name]
            stats[job.name] = replace(stats[job.name], hessian=replace(h, cross=None))
            if asymmetric and shifted and correct_bias:
                fixed = bias.corrected_bias(model, job, job.q.values, stats[job.name])
                if fixed is not None and base.layer.bias is not None:
                    done[base.layer.bias] = fixed.astype(np.float32)


def _dequantized(job: TensorJob) -> np.ndarray:
    q = job.q
    return dequantize(q.values, q.scales, q.axis, q.group).astype(job.weight.array.dtype)


def _step_hessians(
    model: onnx_io.SourceModel,
    step: list[TensorJob],
    layers: dict[str, onnx_io.Layer],
    tap: str,
    calib: str | Path,
    done: dict[str, np.ndarray],
    asymmetric: bool = False,
) -> tuple[dict[str, hessian.Hessian], np.ndarray | None]:
    """The H of the step's layers on their input computed with the compressed weights; with
    `asymmetric`, with the cross moment to the original input, and that input's channel means
    (None otherwise, or for a model input, which the compressed layers do not change)."""
    accs = {
        j.name: hessian.Accumulator(layers[j.name], j.weight.array.shape, j.weight.axis)
        for j in step
    }
    if all(a.reason is not None for a in accs.values()):
        return {name: a.result() for name, a in accs.items()}, None
    if tap in {i.name for i in model.proto.graph.input}:  # a model input: nothing upstream
        sess = runtime.source_session(model)
        data = runtime.load_data(calib, sess).take(calibrate.MAX_CALIB_SAMPLES)
        inputs = data.inputs[tap]
        for i in range(0, len(inputs), 8):
            for acc in accs.values():
                acc.add(inputs[i : i + 8])
        return {name: a.result() for name, a in accs.items()}, None
    sess = runtime.session(onnx_io.prefix(model, tap, done), model.path)
    data = runtime.load_data(calib, sess).take(calibrate.MAX_CALIB_SAMPLES)
    batches = runtime.batches(sess, data, [tap], batch=8)
    refs = iter(())
    if asymmetric:
        ref_sess = runtime.session(onnx_io.prefix(model, tap, {}), model.path)
        refs = runtime.batches(ref_sess, data, [tap], batch=8)
    count, total = 0, None
    for (x,) in batches:
        ref = next(refs)[0] if asymmetric else None
        for acc in accs.values():
            acc.add(x, ref)
        summed = calibrate.channel_sum(layers[step[0].name], x) if asymmetric else None
        if summed is not None:
            count, total = count + summed[0], summed[1] if total is None else total + summed[1]
    mean = None if total is None or count == 0 else total / count
    return {name: a.result() for name, a in accs.items()}, mean
