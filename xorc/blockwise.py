"""`compress --calib` block by block (docs/reconstruction.md "Memory", docs/scale.md §2).

The layers are taken in plan order in blocks whose H and second moments (counted from the
shapes, float64) fit `--calib-memory` MiB (DEFAULT_MIB); each block gets its own pass over the
calibration data (`calibrate.Source.stats`, the same batches as one pass over every layer, so
the same numbers), then its tensors are reconstructed (GPTQ / OBS, each policy unchanged),
encoded, bias-corrected (`bias.corrected_biases`, per layer) and appended to the PAYLOAD file
(xorc/streamed.py's writer), and the block's H, weights and levels are dropped. The blob is
the same bytes as the in-memory path's (`pipeline.compress_and_measure` before this module).

Runs that need every layer at once keep the in-memory path: `--reconstruct-order sequential`,
the searches (`--max-drop`, `--max-bits-per-weight`), global sparsity, `--prune-structure` and
policies that record feature maps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xorc import calibrate, fidelity, hessian, onnx_io, policies
from xorc.assemble import container_meta, stored_scales, tensor_record
from xorc.bias import corrected_biases
from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.format import Container
from xorc.format.container import SCALES
from xorc.format.payload import PayloadFile

if TYPE_CHECKING:
    from xorc.pipeline import Progress, TensorJob

DEFAULT_MIB = 64
"""`--calib-memory`: the H and second moments of one block take at most this many MiB."""
SEQUENTIAL_MAX_BYTES = 1 << 30
"""`--reconstruct-order sequential` holds every weight: refused on models with external data
above this many bytes of weights."""


def applies(options: CompressOptions, calib: object) -> bool:
    """Whether a run calibrates block by block (see the module's docstring)."""
    return (
        calib is not None
        and options.reconstruct_order == "parallel"
        and options.max_drop is None
        and options.max_bits_per_weight is None
        and options.sparsity_scope != "global"
        and options.prune_structure is None
        and not policies.get(options.policy).records_fmap
    )


def refuse_sequential(model: onnx_io.SourceModel, jobs: list[TensorJob]) -> None:
    """UsageError (exit 2) for sequential reconstruction of a model too large to hold."""
    nbytes = sum(j.weight.nbytes for j in jobs)
    if model.external and nbytes > SEQUENTIAL_MAX_BYTES:
        raise UsageError(
            f"{model.path}: --reconstruct-order sequential or asymmetric holds every weight "
            f"({nbytes / 1e9:.2f} GB, over {SEQUENTIAL_MAX_BYTES >> 30} GiB); "
            "use --reconstruct-order parallel, which calibrates block by block"
        )


def held_bytes(job: TensorJob, wants_h: bool) -> int:
    """What a layer's statistics hold in a block: its H (all groups) and second moment."""
    shape, axis = job.weight.shape, job.weight.axis
    total = 0
    if wants_h and axis is not None and shape[axis]:
        width = int(np.prod(shape)) // int(shape[axis])
        if width <= hessian.MAX_FEATURES:
            total += 8 * width * width * int(shape[0] if len(shape) > 2 else 1)
    if job.policy.uses_moment and len(shape) >= 2:
        channels = min(int(shape[1]), calibrate.MAX_MOMENT_FEATURES)
        total += 8 * channels * channels
    return total


def plan_blocks(jobs: list[TensorJob], wants_h: set[str], budget: int) -> list[list[TensorJob]]:
    """Consecutive jobs (plan order) in blocks of at most `budget` bytes held (at least one)."""
    blocks: list[list[TensorJob]] = []
    used = 0
    for job in jobs:
        cost = held_bytes(job, job.name in wants_h)
        if not blocks or used + cost > budget:
            blocks.append([])
            used = 0
        blocks[-1].append(job)
        used += cost
    return blocks


def compress_blockwise(
    model: onnx_io.SourceModel,
    options: CompressOptions,
    jobs: list[TensorJob],
    left: dict,
    calib: str | Path,
    progress: Progress | None,
    min_fidelity: float | None,
    calib_memory: int | None = None,
) -> tuple[Container, fidelity.Fidelity | None]:
    """The container of a block-by-block run, and its fidelity check (as the in-memory path);
    `calib_memory`: MiB of H per block (default DEFAULT_MIB)."""
    from xorc.hsource import hessian_specs

    hessians = hessian_specs(jobs, options)
    moments = [j.name for j in jobs if j.policy.uses_moment]
    source = calibrate.Source.open(model, calib)
    blocks = plan_blocks(jobs, set(hessians), (calib_memory or DEFAULT_MIB) << 20)
    keep = not model.external  # levels for the in-memory fidelity check
    payload = PayloadFile()
    plain, with_bias, layers, levels, biases = [], [], [], [], {}
    total = sum(j.weight.nbytes for j in jobs)
    for block in blocks:
        names = {j.name for j in block}
        stats = {} if source is None else source.stats(names, moments, hessians)
        for job in block:
            st = stats.get(job.name)
            rec, rec_b, err, new = _encode(model, job, options, st, payload)
            plain.append(rec)
            with_bias.append(rec_b)
            biases.update(new)
            if err is not None:
                layers.append({"name": job.name, "error": err[0], "basis": err[1]})
            levels.append(job.enc.decoded if keep else None)
            job.quantized, job.encoded = None, None
            job.weight.release()
            if progress is not None:
                progress(job.name, total, job.weight.nbytes)
        del stats
    layers.sort(key=lambda r: (-r["error"], r["name"]))
    meta = container_meta(model, options, {"uncompressed": left})
    index = {j.name: i for i, j in enumerate(jobs)}

    def build(records: list, new: dict) -> Container:
        graph = onnx_io.strip_weights(model, index, new)
        return Container(meta, tuple(records), graph, payload.view())

    def measure(c: Container, threshold: float) -> fidelity.Fidelity:
        return fidelity.measure_container(
            model, c, levels if keep else None, calib, layers, threshold
        )

    if not biases:
        container = build(plain, {})
        return container, None if min_fidelity is None else measure(container, min_fidelity)
    threshold = fidelity.DEFAULT_MIN_COSINE if min_fidelity is None else min_fidelity
    container, check = fidelity.choose_bias(
        build(with_bias, biases), lambda: build(plain, {}), lambda c: measure(c, threshold)
    )
    return container, None if min_fidelity is None else check


def _encode(
    model: onnx_io.SourceModel,
    job: TensorJob,
    options: CompressOptions,
    st: calibrate.InputStats | None,
    payload: PayloadFile,
) -> tuple:
    """Quantize and encode one job, its streams into `payload`; its records without and with
    bias correction, its layer error and its corrected bias (by the bias's name)."""
    from xorc.pipeline import encode_job, quantize_job

    job.quantized = quantize_job(job, options, 0.0, st)
    encode_job(job, options)
    new, corrected = {}, set()
    if options.bias_correction and st is not None:
        new, corrected = corrected_biases(model, [job], [job.enc], {job.name: st})
    dtype, scales = stored_scales(job.q, options)
    refs = payload.add([(SCALES, scales), *job.enc.streams.items()])
    job.bias_corrected = False
    rec = replace(tensor_record(job, dtype, ()), streams=refs)
    job.bias_corrected = job.name in corrected
    rec_b = replace(tensor_record(job, dtype, ()), streams=refs)
    return rec, rec_b, fidelity.layer_error(job, st), new
