"""Bias correction (a compress stage): each corrected layer's bias absorbs the mean output
shift its weight changes cause on the calibration inputs (xorc.calibrate.bias_shift)."""

from __future__ import annotations

from dataclasses import replace
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
        fixed = None if st is None else corrected_bias(model, job, e.decoded, st)
        if fixed is not None:
            assert st is not None and st.layer.bias is not None
            new[st.layer.bias] = fixed
            corrected.add(job.name)
    return new, corrected


def corrected_bias(
    model: onnx_io.SourceModel, job: TensorJob, levels: np.ndarray, st: calibrate.InputStats
) -> np.ndarray | None:
    """The layer's bias minus the mean output shift of its weight as `levels` (decoded) give
    it, or None (no bias, or shapes that do not fit). With `st.shifted_mean` (asymmetric
    order) the shift is Q E[x] - W E[x_ref]: the input the compressed layers before produce
    against the original model's."""
    if st.layer.bias is None or job.prequantized:
        return None
    q = job.q
    deq = dequantize(levels, q.scales, q.axis, q.group).astype(np.float64)
    shift = calibrate.bias_shift(st, deq - job.weight.array)
    if shift is not None and st.shifted_mean is not None:
        shift = calibrate.bias_shift(replace(st, mean=st.shifted_mean), deq)
        ref = calibrate.bias_shift(st, job.weight.array.astype(np.float64))
        shift = None if shift is None or ref is None else shift - ref
    if shift is None:
        return None
    bias = onnx_io.initializer(model, st.layer.bias).astype(np.float64)
    return bias - shift if bias.shape == shift.shape else None
