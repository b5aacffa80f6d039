"""The fidelity check every `compress` ends with: the compressed model against the original.

Both models run in onnxruntime on the same inputs: the first CALIB_INPUTS samples of `--calib`,
or, without data, SYNTHETIC_SAMPLES inputs made from the model's declared input shapes and types
(`synthetic_inputs`: seed SEED; a dynamic first axis is the sample axis, any other dynamic axis
is DYNAMIC_DIM long; float inputs standard normal, uint8 uniform in [0, 255], other integers 0
or 1). Every float output gets its mean per-sample cosine and its SQNR in dB
(10 log10 of sum a^2 over sum (a - b)^2; null when the outputs are identical); other outputs
the fraction of equal elements.

When the worst cosine is below the threshold (`--min-fidelity`, default 0.99) the check names
the worst layers by the output error each layer's own compression causes on its inputs,
relative to its output (`layer_error`): tr(dW H dW^T) / tr(W H W^T) with the layer's H where
GPTQ / OBS computed one, the diagonal of H (E[x_i^2], from --calib) otherwise, and the plain
weight error |dW|^2 / |W|^2 without data. It is a cheap attribution: it ignores how much the
layers after it amplify the error. See docs/reconstruction.md, "Fidelity check".
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from xorc import calibrate, onnx_io
from xorc.errors import ModelError
from xorc.hessian import relative_error
from xorc.quantize import dequantize

if TYPE_CHECKING:
    import onnxruntime as ort

    from xorc.format import Container
    from xorc.pipeline import TensorJob
    from xorc.runtime import Dataset

CALIB_INPUTS = 64
SYNTHETIC_SAMPLES = 8
DYNAMIC_DIM = 16
SEED = 0
DEFAULT_MIN_COSINE = 0.99
WORST_LAYERS = 3
MAX_FILE_WEIGHT_BYTES = 1 << 30  # above: the check would hold both models in onnxruntime


@dataclass
class Fidelity:
    """What the check measured (`to_json` is the `fidelity` object of compress --json)."""

    inputs: dict[str, Any]
    outputs: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    threshold: float
    notes: list[str] = field(default_factory=list)
    bias_correction: dict[str, Any] | None = None  # kept or not, cosine with and without

    @property
    def min_cosine(self) -> float | None:
        values = [o["cosine"] for o in self.outputs if "cosine" in o]
        if any(v is None for v in values):
            return -1.0  # a non-finite output is as bad as it gets
        return min(values) if values else None

    @property
    def passed(self) -> bool:
        worst = self.min_cosine
        return (
            self.inputs.get("measured", False) is False or worst is None or worst >= self.threshold
        )

    def warning(self) -> str | None:
        """One line when below the threshold: the worst output and the worst layers."""
        if self.passed:
            return None
        worst = min((o for o in self.outputs if "cosine" in o), key=lambda o: o["cosine"] or -1)
        cos = "non-finite" if worst["cosine"] is None else f"{worst['cosine']:.4f}"
        layers = ", ".join(f"{w['name']} ({w['error']:.3g})" for w in self.layers[:WORST_LAYERS])
        return (
            f"fidelity: output {worst['name']!r} cosine {cos} < {self.threshold} on "
            f"{self.inputs['n_samples']} {self.inputs['source']} inputs; worst layers by "
            f"relative output error: {layers or 'none compressed'}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "min_cosine": self.min_cosine,
            "threshold": self.threshold,
            "passed": self.passed,
            "worst_layers": [w["name"] for w in self.layers[:WORST_LAYERS]],
            "layers": self.layers,
            "notes": self.notes,
            "bias_correction": self.bias_correction,
        }


def synthetic_inputs(sess: ort.InferenceSession) -> tuple[Dataset, dict[str, list[int]]]:
    """SYNTHETIC_SAMPLES inputs from the declared shapes and types (module docstring)."""
    from xorc.runtime import ORT_TYPES, Dataset

    rng = np.random.default_rng(SEED)
    inputs: dict[str, NDArray[np.generic]] = {}
    shapes: dict[str, list[int]] = {}
    for spec in sess.get_inputs():
        dtype = ORT_TYPES.get(spec.type)
        if dtype is None or not spec.shape:
            raise ModelError(f"input {spec.name!r} ({spec.type}, rank {len(spec.shape)})")
        dims = [SYNTHETIC_SAMPLES if a == 0 else _dim(d) for a, d in enumerate(spec.shape)]
        if np.issubdtype(dtype, np.floating):
            array = rng.standard_normal(dims).astype(dtype)
        elif dtype == np.uint8:
            array = rng.integers(0, 256, dims).astype(dtype)
        else:
            array = rng.integers(0, 2, dims).astype(dtype)
        inputs[spec.name], shapes[spec.name] = array, dims
    return Dataset(inputs, None), shapes


def _dim(d: object) -> int:
    return d if isinstance(d, int) and d > 0 else DYNAMIC_DIM


def compare(
    original: Sequence[NDArray], compressed: Sequence[NDArray], names: Sequence[str]
) -> list[dict[str, Any]]:
    """Per output: cosine and SQNR (float outputs) or the fraction of equal elements."""
    out = []
    for name, a, b in zip(names, original, compressed, strict=True):
        if not np.issubdtype(a.dtype, np.floating):
            out.append({"name": name, "match": round(float(np.mean(a == b)), 6)})
            continue
        n = a.shape[0] if a.ndim else 1
        a64, b64 = a.reshape(n, -1).astype(np.float64), b.reshape(n, -1).astype(np.float64)
        if not (np.isfinite(a64).all() and np.isfinite(b64).all()):
            out.append({"name": name, "cosine": None, "sqnr_db": None})
            continue
        na, nb = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
        dot = (a64 * b64).sum(axis=1)
        both_zero = (na == 0) & (nb == 0)
        cos = np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-300))
        noise = float(((a64 - b64) ** 2).sum())
        sqnr = None if noise == 0 else 10 * math.log10(max(float((a64**2).sum()), 1e-300) / noise)
        out.append(
            {
                "name": name,
                "cosine": round(float(cos.mean()), 6),
                "sqnr_db": None if sqnr is None else round(sqnr, 3),
            }
        )
    return out


def layer_error(job: TensorJob, st: calibrate.InputStats | None) -> tuple[float, str] | None:
    """The relative output error of one layer's compression, and its basis ("H", "diag",
    "weights"); None for a weight stored exactly (int8 of a quantized model)."""
    if job.prequantized or job.encoded is None:
        return None
    w = job.weight.array.astype(np.float64)
    q = job.q
    d = dequantize(job.enc.decoded, q.scales, q.axis, q.group).astype(np.float64) - w
    hess = st.hessian if st is not None else None
    axis = job.weight.axis
    if hess is not None and axis is not None:
        found = relative_error(w, d, axis, hess)
        if found is not None:
            return round(found, 6), "H"
    sens = calibrate.sensitivity(st, w.shape) if st is not None and st.mean.size else None
    if sens is not None:
        s64 = sens.astype(np.float64)
        return _ratio(float((d * d * s64).sum()), float((w * w * s64).sum())), "diag"
    return _ratio(float((d * d).sum()), float((w * w).sum())), "weights"


def _ratio(num: float, den: float) -> float:
    return round(num / den, 6) if den > 0 else (0.0 if num == 0 else 1.0)


def ranked_layers(
    jobs: Sequence[TensorJob], stats: dict[str, calibrate.InputStats]
) -> list[dict[str, Any]]:
    """Every compressed layer's relative output error, worst first (ties by name)."""
    rows = []
    for job in jobs:
        found = layer_error(job, stats.get(job.name))
        if found is not None:
            rows.append({"name": job.name, "error": found[0], "basis": found[1]})
    return sorted(rows, key=lambda r: (-r["error"], r["name"]))


