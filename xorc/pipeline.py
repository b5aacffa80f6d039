"""`compress`: the pipeline as a list of named stages over one `TensorJob` per weight.

    load model -> plan (a job per tensor) -> (calibrate) -> prune + quantize -> encode or search
    -> (bias correction) -> (feature maps) -> lay out container

Each stage is a small function that fills one field of every job, or returns its result (the
calibration statistics, the corrected biases); `compress_model` reads like the table of
contents. What a policy does is asked of its record in `xorc.policies`; the source model is
never changed (corrected biases go into the stored graph's copy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xorc import (
    aligned,
    blockwise,
    calibrate,
    fidelity,
    hsource,
    onnx_io,
    packing,
    policies,
    prequant,
    prior,
    reconstruct,
    search_stage,
    streamed,
)
from xorc.assemble import assemble, uncompressed_summary
from xorc.bias import bias_stage
from xorc.config import CompressOptions, TensorSettings
from xorc.format import Container
from xorc.hsource import calibration_stage, synthetic_stage
from xorc.policies import Policy
from xorc.quantize import (
    expand_scales,
    global_threshold,
    group_of,
    max_level,
    prune_below,
    prune_pattern,
    prune_to,
    quantize,
)
from xorc.tensor import Encoded, QuantTensor

if TYPE_CHECKING:
    from xorc.tiles import Structure

Progress = Callable[[str, int, int], None]
"""Called once per tensor after it is encoded: its name, the bytes of all weights, its bytes."""


@dataclass
class TensorJob:
    """One weight on its way through the stages; each stage fills its own field.

    Attributes:
        weight: the tensor as the model holds it (plan).
        settings: the options that apply to it after every rule (plan).
        policy: the record of `settings.policy` (plan).
        quantized: integer levels and scales (quantize).
        encoded: what the codec stores (encode, or the search).
        bias_corrected: its layer's bias was corrected (bias correction).
        reconstruction: how GPTQ / OBS treated it, or why not (quantize; None: not asked).
        stored: an int8/uint8 weight's levels, scales and offsets (plan; xorc.prequant).
    """

    weight: onnx_io.WeightInfo
    settings: TensorSettings
    policy: Policy
    quantized: QuantTensor | None = field(default=None, repr=False)
    encoded: Encoded | None = field(default=None, repr=False)
    bias_corrected: bool = False
    reconstruction: dict | None = None
    stored: prequant.Stored | None = field(default=None, repr=False)
    aligned: tuple[Structure, dict] | None = None  # --prune-structure (xorc/aligned.py)

    @property
    def name(self) -> str:
        return self.weight.name

    @property
    def prequantized(self) -> bool:
        """An int8/uint8 weight of an already quantized model (xorc.prequant)."""
        return self.weight.dtype in prequant.RANGES

    @property
    def q(self) -> QuantTensor:
        if self.quantized is None:
            raise RuntimeError(f"tensor {self.name!r} has not been quantized yet")
        return self.quantized

    @property
    def enc(self) -> Encoded:
        if self.encoded is None:
            raise RuntimeError(f"tensor {self.name!r} has not been encoded yet")
        return self.encoded


def compress_model(
    model_path: str | Path,
    options: CompressOptions,
    calib: str | Path | None = None,
    progress: Progress | None = None,
) -> Container:
    """Compress an ONNX model into a container (docs/format.md).

    Args:
        model_path: the ONNX file.
        options: the effective options (see xorc.config).
        calib: optional calibration .npz (input sensitivity, bias correction).
        progress: optional callback, once per encoded tensor.
    """
    return compress_and_measure(model_path, options, calib, progress, None)[0]


def compress_and_measure(
    model_path: str | Path,
    options: CompressOptions,
    calib: str | Path | None = None,
    progress: Progress | None = None,
    min_fidelity: float | None = fidelity.DEFAULT_MIN_COSINE,
    n_jobs: int | None = None,
    executor: str | None = None,
    calib_memory: int | None = None,
) -> tuple[Container, fidelity.Fidelity | None]:
    """`compress_model`, then (unless `min_fidelity` is None) the fidelity check of the
    compressed model against the original (xorc/fidelity.py), with that threshold. A run
    without data, search or global sparsity streams tensor by tensor on `n_jobs` processes or
    `executor` (xorc/streamed.py); one with data on a model with external data (or with
    `calib_memory`) calibrates block by block, the H of a block within `calib_memory` MiB
    (xorc/blockwise.py); the others hold every weight."""
    model = onnx_io.load_model(model_path)
    options = options.resolved(calib is not None)
    jobs, left = plan_stage(model, options)
    run = (n_jobs, executor)
    synthetic = synthetic_stage(model, jobs, options) if calib is None else {}
    done = streamed.compress_if_streamed(
        model, options, jobs, left, calib, progress, min_fidelity, run, synthetic
    )
    if done is not None:
        return done
    if blockwise.applies(options, calib) and (model.external or calib_memory is not None):
        assert calib is not None
        return blockwise.compress_blockwise(
            model, options, jobs, left, calib, progress, min_fidelity, calib_memory
        )
    sequential = options.reconstruct_order != "parallel" and calib is not None
    if sequential:
        blockwise.refuse_sequential(model, jobs)
    stats = calibration_stage(model, jobs, calib, None if sequential else options)
    quantize_stage(jobs, options, stats, (model, calib) if sequential else None)
    extra: dict = {"uncompressed": left}
    if options.max_drop is not None or options.max_bits_per_weight is not None:
        extra["search"] = search_stage.search_stage(model, jobs, options, stats, calib).to_json()
        for job in jobs:
            _tick(progress, job, jobs)
        for job in jobs:
            with_reconstruction(job)
    else:
        encode_stage(jobs, options, progress)
    biases = bias_stage(model, jobs, stats) if stats and options.bias_correction else {}
    fmap = None
    if policies.get(options.policy).records_fmap and calib is not None:
        from xorc import activations

        fmap = activations.feature_map_stage(model, calib)
    container = assemble(model, jobs, options, biases, fmap, extra_meta=extra)
    check = None
    if biases and "search" not in extra:  # bias correction stays only where it helps
        threshold = fidelity.DEFAULT_MIN_COSINE if min_fidelity is None else min_fidelity

        def without() -> Container:
            for job in jobs:
                job.bias_corrected = False
            return assemble(model, jobs, options, {}, fmap, extra_meta=extra)

        container, check = fidelity.keep_bias_if_better(
            model, container, without, jobs, stats, calib, threshold
        )
    if min_fidelity is None:
        return container, None
    check = check or fidelity.check(model, container, jobs, stats, calib, min_fidelity)
    if fidelity.lossy_without_data(jobs, options.pattern, calib):
        check.notes.append(fidelity.LOW_BITS_NOTE)
    return container, check


def plan_tensors(model: onnx_io.SourceModel, options: CompressOptions) -> list[TensorJob]:
    """Stage plan: a job for every compressible weight that is not skipped."""
    return plan_stage(model, options)[0]


def plan_stage(
    model: onnx_io.SourceModel, options: CompressOptions
) -> tuple[list[TensorJob], dict]:
    """Stage plan: a job for every weight of the rule table (xorc.weight_rules) that is not
    skipped, and what stays uncompressed and why (META `uncompressed`, docs/format.md §3.1)."""
    jobs, left = [], []
    for w in onnx_io.find_weights(model):
        settings = options.settings_for(w.name, w.node_names)
        reason = w.reason if not w.compressible else "skipped by the configuration"
        if w.compressible and not settings.skip:
            job = TensorJob(w, settings, policies.get(settings.policy))
            reason = _plan_prequantized(model, job, options) if job.prequantized else ""
            if not reason:
                jobs.append(job)
                continue
        left.append((w.name, w.size, reason))
    return jobs, uncompressed_summary(left)


def _plan_prequantized(model: onnx_io.SourceModel, job: TensorJob, options: CompressOptions) -> str:
    """Fill `job.stored` for an int8/uint8 weight (xorc.prequant.plan); the reason when it
    stays as it is."""
    s = job.settings
    job.stored, reason = prequant.plan(model, job.weight, s.bits, job.policy, options)
    return reason


def quantize_stage(
    jobs: list[TensorJob],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    sequential_on: tuple[onnx_io.SourceModel, str | Path] | None = None,
) -> None:
    """Stages prune and quantize: integer levels and scales for every job; with
    `sequential_on` (model, calibration data), reconstructed layers in graph order, each on
    the inputs of the layers compressed before it (xorc/sequential.py)."""
    threshold = 0.0
    if options.sparsity_scope == "global":
        floats = [j.weight.array for j in jobs if not j.prequantized]
        threshold = global_threshold(floats, options.sparsity)

    def reconstructs(job: TensorJob) -> bool:
        return hsource.reconstructs(job, options)

    if options.sparsity_scope == "global" and options.prune == "obs" and options.sparsity > 0:
        from xorc import allocate

        allocate.allocate_jobs(
            jobs, options, stats, lambda j, o, st: quantize_job(j, o, 0.0, st), reconstructs
        )
        return
    if sequential_on is not None:
        from xorc import sequential

        sequential.reconstruct_in_order(
            *sequential_on[:1], jobs, reconstructs, stats, sequential_on[1],
            lambda j, st: quantize_job(j, options, threshold, st),
            options.reconstruct_order == "asymmetric", options.bias_correction,
        )  # fmt: skip
        return
    for job in jobs:
        job.quantized = quantize_job(job, options, threshold, stats.get(job.name))


def quantize_job(
    job: TensorJob,
    options: CompressOptions,
    threshold: float,
    st: calibrate.InputStats | None,
) -> QuantTensor:
    """Prune and quantize one tensor, with the calibration data its policy uses."""
    w, s = job.weight, job.settings
    if job.stored is not None:
        st_ = job.stored
        return QuantTensor(w.name, st_.levels, st_.bits, st_.scales, st_.axis)
    original = w.array.astype(np.float32)
    if options.prune_structure is None:
        values = _magnitude_pruned(original, w.axis, s.sparsity, options, threshold)
    else:
        values, job.aligned = aligned.prune_tensor(
            original, w.axis, s.sparsity, options.prune_structure, options.crossbar, st
        )
    axis = w.axis if s.per_channel else None
    group = None if job.policy.name == "insitu" else group_of(w.shape, axis, options.group_size)
    done = None
    on_prior = hsource.reconstructs(job, options) and hsource.on_prior(job, options)
    hess = st.hessian if st is not None else None
    if on_prior:  # kernels: the prior; other layers: a synthetic H where there is one
        kernel = prior.prior_hessian(w)
        source = "prior" if kernel is not None or hess is None else "synthetic"
        hess = kernel if kernel is not None else hess
    if hsource.reconstructs(job, options) and (hess is not None or not on_prior):
        method = reconstruct.Method(
            s.bits, s.sparsity, options.pattern, "magnitude" if job.aligned else options.prune,
            options.reconstruct != "none", options.act_order, options.damp, options.scale_dtype,
            options.clip_search, group,
        )  # fmt: skip
        done, job.reconstruction = reconstruct.for_tensor(
            original, values, w.axis, s.per_channel, hess, method
        )
        if on_prior:
            job.reconstruction = {**job.reconstruction, "h": source}
    levels, scales = done or quantize(values, s.bits, axis, options.scale_dtype, group)
    scale = expand_scales(scales, axis, values.shape, group)
    imp = None
    if job.policy.uses_sensitivity:
        sens = calibrate.sensitivity(st, w.array.shape) if st is not None else None
        imp = error_weight(levels.shape, scale, sens)
    exact, moment = None, None
    if job.policy.uses_moment and st is not None and st.moment is not None and axis is not None:
        top = float(max_level(s.bits))
        exact = np.clip(values / scale, -top, top)
        moment = st.moment
    if job.policy.uses_hessian and st is not None and st.hessian is not None:
        exact, moment = _hessian_inputs(values, scale, axis, s.bits, st.hessian.moment)
    return QuantTensor(w.name, levels, s.bits, scales, axis, imp, exact, moment, group)


def _hessian_inputs(
    values: np.ndarray, scale: np.ndarray, axis: int | None, bits: int, h: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Unrounded levels and the H of a one-group layer (policy `uses_hessian`), else None;
    `scale` broadcasts over the weight (`expand_scales`)."""
    if h is None or h.shape[0] != 1 or axis is None:
        return None, None
    top = float(max_level(bits))
    return np.clip(values / scale, -top, top), h[0]


