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

Spare-column remapping (`compensate="remap"`): every column block (C bit lines) of every
crossbar has `spares` spare columns. After programming, the output error of each column on the
calibration inputs, scale_o^2 (v_o - w_o) H (v_o - w_o)^T, is read (column reads against the
intended outputs); the `spares` worst columns of each block are written again to spare columns
(a fresh noisy write, drawn from (seed, trial, 1) so the main cells stay paired with the other
modes) and the better of the two copies, by the same measure, is used. "remap+gain" remaps,
then recalibrates the gains.
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
    spares: int = 8

    @staticmethod
    def parse(
        text: str, stuck_at: float = 0.0, trials: int = 20, seed: int = 0, spares: int = 8
    ) -> Variation:
        kind, _, value = text.partition(":")
        try:
            sigma = float(value)
        except ValueError:
            sigma = -1.0
        if kind != "lognormal" or not 0 <= sigma <= 10:
            raise UsageError(f"--variation must be lognormal:SIGMA, SIGMA in [0, 10], got {text!r}")
        if not 0 <= stuck_at <= 1 or trials < 1:
            raise UsageError("--stuck-at must be in [0, 1] and --trials at least 1")
        if not 0 <= spares <= 4096:
            raise UsageError("--spare-columns must be in [0, 4096]")
        return Variation(sigma, stuck_at, trials, seed, spares)


MODES = ("none", "gain", "remap", "remap+gain")
"""The compensation modes (`verify --compensate [MODE]`)."""


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


def mode_of(compensate: str | bool | None) -> str:
    """The compensation mode of `compensate` (a MODES name; True is "gain", False "none")."""
    if compensate is None or isinstance(compensate, (bool, int)):
        return "gain" if compensate else "none"
    if compensate not in MODES:
        raise UsageError(f"--compensate must be one of {', '.join(MODES[1:])}, got {compensate!r}")
    return compensate


def remap_columns(
    t: Tensor, programmed: NDArray[np.float64], cfg: CrossbarConfig, var: Variation,
    rng: np.random.Generator,
) -> NDArray[np.float64]:  # fmt: skip
    """The programmed levels with the `var.spares` worst columns of each column block
    rewritten to spare columns where the rewrite is better (unchanged without a fitting H)."""
    hess = t.hess
    if hess is None or hess.moment is None or var.spares == 0:
        return programmed
    w = matrix_form(t.levels.astype(np.float64), t.axis)
    v = matrix_form(programmed, t.axis).copy()
    groups, feats = hess.moment.shape[0], hess.moment.shape[1]
    if w.shape[1] != feats or w.shape[0] % groups:
        return programmed
    per = w.shape[0] // groups
    scale2 = np.broadcast_to(t.scale, t.levels.shape)
    scale2 = matrix_form(scale2, t.axis)[:, 0].astype(np.float64) ** 2

    def errors(rows: NDArray[np.intp], cand: NDArray[np.float64]) -> NDArray[np.float64]:
        d, g = cand - w[rows], rows // per
        out = np.empty(rows.size)
        for k in np.unique(g):  # one H per group
            at = g == k
            out[at] = np.einsum("of,fg,og->o", d[at], hess.moment[k], d[at], optimize=True)
        return scale2[rows] * out

    every = np.arange(w.shape[0])
    err = errors(every, v)
    block = (every // per) * -(-per // cfg.cols) + (every % per) // cfg.cols
    order = np.lexsort((-err, block))  # by block, worst first
    rank = np.empty_like(order)
    starts = np.searchsorted(block[order], block[order], side="left")
    rank[order] = np.arange(order.size) - starts
    worst = np.flatnonzero(rank < var.spares)
    spare = program(w[worst].astype(np.int64), t.bits, cfg, var, rng)
    better = errors(worst, spare) < err[worst]
    v[worst[better]] = spare[better]
    moved = np.moveaxis(programmed, t.axis, 0).shape
    return np.moveaxis(v.reshape(moved), 0, t.axis)


@dataclass
class Trials:
    """Accuracy over the trials (JSON field names are fixed)."""

    variation: Variation
    compensate: str
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
            "compensate": self.compensate != "none",
            "compensation": self.compensate,
            "spare_columns": self.variation.spares if "remap" in self.compensate else 0,
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
    compensate: str | bool,
) -> Trials:
    """`var.trials` noisy writes of every tensor, compensated by mode `compensate` (MODES;
    True is "gain"); `evaluate` scores the model with the given float weights (by record
    index) and returns its accuracy in percent."""
    mode = mode_of(compensate)
    out = Trials(var, mode, cfg.name)
    for trial in range(var.trials):
        rng = np.random.default_rng([var.seed, trial])
        spare_rng = np.random.default_rng([var.seed, trial, 1])
        arrays = {}
        for t in tensors:
            programmed = program(t.levels, t.bits, cfg, var, rng)
            if "remap" in mode:
                programmed = remap_columns(t, programmed, cfg, var, spare_rng)
            if "gain" in mode and t.hess is not None:
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
    compensate: str | bool = False,
    calib_path: Any = None,
) -> Trials:
    """Monte-Carlo accuracy of a blob's model with its Conv/Gemm/MatMul weights on noisy
    crossbars, on `data_path` (top-1 against labels, else agreement with the original)."""
    mode = mode_of(compensate)
    if mode != "none" and calib_path is None:
        raise UsageError("--compensate needs --calib DATA.npz (the calibration inputs)")
    tensors, evaluate = prepare(
        container, model_path, data_path, calib_path if mode != "none" else None
    )
    return run_trials(tensors, evaluate, cfg, var, mode)


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
    sess_o = runtime.source_session(source)
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
