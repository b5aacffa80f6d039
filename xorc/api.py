"""The library API behind every command: compress, inspect, decompress, verify.

Heavy modules (onnx, onnxruntime, the encoders) are imported inside the functions that need
them, so that `inspect` starts fast (tests/test_layering.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.format import atomic_output, map_file, read_bytes, v1
from xorc.report import Summary, summarize

if TYPE_CHECKING:
    from collections.abc import Sequence

    from xorc.datapath import AreaEstimate, SimResult
    from xorc.datapath.crossbar import CrossbarResult
    from xorc.fmap import FmapResult
    from xorc.sensitivity import Analysis
    from xorc.verify import VerifyReport

PathLike = str | os.PathLike[str]


def _same_file(a: PathLike, b: PathLike) -> bool:
    """Both exist and are one file (a hard link to the input is the input)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(inputs: list[PathLike | None], out: PathLike) -> None:
    out_path = Path(out).resolve()
    for p in inputs:
        if p is not None and (Path(p).resolve() == out_path or _same_file(p, out_path)):
            raise UsageError(f"{out}: the output would overwrite an input; choose another name")
    if out_path.is_dir():
        raise UsageError(f"{out}: is a directory")


def compress(
    model: PathLike,
    out: PathLike,
    options: CompressOptions | None = None,
    calib: PathLike | None = None,
    progress: Callable[[str, int], None] | None = None,
    min_fidelity: float | None = 0.99,
    jobs: int | None = None,
    executor: str | None = None,
    calib_memory: int | None = None,
) -> Summary:
    """Compress `model` into the blob `out` (written atomically); returns its summary, with
    the fidelity check against the original (`Summary.fidelity`; docs/reconstruction.md) at
    threshold `min_fidelity` (None: no check). `jobs` worker processes (None: one per core)
    or `executor` ("dask:ADDRESS") encode the tensors (docs/scale.md); the blob is the same.
    `calib_memory`: MiB of H per calibration block (docs/reconstruction.md, "Memory")."""
    _check_output([model, calib], out)
    from xorc.pipeline import compress_and_measure

    container, check = compress_and_measure(
        model, options or CompressOptions(), calib, progress, min_fidelity, jobs, executor,
        calib_memory,
    )  # fmt: skip
    with atomic_output(out) as (f, tmp):
        v1.write_to(container, f)
        f.flush()
        summary = summarize(map_file(tmp))  # read back: an invalid blob is never left behind
    summary.fidelity = None if check is None else check.to_json()
    return summary


def analyze(
    model: PathLike,
    calib: PathLike,
    options: CompressOptions | None = None,
    bits: Sequence[int] = (2, 3, 4, 5, 6, 7, 8),
    sparsity: Sequence[float] = (0.0, 0.5, 0.75, 0.9),
    samples: int = 16,
    progress: Callable[[str, int], None] | None = None,
) -> Analysis:
    """Per-layer sensitivity: each layer alone at every bits x sparsity (docs/sensitivity.md)."""
    from xorc.sensitivity import analyze as run

    return run(model, calib, options, bits, sparsity, samples, progress)


def inspect(blob: PathLike) -> Summary:
    """Header, sections (with CRC status) and per-tensor records of a blob."""
    return summarize(map_file(blob))


def decompress(
    blob: PathLike,
    out: PathLike,
    external_data: str = "auto",
    progress: Callable[[str, int], None] | None = None,
) -> Path:
    """Rebuild a runnable ONNX model with dequantized weights, tensor by tensor; the weights
    go to `OUT.data` with `external_data` "always", or "auto" above 1 GiB of them
    (docs/scale.md). Every file is written atomically; a failure leaves none."""
    from xorc.decode import write_model
    from xorc.onnx_io.write import data_name

    _check_output([blob], out)
    _check_output([blob], Path(out).parent / data_name(out))
    container = read_bytes(map_file(blob))
    write_model(container, out, external_data, progress=progress, label=str(blob))
    return Path(out)


def verify(
    blob: PathLike,
    model: PathLike | None = None,
    data: PathLike | None = None,
    max_drop: float = 1.0,
    progress: Callable[[str], None] | None = None,
    decoder: str = "both",
    preset: str | None = None,
    tie_ratio: float | None = None,
) -> VerifyReport:
    """Decode every tensor bit-exactly (reference decoders, datapath simulator or both); with
    `data`, also gate the accuracy drop (`tie_ratio`: xorc/verify.py, default TIE_RATIO)."""
    from xorc.verify import TIE_RATIO, verify_container

    container = read_bytes(map_file(blob))
    ratio = TIE_RATIO if tie_ratio is None else tie_ratio
    return verify_container(container, model, data, max_drop, progress, decoder, preset, ratio)


def fmap(
    model: PathLike,
    data: PathLike,
    bits: int = 8,
    methods: tuple[str, ...] = ("paper", "deploy"),
    calib: PathLike | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> list[FmapResult]:
    """EBPC feature-map analysis of every ReLU / ReLU6 / Clip(0, x) output (xorc.activations)."""
    from xorc import activations, onnx_io

    return activations.analyze_model(
        onnx_io.load_model(model), data, bits, methods, calib, progress=progress
    )


def simulate(
    blob: PathLike, preset: str | None = None, config: PathLike | None = None
) -> tuple[SimResult, AreaEstimate]:
    """Run the accelerator datapath simulator over a blob: counters per layer, and area."""
    from xorc import datapath, onnx_io

    container = read_bytes(map_file(blob))
    cfg = datapath.load_config(config, preset)
    result = datapath.simulate(container, cfg, onnx_io.layer_macs(container.graph))
    return result, datapath.area_estimate(container, cfg)


def map_crossbars(
    blob: PathLike, preset: str = "crossbar-128", config: PathLike | None = None
) -> CrossbarResult:
    """Place a blob's layers on the crossbars of a crossbar preset (docs/crossbar.md §2):
    tiles and crossbars used against dense, utilisation, ADC conversions per inference."""
    from xorc import onnx_io
    from xorc.datapath import crossbar
    from xorc.decode import decode_levels

    container = read_bytes(map_file(blob))
    cfg = crossbar.load_config(config, preset)
    layers = {k: (v.op_type, v.group) for k, v in onnx_io.stored_layers(container.graph).items()}
    records = [(t.name, t.axis, t.bits, decode_levels(container, t)) for t in container.tensors]
    return crossbar.map_container(records, layers, onnx_io.layer_macs(container.graph), cfg)
