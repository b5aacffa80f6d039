"""Which H each tensor's reconstruction gets, and the stages that compute them.

A job that GPTQ / OBS pruning reconstructs (`reconstructs`) takes its H from the `--calib` data
(`calibration_stage`, with `hessian_specs`), from synthetic inputs made from the model's
declared input shapes (`synthetic_stage`, `--reconstruct synthetic`, xorc/selfcalib.py) or from
the data-free prior (xorc/prior.py; `on_prior` covers both data-free sources). See
docs/reconstruction.md "Without data".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from xorc import calibrate, onnx_io, prior, selfcalib, streamed
from xorc.config import CompressOptions

if TYPE_CHECKING:
    from xorc.pipeline import TensorJob


def calibration_stage(
    model: onnx_io.SourceModel,
    jobs: list[TensorJob],
    calib: str | Path | None,
    options: CompressOptions | None = None,
) -> dict[str, calibrate.InputStats]:
    """Stage calibrate (with --calib): every layer input's statistics, by weight name; the
    second moment for the tensors whose policy compensates errors with it; the H of the
    tensors that GPTQ / OBS pruning reconstructs (resolved `options`; none without them)."""
    if calib is None:
        return {}
    moments = [j.name for j in jobs if j.policy.uses_moment]
    return calibrate.input_stats(model, calib, moments, hessian_specs(jobs, options))


def hessian_specs(
    jobs: list[TensorJob], options: CompressOptions | None
) -> dict[str, tuple[tuple[int, ...], int | None]]:
    """The jobs that get an H from the data (name -> shape, output axis): those GPTQ / OBS
    reconstructs on data (resolved `options`; none without them) and policies that use it."""
    return {
        j.name: (j.weight.shape, j.weight.axis)
        for j in jobs
        if (options is not None and reconstructs(j, options) and not on_prior(j, options))
        or j.policy.uses_hessian
    }


def synthetic_stage(
    model: onnx_io.SourceModel, jobs: list[TensorJob], options: CompressOptions
) -> dict[str, calibrate.InputStats]:
    """Stage synthetic H (`--reconstruct synthetic`, the default without --calib, on the
    streamed path): the H from synthetic inputs (xorc/selfcalib.py) of each reconstructed layer
    that has no prior H (1x1 Conv, Gemm, MatMul), at 8 bits without pruning; {} otherwise."""
    if options.reconstruct != "synthetic" or not streamed.streams_work(options, None):
        return {}
    wanted = [
        j.name
        for j in jobs
        if reconstructs(j, options)
        and on_prior(j, options)
        and prior.prior_hessian(j.weight) is None
        and j.settings.bits == selfcalib.BITS
        and not pruning(j, options)
    ]
    return selfcalib.synthetic_stats(model, jobs, wanted)


def reconstructs(job: TensorJob, options: CompressOptions) -> bool:
    """Whether GPTQ or OBS pruning applies to a job (float weight, a policy that uses it)."""
    if job.prequantized or not job.policy.reconstructs:
        return False
    return options.reconstruct in ("gptq", "synthetic", "prior") or (
        options.prune == "obs" and pruning(job, options)
    )


def pruning(job: TensorJob, options: CompressOptions) -> bool:
    return job.settings.sparsity > 0 or options.pattern is not None


def on_prior(job: TensorJob, options: CompressOptions) -> bool:
    """Whether a reconstructed job's H is data-free (synthetic inputs or the prior), not the
    data's."""
    return options.reconstruct in ("synthetic", "prior") and not (
        options.prune == "obs" and pruning(job, options)
    )
