"""Sensitivity analysis: the model-output error when only one layer is compressed.

For every compressible layer and every setting of a grid (bits x sparsity, `BITS_GRID` x
`SPARSITY_GRID` by default), the layer alone is pruned and quantized exactly as `compress`
would do it (`pipeline.quantize_job`: GPTQ / OBS pruning with calibration data, bias correction
included), encoded with the policy's encoder (its size in bits/weight, scales included), and the
model is run on the first `samples` calibration inputs. Every float output is compared with the
original model's: mean per-sample cosine, and SQNR = 10 log10(sum y^2 / sum (y - y')^2).

Speed: the layers before the one under test are not re-run. One reference run records every
tensor the rest of the graph reads (`onnx_io.suffix_model`); each layer gets one onnxruntime
session of the graph from its node on, with its weight and bias as graph inputs, and every
trial is one run of that session. No model is serialized per trial. See docs/sensitivity.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from xorc import bias, calibrate, hsource, onnx_io, pipeline, reconstruct, runtime
from xorc.assemble import stored_scales
from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.quantize import dequantize
from xorc.suffix import SuffixRunner
from xorc.tensor import Encoded, QuantTensor

BITS_GRID = (2, 3, 4, 5, 6, 7, 8)
SPARSITY_GRID = (0.0, 0.5, 0.75, 0.9)
SAMPLES = 16
"""Calibration inputs each trial runs on (the statistics for GPTQ use all of them)."""

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Setting:
    """How one layer is compressed: bits and sparsity, or None for both (left in float)."""

    bits: int | None
    sparsity: float = 0.0

    @property
    def label(self) -> str:
        if self.bits is None:
            return "float"
        return f"{self.bits}b" if self.sparsity == 0 else f"{self.bits}b/s{self.sparsity:g}"

    def to_json(self) -> dict[str, object]:
        return {"bits": self.bits, "sparsity": self.sparsity}


FLOAT = Setting(None)


@dataclass
class Point:
    """One setting of one layer, measured.

    Attributes:
        payload_bytes: the layer's streams and scales in the blob (float: its source bytes).
        cosine, sqnr_db: per model output (sqnr None: exact).
        nsr: the largest noise-to-signal ratio 10^(-SQNR/10) over the outputs (0: exact).
    """

    setting: Setting
    payload_bytes: int
    bits_per_weight: float
    cosine: dict[str, float]
    sqnr_db: dict[str, float | None]
    nsr: float
    quantized: QuantTensor | None = field(default=None, repr=False)
    encoded: Encoded | None = field(default=None, repr=False)
    reconstruction: dict | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            **self.setting.to_json(),
            "payload_bytes": self.payload_bytes,
            "bits_per_weight": round(self.bits_per_weight, 4),
            "nsr": float(f"{self.nsr:.6g}"),
            "outputs": {
                o: {"cosine": round(c, 6), "sqnr_db": self.sqnr_db[o]}
                for o, c in self.cosine.items()
            },
        }


@dataclass
class LayerSensitivity:
    """Every measured setting of one layer; `points[0]` is float (exact)."""

    name: str
    op_type: str
    shape: tuple[int, ...]
    n_weights: int
    points: list[Point]

    def at(self, setting: Setting) -> Point | None:
        return next((p for p in self.points if p.setting == setting), None)

    def rank_key(self, reference: Setting) -> float:
        """How sensitive the layer is: its NSR at `reference` (else its worst)."""
        p = self.at(reference)
        return p.nsr if p is not None else max(q.nsr for q in self.points)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "shape": list(self.shape),
            "n_weights": self.n_weights,
            "settings": [p.to_json() for p in self.points],
        }


@dataclass
class Analysis:
    """The sensitivity of every analyzed layer; `skipped` are the layers it could not try."""

    model: str
    policy: str
    samples: int
    outputs: list[str]
    layers: list[LayerSensitivity]
    skipped: dict[str, str]
    seconds: float
    grid: dict[str, list[float]]
    reference: Setting = Setting(4)

    def ranked(self) -> list[LayerSensitivity]:
        """Most sensitive first (NSR at the reference setting, 4 bits dense)."""
        return sorted(self.layers, key=lambda ly: -ly.rank_key(self.reference))

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "policy": self.policy,
            "samples": self.samples,
            "outputs": self.outputs,
            "grid": self.grid,
            "rank_by": {**self.reference.to_json(), "metric": "nsr"},
            "seconds": round(self.seconds, 2),
            "layers": [ly.to_json() for ly in self.ranked()],
            "skipped": self.skipped,
        }


def grid_settings(bits: Sequence[int], sparsity: Sequence[float]) -> list[Setting]:
    """Float first, then every bits x sparsity setting, largest first."""
    if not bits or any(not 2 <= b <= 8 for b in bits):
        raise UsageError("analysis bits must be integers in [2, 8]")
    if not sparsity or any(not 0 <= s < 1 for s in sparsity):
        raise UsageError("analysis sparsities must be in [0, 1)")
    grid = [Setting(b, float(s)) for s in sorted(set(sparsity)) for b in sorted(set(bits))[::-1]]
    return [FLOAT, *grid]


def analyze(
    model_path: str | Path,
    calib: str | Path,
    options: CompressOptions | None = None,
    bits: Sequence[int] = BITS_GRID,
    sparsity: Sequence[float] = SPARSITY_GRID,
    samples: int = SAMPLES,
    progress: Progress | None = None,
) -> Analysis:
    """Measure every compressible layer at every grid setting (see the module docstring)."""
    start = time.perf_counter()
    model = onnx_io.load_model(model_path)
    opts = analysis_options(options or CompressOptions(), calib)
    jobs = pipeline.plan_tensors(model, opts)
    stats = layer_stats(model, jobs, calib, opts, max(sparsity, default=0.0))
    settings = grid_settings(bits, sparsity)
    layers, skipped = measure(model, jobs, opts, stats, calib, settings, samples, progress)
    outputs = sorted({o for ly in layers for o in ly.points[0].cosine})
    return Analysis(
        str(model_path),
        opts.policy,
        min(samples, _n_samples(model, calib)),
        outputs,
        layers,
        skipped,
        time.perf_counter() - start,
        {"bits": sorted(set(bits)), "sparsity": sorted(set(sparsity))},
    )


def analysis_options(options: CompressOptions, calib: str | Path | None) -> CompressOptions:
    """The options every trial uses: per-tensor sparsity, "auto" methods resolved."""
    from xorc import policies

    if options.prune_pattern is not None:
        raise UsageError("per-layer settings choose sparsity; leave out --prune-pattern")
    if not policies.get(options.policy).per_layer:
        per = ", ".join(policies.PER_LAYER)
        raise UsageError(f"per-layer settings work with policy {per}, not {options.policy!r}")
    return replace(options, sparsity_scope="tensor").resolved(calib is not None)


def layer_stats(
    model: onnx_io.SourceModel,
    jobs: list[pipeline.TensorJob],
    calib: str | Path,
    options: CompressOptions,
    sparsity: float,
) -> dict[str, calibrate.InputStats]:
    """Calibration statistics with an H for every layer that any grid setting reconstructs."""
    probe = [replace(j, settings=replace(j.settings, sparsity=sparsity)) for j in jobs]
    return hsource.calibration_stage(model, probe, calib, options)


def _n_samples(model: onnx_io.SourceModel, calib: str | Path) -> int:
    sess = runtime.source_session(model)
    return runtime.load_data(calib, sess).n_samples


def trial(
    job: pipeline.TensorJob,
    setting: Setting,
    options: CompressOptions,
    st: calibrate.InputStats | None,
) -> tuple[pipeline.TensorJob, int]:
    """The job at one setting, quantized and encoded, and its payload bytes (scales too)."""
    if setting.bits is None:
        raise ValueError("a float setting is not encoded")
    settings = replace(job.settings, bits=setting.bits, sparsity=setting.sparsity)
    out = replace(job, settings=settings, quantized=None, encoded=None, reconstruction=None)
    out.quantized = pipeline.quantize_job(out, options, 0.0, st)
    out.encoded = out.policy.encode(out.q, settings, options)
    streams = sum(len(s) for s in out.enc.streams.values())
    return out, streams + len(stored_scales(out.q, options)[1])


def measure(
    model: onnx_io.SourceModel,
    jobs: list[pipeline.TensorJob],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    calib: str | Path,
    settings: list[Setting],
    samples: int = SAMPLES,
    progress: Progress | None = None,
    keep: bool = False,
) -> tuple[list[LayerSensitivity], dict[str, str]]:
    """Each layer of `jobs` at each setting; `keep` keeps the quantized and encoded tensors
    (mixed precision builds the blob from them). Returns the layers and, by name, why a layer
    was not analyzed."""
    skipped = {j.name: why for j in jobs if (why := _not_analyzable(j)) is not None}
    todo = [j for j in jobs if j.name not in skipped]
    names = {j.name: _layer_names(model, j, stats.get(j.name)) for j in todo}
    runner = SuffixRunner(model, calib, samples, list(names.values()))
    layers = []
    for job in jobs:
        if job.name in names:
            with reconstruct.shared_factors():
                layer = _measure_layer(
                    model, job, options, stats, settings, runner, names[job.name]
                )
            layers.append(layer if keep else _dropped(layer))
        if progress is not None:
            progress(job.name, len(jobs))
    return layers, skipped


def _not_analyzable(job: pipeline.TensorJob) -> str | None:
    if job.prequantized:
        return "already quantized (int8): stored as it is"
    if job.weight.kind != "initializer" or job.weight.graph != "main":
        return f"a {job.weight.kind} in graph {job.weight.graph!r}, not a main-graph initializer"
    if len(job.weight.consumers) != 1:
        return "read by more than one node"
    return None


def _layer_names(
    model: onnx_io.SourceModel, job: pipeline.TensorJob, st: calibrate.InputStats | None
) -> list[str]:
    """The weight, and its layer's bias when that is an initializer (bias correction)."""
    bias = st.layer.bias if st is not None else None
    if bias is None:
        return [job.name]
    try:
        onnx_io.initializer(model, bias)
    except KeyError:
        return [job.name]
    return [job.name, bias]