def measure(
    original: bytes,
    compressed: bytes,
    calib: str | Path | None,
    layers: list[dict[str, Any]],
    threshold: float = DEFAULT_MIN_COSINE,
) -> Fidelity:
    """Run both models on the calibration inputs (or synthetic ones) and compare every output.
    A model that onnxruntime cannot load (a custom operator), or cannot run on synthetic
    inputs, is reported as not measured, with the reason."""
    from xorc import runtime

    try:
        sess_o = runtime.session(original, "original model")
        sess_c = runtime.session(compressed, "compressed model")
    except ModelError as exc:
        source = "calib" if calib is not None else "synthetic"
        return _unmeasured(source, str(exc), layers, threshold)
    names = [o.name for o in sess_o.get_outputs()]
    if calib is not None:
        data = runtime.load_data(calib, sess_o).take(CALIB_INPUTS)
        inputs: dict[str, Any] = {"source": "calib", "path": str(calib)}
    else:
        try:
            data, shapes = synthetic_inputs(sess_o)
        except ModelError as exc:
            return _unmeasured("synthetic", f"no synthetic input for {exc}", layers, threshold)
        inputs = {"source": "synthetic", "seed": SEED, "shapes": shapes}
    inputs["n_samples"] = data.n_samples
    try:
        out_o = runtime.run(sess_o, data, names, batch=16)
        out_c = runtime.run(sess_c, data, names, batch=16)
    except ModelError as exc:
        return _unmeasured(inputs["source"], str(exc), layers, threshold)
    inputs["measured"] = True
    return Fidelity(inputs, compare(out_o, out_c, names), layers, threshold)


