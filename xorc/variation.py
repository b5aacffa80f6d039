"""Device variation on the crossbar (docs/crossbar.md §4): Monte-Carlo trials of write noise on
the programmed, bit-sliced weights, accuracy mean and spread, and per-column gain
self-compensation.

Programming: each level is split into its sign (a differential pair of cells) and S slices of
`cell_bits` of its magnitude (xorc/datapath/crossbar.py); cell digit d in [0, 2^c - 1] is written
as the conductance g = d x exp(N(0, sigma^2)) (log-normal, multiplicative). With `stuck_at` P a
cell is, with probability P, stuck: half of those at 0, half at the top conductance 2^c - 1.
The shift-and-add unit merges the slices: w = scale x sum_s 2^(c s) (g+_s - g-_s). Every trial
draws from its own generator, seeded by (seed, trial), cells in record order.

Compensation (`compensate`): after programming, each bit line's (output channel's) gain is
recalibrated from the calibration data: the factor a_o minimising E[(a_o y'_o - y_o)^2] over the
calibration inputs, y' the programmed column's output and y the intended one. With H = E[x x^T]
of the layer's inputs (xorc/hessian.py) that is a_o = v_o H w_o^T / v_o H v_o^T (v the programmed
row, w the intended one); on the chip it is one read of each column per calibration input and one
digital multiply per column after the ADC. Layers without an H keep a_o = 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc.datapath.crossbar import CrossbarConfig
from xorc.errors import UsageError
from xorc.hessian import Hessian, matrix_form
from xorc.quantize import expand_scales


@dataclass(frozen=True)
class Variation:
    """`--variation lognormal:SIGMA`, `--stuck-at P`, `--trials N`, `--seed S`."""

    sigma: float
    stuck_at: float = 0.0
    trials: int = 20
    seed: int = 0

    @staticmethod
    def parse(text: str, stuck_at: float = 0.0, trials: int = 20, seed: int = 0) -> Variation:
        kind, _, value = text.partition(":")
        try:
            sigma = float(value)
        except ValueError:
            sigma = -1.0
        if kind != "lognormal" or not 0 <= sigma <= 10:
            raise UsageError(f"--variation must be lognormal:SIGMA, SIGMA in [0, 10], got {text!r}")
        if not 0 <= stuck_at <= 1 or trials < 1:
            raise UsageError("--stuck-at must be in [0, 1] and --trials at least 1")
        return Variation(sigma, stuck_at, trials, seed)


def program(
    levels: NDArray[np.integer], bits: int, cfg: CrossbarConfig, var: Variation,
    rng: np.random.Generator,
) -> NDArray[np.float64]:  # fmt: skip
    """The levels as the crossbar holds them after one noisy write (in level units)."""
    c = cfg.cell_bits
    top = (1 << c) - 1
    mag = np.abs(levels.astype(np.int64))
    out = np.zeros(levels.shape, np.float64)
    signs = (levels > 0, levels < 0) if cfg.differential else (np.ones(levels.shape, bool),)
    for s in range(cfg.slices(bits)):
        digit = ((mag >> (c * s)) & top).astype(np.float64)
        for i, side in enumerate(signs):
            d = np.where(side, digit, 0.0)
            g = d * np.exp(rng.normal(0.0, var.sigma, d.shape)) if var.sigma > 0 else d
            if var.stuck_at > 0:
                u = rng.random(d.shape)
                g = np.where(u < var.stuck_at / 2, 0.0, g)
                g = np.where((u >= var.stuck_at / 2) & (u < var.stuck_at), float(top), g)
            sign = -1.0 if (cfg.differential and i == 1) else 1.0
            out += sign * (1 << (c * s)) * g
    if not cfg.differential:
        out *= np.sign(levels)
    return out


def column_gains(
    intended: NDArray[np.float64], programmed: NDArray[np.float64], axis: int, hess: Hessian
) -> NDArray[np.float64] | None:
    """Per output channel, the least-squares gain a_o on the calibration inputs (None when H
    does not fit the weight)."""
    if hess.moment is None:
        return None
    w, v = matrix_form(intended, axis), matrix_form(programmed, axis)
    groups, feats = hess.moment.shape[0], hess.moment.shape[1]
    if w.shape[1] != feats or w.shape[0] % groups:
        return None
    per = w.shape[0] // groups
    w3, v3 = w.reshape(groups, per, feats), v.reshape(groups, per, feats)
    hv = np.einsum("gij,gpj->gpi", hess.moment, v3)
    num, den = np.einsum("gpi,gpi->gp", w3, hv), np.einsum("gpi,gpi->gp", v3, hv)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0).reshape(-1)


@dataclass
class Trials:
    """Accuracy over the trials (JSON field names are fixed)."""

    variation: Variation
    compensate: bool
    crossbar: str
    accuracies: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        a = np.array(self.accuracies)
        return {
            "model": "lognormal",
            "sigma": self.variation.sigma,
            "stuck_at": self.variation.stuck_at,
            "trials": self.variation.trials,
            "seed": self.variation.seed,
            "compensate": self.compensate,
            "crossbar": self.crossbar,
            "accuracy_mean": round(float(a.mean()), 6),
            "accuracy_std": round(float(a.std(ddof=1)) if a.size > 1 else 0.0, 6),
            "accuracy_min": round(float(a.min()), 6),
            "accuracy_max": round(float(a.max()), 6),
            "accuracies": [round(float(x), 6) for x in a],
        }


@dataclass(frozen=True)
class Tensor:
    """One mapped weight: its record's levels, scales (as they broadcast), axis and bits."""

    index: int
    levels: NDArray[np.int16]
    scale: NDArray[np.float32]
    axis: int
    bits: int
    dtype: np.dtype
    hess: Hessian | None = None


