"""`compress` tensor by tensor (docs/scale.md): the path every run without calibration data,
search or global sparsity takes.

Each weight is one `Work` item: read (from external data on demand), pruned, quantized and
encoded by `encode_one`, in this process, a pool of worker processes or a Dask cluster
(xorc.parallel). Its streams are appended to the PAYLOAD file as they come back, in the fixed
order of the plan, and only its record, streams and one-number layer error are kept: memory
holds a few tensors at a time, not the model. The blob is the same bytes as the in-memory path
(`xorc.assemble`) makes, for every executor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from xorc import calibrate, fidelity, onnx_io, parallel, policies
from xorc.assemble import container_meta, stored_scales, tensor_record
from xorc.config import CompressOptions, TensorSettings
from xorc.errors import UsageError
from xorc.format import Container, TensorRecord
from xorc.format.container import SCALES
from xorc.format.payload import PayloadFile

if TYPE_CHECKING:
    from xorc.pipeline import Progress, TensorJob
    from xorc.prequant import Stored


@dataclass(frozen=True)
class Work:
    """What a worker needs for one tensor (picklable: the weight's values, or where they lie)."""

    weight: onnx_io.WeightInfo
    settings: TensorSettings
    stored: Stored | None
    options: CompressOptions
    keep_levels: bool
    stats: calibrate.InputStats | None = None  # a synthetic H (xorc/selfcalib.py)


@dataclass(frozen=True)
class Done:
    """A worker's result: the record (streams not yet placed), the streams, the layer error."""

    record: TensorRecord
    streams: list[tuple[str, bytes]]
    error: tuple[float, str] | None
    levels: np.ndarray | None


def streams_work(options: CompressOptions, calib: object) -> bool:
    """Whether a run takes the streamed path (no data, no search, no global threshold, no
    crossbar-aligned pruning)."""
    return (
        calib is None
        and options.max_drop is None
        and options.max_bits_per_weight is None
        and options.sparsity_scope != "global"
        and options.prune_structure is None
    )


def compress_if_streamed(
    model: onnx_io.SourceModel,
    options: CompressOptions,
    jobs: list[TensorJob],
    left: dict,
    calib: object,
    progress: Progress | None,
    min_fidelity: float | None,
    run_on: tuple[int | None, str | None],
    synthetic: dict[str, calibrate.InputStats] | None = None,
) -> tuple[Container, fidelity.Fidelity | None] | None:
    """`compress_streamed` on `run_on` (--jobs, --executor) when the run streams; None when it
    does not (then --jobs and --executor are refused: the in-memory path runs here)."""
    n_jobs, executor = run_on
    if not streams_work(options, calib):
        if n_jobs not in (None, 1) or executor not in (None, "local"):
            raise UsageError(
                "--jobs and --executor apply to runs without --calib, --max-drop, "
                "--max-bits-per-weight, global sparsity and --prune-structure (docs/scale.md)"
            )
        return None
    nbytes = sum(j.weight.nbytes for j in jobs)
    executor_ = parallel.make(n_jobs, executor, len(jobs), nbytes)
    extra = {"uncompressed": left}
    return compress_streamed(
        model, options, jobs, extra, progress, min_fidelity, executor_, synthetic or {}
    )


def encode_one(work: Work) -> Done:
    """One tensor: quantize, encode, its record and streams (runs in a worker)."""
    from xorc.pipeline import TensorJob, quantize_job, with_reconstruction

    job = TensorJob(work.weight, work.settings, policies.get(work.settings.policy))
    job.stored = work.stored
    job.quantized = quantize_job(job, work.options, 0.0, work.stats)
    job.encoded = job.policy.encode(job.q, job.settings, work.options)
    with_reconstruction(job)
    enc = job.enc
    dtype, scales = stored_scales(job.q, work.options)
    record = tensor_record(job, dtype, ())
    error = fidelity.layer_error(job, None)
    work.weight.release()
    return Done(
        record,
        [(SCALES, scales), *enc.streams.items()],
        error,
        enc.decoded if work.keep_levels else None,
    )


def compress_streamed(
    model: onnx_io.SourceModel,
    options: CompressOptions,
    jobs: list[TensorJob],
    extra: dict,
    progress: Progress | None,
    min_fidelity: float | None,
    executor: parallel.Executor,
    synthetic: dict[str, calibrate.InputStats] | None = None,
) -> tuple[Container, fidelity.Fidelity | None]:
    """Encode every job on `executor`, in order, into a container whose PAYLOAD is a file; then
    (unless `min_fidelity` is None) the fidelity check. `synthetic`: H by weight name."""
    keep = min_fidelity is not None and not model.external
    syn = synthetic or {}
    works = [Work(j.weight, j.settings, j.stored, options, keep, syn.get(j.name)) for j in jobs]
    total = sum(j.weight.nbytes for j in jobs)
    payload = PayloadFile()
    records, layers, levels = [], [], []
    try:
        for job, done in zip(
            jobs, executor.map(encode_one, works, [j.name for j in jobs]), strict=True
        ):
            records.append(replace(done.record, streams=payload.add(done.streams)))
            if done.error is not None:
                layers.append({"name": job.name, "error": done.error[0], "basis": done.error[1]})
            levels.append(done.levels)
            if progress is not None:
                progress(job.name, total, job.weight.nbytes)
    finally:
        executor.close()
    graph = onnx_io.strip_weights(model, {j.name: i for i, j in enumerate(jobs)})
    container = Container(
        container_meta(model, options, extra), tuple(records), graph, payload.view()
    )
    if min_fidelity is None:
        return container, None
    layers.sort(key=lambda r: (-r["error"], r["name"]))
    check = fidelity.measure_container(
        model, container, levels if keep else None, None, layers, min_fidelity
    )
    if fidelity.lossy_without_data(jobs, options.pattern, None):
        check.notes.append(fidelity.LOW_BITS_NOTE)
    return container, check