def _magnitude_pruned(
    values: np.ndarray,
    out_axis: int | None,
    sparsity: float,
    options: CompressOptions,
    threshold: float,
) -> np.ndarray:
    """The weights after magnitude pruning (global threshold, per tensor, or N:M)."""
    if options.pattern is not None and out_axis is not None:
        return prune_pattern(values, out_axis, *options.pattern)
    if options.sparsity_scope == "global" and sparsity == options.sparsity:
        return prune_below(values, threshold)
    return prune_to(values, sparsity) if sparsity > 0 else values


def error_weight(
    shape: tuple[int, ...], scale: np.ndarray, sensitivity: np.ndarray | None
) -> np.ndarray:
    """Per-weight importance for the codecs: the cost of a one-level error at each weight.

    A level error of d changes the weight by d × scale (of its channel or group, `scale`
    broadcasting over the weight: `expand_scales`) and the layer output by that times the
    input, so the weight is scale × input sensitivity (1 without calibration data).
    """
    base = np.ones(shape, np.float32) if sensitivity is None else sensitivity
    return (base * scale).astype(np.float32)


def encode_stage(
    jobs: list[TensorJob], options: CompressOptions, progress: Progress | None = None
) -> None:
    """Stage encode: each job's policy encodes its tensor."""
    for job in jobs:
        encode_job(job, options)
        _tick(progress, job, jobs)


def encode_job(job: TensorJob, options: CompressOptions) -> None:
    """Encode one job with its policy (its present tiles alone when shorter, docs/format.md
    §3.6 `coded`), what reconstruction did in its stats."""
    job.encoded = job.policy.encode(job.q, job.settings, options)
    packing.pack_present(job, options)
    with_reconstruction(job)


def with_reconstruction(job: TensorJob) -> None:
    """The job's encoding stats get its `reconstruction` record (GPTQ / OBS), if any."""
    if job.reconstruction is not None:
        job.encoded = replace(
            job.enc, stats={**job.enc.stats, "reconstruction": job.reconstruction}
        )


def _tick(progress: Progress | None, job: TensorJob, jobs: list[TensorJob]) -> None:
    if progress is not None:
        progress(job.name, sum(j.weight.nbytes for j in jobs), job.weight.nbytes)