def run_trials(
    tensors: list[Tensor],
    evaluate: Callable[[dict[int, NDArray]], float],
    cfg: CrossbarConfig,
    var: Variation,
    compensate: bool,
) -> Trials:
    """`var.trials` noisy writes of every tensor; `evaluate` scores the model with the given
    float weights (by record index) and returns its accuracy in percent."""
    out = Trials(var, compensate, cfg.name)
    for trial in range(var.trials):
        rng = np.random.default_rng([var.seed, trial])
        arrays = {}
        for t in tensors:
            programmed = program(t.levels, t.bits, cfg, var, rng)
            if compensate and t.hess is not None:
                gains = column_gains(t.levels.astype(np.float64), programmed, t.axis, t.hess)
                if gains is not None:
                    shape = [-1 if d == t.axis else 1 for d in range(programmed.ndim)]
                    programmed = programmed * gains.reshape(shape)
            arrays[t.index] = (programmed * t.scale).astype(t.dtype)
        out.accuracies.append(evaluate(arrays))
    return out


def measure(
    container: Any,
    model_path: Any,
    data_path: Any,
    var: Variation,
    cfg: CrossbarConfig,
    compensate: bool = False,
    calib_path: Any = None,
) -> Trials:
    """Monte-Carlo accuracy of a blob's model with its Conv/Gemm/MatMul weights on noisy
    crossbars, on `data_path` (top-1 against labels, else agreement with the original)."""
    if compensate and calib_path is None:
        raise UsageError("--compensate needs --calib DATA.npz (the calibration inputs)")
    tensors, evaluate = prepare(
        container, model_path, data_path, calib_path if compensate else None
    )
    return run_trials(tensors, evaluate, cfg, var, compensate)


def prepare(
    container: Any, model_path: Any, data_path: Any, calib_path: Any = None
) -> tuple[list[Tensor], Callable[[dict[int, NDArray]], float]]:
    """The mapped tensors (with their H when `calib_path` is given) and the scoring function
    of `run_trials`, for any number of runs on the same blob and data."""
    from xorc import calibrate, onnx_io, runtime
    from xorc.decode import decode_levels, to_weights

    source = onnx_io.load_model(model_path)
    if source.sha256 != container.meta.get("source_sha256"):
        raise UsageError(f"{model_path}: not the model this blob was made from")
    layers = onnx_io.stored_layers(container.graph)
    records = container.tensors
    levels = [decode_levels(container, r) for r in records]
    base = {
        i: to_weights(container, r, lv)
        for i, (r, lv) in enumerate(zip(records, levels, strict=True))
    }
    mapped = [
        (i, r) for i, r in enumerate(records)
        if r.name in layers and r.axis is not None and r.offsets is None and len(r.shape) >= 2
    ]  # fmt: skip
    stats = {}
    if calib_path is not None:
        wanted = {r.name: (r.shape, r.axis) for _, r in mapped}
        stats = calibrate.input_stats(source, calib_path, [], wanted)
    tensors = []
    for i, r in mapped:
        scale = expand_scales(container.scales(r), r.axis, r.shape, r.group_size)
        st = stats.get(r.name)
        tensors.append(
            Tensor(i, levels[i], scale, r.axis, r.bits, base[i].dtype,
                   st.hessian if st is not None else None)
        )  # fmt: skip
    sess_o = runtime.session(onnx_io.serialize(source), "original model")
    data = runtime.load_data(data_path, sess_o)
    name = runtime.score_output(sess_o)
    (reference,) = runtime.run(sess_o, data, [name])
    truth = (
        data.labels if data.labels is not None else reference.reshape(len(reference), -1).argmax(1)
    )

    def evaluate(arrays: dict[int, NDArray]) -> float:
        model = onnx_io.rebuild(container.graph, {**base, **arrays})
        (out,) = runtime.run(runtime.session(model, "programmed model"), data, [name])
        return 100.0 * float(np.mean(out.reshape(len(out), -1).argmax(1) == truth))

    return tensors, evaluate
