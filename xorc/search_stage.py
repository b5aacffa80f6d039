"""The `--max-drop` / `--max-bits-per-weight` stage of `compress` (xorc.pipeline): per layer
for a `per_layer` policy (xorc.mixed), else over the policy's one global knob (xorc.search)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xorc import calibrate, onnx_io, policies, search
from xorc.assemble import stored_scales
from xorc.bias import corrected_biases
from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.tensor import Encoded

if TYPE_CHECKING:
    from xorc import mixed
    from xorc.pipeline import TensorJob


def search_stage(
    model: onnx_io.SourceModel,
    jobs: list[TensorJob],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    calib: str | Path | None,
) -> search.SearchResult | mixed.MixedResult:
    """Stage --max-drop (the smallest blob within the drop) or --max-bits-per-weight (the most
    accurate blob within the size): per layer for a `per_layer` policy (xorc/mixed.py; layers
    left in float leave `jobs`), else search the policy's knob; fills every job's encoding."""
    flag = "--max-drop" if options.max_bits_per_weight is None else "--max-bits-per-weight"
    if options.max_drop is not None and options.max_bits_per_weight is not None:
        raise UsageError("give --max-drop or --max-bits-per-weight, not both")
    policy = policies.get(options.policy)
    if policy.per_layer:  # bits and sparsity per layer, from a sensitivity analysis
        from xorc import mixed

        return mixed.search_stage(model, jobs, options, stats, calib)
    knob = policy.search
    if knob is None:
        raise UsageError(
            f"{flag} works with policy {', '.join(policies.SEARCHABLE + policies.PER_LAYER)}, "
            f"not {policy.name!r}"
        )
    searched = [j.policy.name == policy.name for j in jobs]
    fixed = [
        None if s else j.policy.encode(j.q, j.settings, options)
        for j, s in zip(jobs, searched, strict=True)
    ]
    codec_options = [j.policy.codec_options(j.settings, options) for j in jobs]
    encode_at = knob.make([j.q for j in jobs], codec_options, fixed)
    scale_bytes = sum(len(stored_scales(j.q, options)[1]) for j in jobs)
    if options.max_bits_per_weight is not None:
        n_weights = sum(j.q.values.size for j in jobs)
        budget = int(options.max_bits_per_weight * n_weights / 8)
        result = search.fit_size(knob.grid, encode_at, budget, scale_bytes, knob.name)
    else:
        trial = TrialSetup(knob, encode_at, scale_bytes)
        result = _accuracy_search(model, jobs, options, stats, calib, trial)
    for job, encoded in zip(jobs, result.encoded, strict=True):
        job.encoded = encoded
    return result


@dataclass(frozen=True)
class TrialSetup:
    """What a search trial needs: the knob, the encoding at a knob value, the scales' bytes."""

    knob: policies.SearchKnob
    encode_at: policies.EncodeAt
    scale_bytes: int


def _accuracy_search(
    model: onnx_io.SourceModel,
    jobs: list[TensorJob],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    calib: str | Path | None,
    trial: TrialSetup,
) -> search.SearchResult:
    """--max-drop: measure each trial on the calibration data, bias correction included."""
    if calib is None:
        raise UsageError("--max-drop needs --calib DATA.npz to measure the drop on")
    if options.max_drop is None:
        raise UsageError("an accuracy search needs --max-drop")
    use_bias = bool(stats) and options.bias_correction

    def biases(encoded: list[Encoded]) -> dict[str, np.ndarray]:
        return corrected_biases(model, jobs, encoded, stats)[0] if use_bias else {}

    quantized = [j.q for j in jobs]
    probe = search.AccuracyProbe(model, calib, quantized, [j.weight.dtype for j in jobs], biases)
    grid, name = trial.knob.grid, trial.knob.name
    return search.search(grid, trial.encode_at, probe, options.max_drop, name, trial.scale_bytes)