def _unmeasured(
    source: str, reason: str, layers: list[dict[str, Any]], threshold: float
) -> Fidelity:
    inputs = {"source": source, "measured": False, "reason": reason, "n_samples": 0}
    note = f"fidelity not measured: {reason}"
    return Fidelity(inputs, [], layers, threshold, [note])


LOW_BITS_NOTE = (
    "without --calib, bits below 8 and pruning are plain round-to-nearest and magnitude "
    "pruning; give --calib DATA.npz for GPTQ / OBS reconstruction and bias correction"
)


def lossy_without_data(jobs: Sequence[TensorJob], pattern: object, calib: object) -> bool:
    """Whether a run without data asks for low bits or pruning (the one-time note)."""
    if calib is not None:
        return False
    floats = [j for j in jobs if not j.prequantized]
    low = any(j.settings.bits < 8 or j.settings.sparsity > 0 for j in floats)
    return low or (pattern is not None and bool(floats))


def check(
    model: onnx_io.SourceModel,
    container: Container,
    jobs: Sequence[TensorJob],
    stats: dict[str, calibrate.InputStats],
    calib: str | Path | None,
    threshold: float = DEFAULT_MIN_COSINE,
) -> Fidelity:
    """The pipeline's last stage: the compressed model rebuilt from the container (with its
    corrected biases) against the original, and every layer's relative output error."""

    layers = ranked_layers(jobs, stats)
    return measure_container(
        model, container, [j.enc.decoded for j in jobs], calib, layers, threshold
    )


def measure_container(
    model: onnx_io.SourceModel,
    container: Container,
    levels: list | None,
    calib: str | Path | None,
    layers: list[dict[str, Any]],
    threshold: float,
) -> Fidelity:
    """`measure` of the model `container` holds (with `levels`, or decoded from it) against
    the source: in memory for a model without external data; for one with external data, both
    run from files (the compressed one written to a temporary folder), and not at all above
    MAX_FILE_WEIGHT_BYTES of weights (a note says so)."""
    from xorc.decode import rebuild_model, write_model

    if not model.external:
        assert levels is not None
        return measure(
            onnx_io.serialize(model), rebuild_model(container, levels), calib, layers, threshold
        )
    weight_bytes = sum(r.n_weights * 4 for r in container.tensors)
    if weight_bytes > MAX_FILE_WEIGHT_BYTES:
        reason = (
            f"{weight_bytes / 1e9:.2f} GB of float weights is over the "
            f"{MAX_FILE_WEIGHT_BYTES >> 30} GiB the check holds in memory; "
            "run `xorc decompress` and the model in onnxruntime"
        )
        return _unmeasured("calib" if calib else "synthetic", reason, layers, threshold)
    with tempfile.TemporaryDirectory(prefix="xorc-fidelity-") as tmp:
        compressed = Path(tmp, "compressed.onnx")
        write_model(container, compressed, "always", levels)
        return measure(Path(model.path), compressed, calib, layers, threshold)


def keep_bias_if_better(
    model: onnx_io.SourceModel,
    corrected: Container,
    uncorrected: Callable[[], Container],
    jobs: Sequence[TensorJob],
    stats: dict[str, calibrate.InputStats],
    calib: str | Path | None,
    threshold: float,
) -> tuple[Container, Fidelity]:
    """Bias correction, kept only when it does not lower the worst output cosine on the
    calibration inputs: the container kept and its fidelity (with `bias_correction`: whether
    it was kept and both cosines). `uncorrected` builds the container without corrected
    biases (and clears the jobs' flags); called only when it is needed."""
    flags = [j.bias_corrected for j in jobs]
    chosen, result = choose_bias(
        corrected, uncorrected, lambda c: check(model, c, jobs, stats, calib, threshold)
    )
    if result.bias_correction["kept"]:
        for job, flag in zip(jobs, flags, strict=True):
            job.bias_corrected = flag
    return chosen, result


def choose_bias(
    corrected: Container,
    uncorrected: Callable[[], Container],
    measure_: Callable[[Container], Fidelity],
) -> tuple[Container, Fidelity]:
    """`keep_bias_if_better` on containers built any way (xorc/blockwise.py): measures both
    with `measure_` and keeps the corrected one unless it has the lower worst cosine."""
    with_bias = measure_(corrected)
    plain = uncorrected()
    without_bias = measure_(plain)
    a, b = with_bias.min_cosine, without_bias.min_cosine
    keep = a is None or b is None or a >= b
    chosen, result = (corrected, with_bias) if keep else (plain, without_bias)
    result.bias_correction = {"kept": keep, "cosine_with": a, "cosine_without": b}
    return chosen, result
