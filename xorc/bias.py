"""Bias correction (a compress stage): each corrected layer's bias absorbs the mean output
shift its weight changes cause on the calibration inputs (xorc.calibrate.bias_shift)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xorc import calibrate, onnx_io
from xorc.quantize import dequantize
from xorc.tensor import Encoded

if TYPE_CHECKING:
    from xorc.pipeline import TensorJob


def bias_stage(
    model: onnx_io.SourceModel, jobs: list[TensorJob], stats: dict[str, calibrate.InputStats]
) -> dict[str, np.ndarray]:
    """Stage bias correction: remove the mean output shift the weight changes cause.

    The shift is measured against the original float weights, so it covers pruning,
    quantization and the errors a lossy policy leaves. Returns the corrected biases by name
    (they travel in the stored graph) and marks the jobs whose bias was corrected.
    """
    new, corrected = corrected_biases(model, jobs, [j.enc for j in jobs], stats)
    for job in jobs:
        job.bias_corrected = job.name in corrected
    return new


def corrected_biases(
    model: onnx_io.SourceModel,
    jobs: list[TensorJob],
    encoded: list[Encoded],
    stats: dict[str, calibrate.InputStats],
) -> tuple[dict[str, np.ndarray], set[str]]:
    """The corrected bias of every layer that has one, and the weights whose bias it is.
    A pure function of its arguments: a search trial calls it too."""
    new: dict[str, np.ndarray] = {}
    corrected: set[str] = set()
    for job, e in zip(jobs, encoded, strict=True):
        st = stats.get(job.name)
        if st is None or st.layer.bias is None or job.prequantized:
            continue
        q = job.q
        delta = dequantize(e.decoded, q.scales, q.axis, q.group).astype(np.float64)
        delta -= job.weight.array
        shift = calibrate.bias_shift(st, delta)
        if shift is None:
            continue
        bias = onnx_io.initializer(model, st.layer.bias).astype(np.float64)
        if bias.shape != shift.shape:
            continue
        new[st.layer.bias] = bias - shift
        corrected.add(job.name)
    return new, corrected