def _dropped(layer: LayerSensitivity) -> LayerSensitivity:
    for p in layer.points:
        p.quantized, p.encoded = None, None
    return layer


def _measure_layer(
    model: onnx_io.SourceModel,
    job: pipeline.TensorJob,
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    settings: list[Setting],
    runner: SuffixRunner,
    names: list[str],
) -> LayerSensitivity:
    st = stats.get(job.name)
    sess = runner.session_for(names)
    n = int(job.weight.array.size)
    points = []
    for setting in settings:
        if setting.bits is None:
            exact = {o: 1.0 for o in runner.reference}
            nbytes = n * job.weight.array.dtype.itemsize
            points.append(Point(setting, nbytes, 8.0 * nbytes / n, exact, dict.fromkeys(exact), 0))
            continue
        done, nbytes = trial(job, setting, options, st)
        arrays = {job.name: _dequantized(done)}
        if options.bias_correction and st is not None:
            arrays.update(bias.corrected_biases(model, [done], [done.enc], stats)[0])
        cosine, sqnr, nsr = runner.errors(sess, names, arrays)
        bpw = 8.0 * nbytes / n
        point = Point(
            setting, nbytes, bpw, cosine, sqnr, nsr, done.q, done.enc, done.reconstruction
        )
        points.append(point)
    layer = st.layer.op_type if st is not None else job.weight.consumers[0].op_type
    return LayerSensitivity(job.name, layer, tuple(job.weight.array.shape), n, points)


def _dequantized(job: pipeline.TensorJob) -> NDArray[np.generic]:
    q = job.q
    return dequantize(job.enc.decoded, q.scales, q.axis, q.group).astype(job.weight.array.dtype)
