"""Per-layer mixed precision: `--max-drop` / `--max-bits-per-weight` for the policies whose
levels come straight from the uniform quantizer (`Policy.per_layer`: raw, all, ebpc).

1. Measure every layer at every setting of the grid (xorc/sensitivity.py: bits x sparsity, and
   for `--max-drop` also "float", the layer left uncompressed in the graph).
2. Per layer, the lower convex hull of (payload bytes, output noise-to-signal ratio), walked
   from the largest setting down; all layers' hull steps merged by their slope, the NSR added
   per byte saved. That greedy path is optimal for the additive model (NSRs of independent
   layer errors add) and takes a layer down only while it is the cheapest place to save.
3. `--max-bits-per-weight B`: the first state on the path whose blob fits B bits/weight (sizes
   are the real encoded streams plus scales, so it fits exactly); its drop is measured once.
   `--max-drop PP`: a binary search along the path for the last state whose *measured* drop on
   the calibration data (the whole model, every chosen layer at once, bias correction
   included) stays within PP: the additive model only orders the states, measurement decides,
   so a combination that drops more than the layers alone predict is backed off.

See docs/sensitivity.md.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from xorc import bias, calibrate, onnx_io, pipeline, runtime, sensitivity
from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.quantize import dequantize
from xorc.sensitivity import LayerSensitivity, Point
from xorc.verify import Accuracy, compare_outputs


@dataclass(frozen=True)
class Step:
    """Layer `layer` moves to its hull point `point`, at `slope` NSR per byte saved."""

    slope: float
    layer: int
    point: int


@dataclass
class MixedResult:
    """What the per-layer search chose and measured (the blob's `search` section)."""

    goal: dict[str, object]
    met: bool
    chosen: dict[str, Point]
    skipped: dict[str, str]
    path_steps: int
    chosen_step: int
    trials: list[dict[str, object]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "knob": "per_layer",
            "met": self.met,
            **self.goal,
            "grid": {
                "bits": list(sensitivity.BITS_GRID),
                "sparsity": list(sensitivity.SPARSITY_GRID),
            },
            "path_steps": self.path_steps,
            "chosen_step": self.chosen_step,
            "trials": self.trials,
            "layers": {n: p.setting.to_json() for n, p in self.chosen.items()},
            "float_layers": [n for n, p in self.chosen.items() if p.setting.bits is None],
            "skipped": self.skipped,
        }  # no timing: the blob is a deterministic function of its inputs


def hull(points: list[Point]) -> list[int]:
    """Indices of the lower convex hull of (payload, nsr), from the largest payload down."""
    order = sorted(range(len(points)), key=lambda i: (-points[i].payload_bytes, points[i].nsr))
    chain = [order[0]]
    while True:
        cur = points[chain[-1]]
        smaller = [i for i in order if points[i].payload_bytes < cur.payload_bytes]
        if not smaller:
            return chain
        chain.append(
            min(
                smaller,
                key=lambda i: (
                    (points[i].nsr - cur.nsr) / (cur.payload_bytes - points[i].payload_bytes),
                    points[i].payload_bytes,
                ),
            )
        )


def greedy_path(layers: list[list[Point]]) -> tuple[list[int], list[Step]]:
    """The start (every layer's largest point) and the merged hull steps, cheapest first."""
    steps, start = [], []
    for li, points in enumerate(layers):
        chain = hull(points)
        start.append(chain[0])
        slope = -np.inf
        for a, b in itertools.pairwise(chain):
            saved = points[a].payload_bytes - points[b].payload_bytes
            slope = max(slope, (points[b].nsr - points[a].nsr) / saved)  # keep each layer in order
            steps.append(Step(float(slope), li, b))
    steps.sort(key=lambda s: (s.slope, s.layer))
    return start, steps


def state(start: list[int], steps: list[Step], k: int) -> list[int]:
    """The point of every layer after the first k steps."""
    at = list(start)
    for s in steps[:k]:
        at[s.layer] = s.point
    return at


def search_stage(
    model: onnx_io.SourceModel,
    jobs: list[pipeline.TensorJob],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    calib: str | Path | None,
) -> MixedResult:
    """Choose every layer's setting, fill the jobs (float layers leave `jobs`)."""
    began = time.perf_counter()
    flag = "--max-drop" if options.max_bits_per_weight is None else "--max-bits-per-weight"
    if calib is None:
        raise UsageError(
            f"{flag} with policy {options.policy} chooses bits and sparsity per layer from "
            "measurements; it needs --calib DATA.npz"
        )
    opts = sensitivity.analysis_options(options, calib)
    if opts.reconstruct != "gptq" and opts.prune == "obs":  # H only where pruning: now all
        stats = sensitivity.layer_stats(model, jobs, calib, opts, max(sensitivity.SPARSITY_GRID))
    settings = sensitivity.grid_settings(sensitivity.BITS_GRID, sensitivity.SPARSITY_GRID)
    if options.max_bits_per_weight is not None:
        settings = settings[1:]  # a size target counts every weight in the blob: no float
    layers, skipped = sensitivity.measure(model, jobs, opts, stats, calib, settings, keep=True)
    fixed = [j for j in jobs if j.name in skipped]
    for job in fixed:
        job.encoded = job.policy.encode(job.q, job.settings, opts)
    probe = Probe(model, calib, jobs, stats, opts.bias_correction)
    if options.max_bits_per_weight is not None:
        result = _fit_size(layers, fixed, jobs, options, probe)
    else:
        result = within_drop(layers, options, probe)
    result.skipped = skipped
    _apply(jobs, layers, result.chosen)
    result.seconds = time.perf_counter() - began
    return result


def _fixed_bytes(fixed: list[pipeline.TensorJob], options: CompressOptions) -> int:
    from xorc.assemble import stored_scales

    return sum(
        sum(len(s) for s in j.enc.streams.values()) + len(stored_scales(j.q, options)[1])
        for j in fixed
    )


def fit(
    layers: list[LayerSensitivity], budget: int, extra: int = 0
) -> tuple[dict[str, Point], int, int, int]:
    """The first state on the greedy path whose payload (plus `extra` bytes) fits `budget`
    (the last one when none does), from each layer's compressed points: the chosen points, its
    payload, its step and the path's length."""
    points = [[p for p in ly.points if p.setting.bits is not None] for ly in layers]
    start, steps = greedy_path(points)

    def size(k: int) -> int:
        at = state(start, steps, k)
        return extra + sum(ps[i].payload_bytes for ps, i in zip(points, at, strict=True))

    lo, hi = 0, len(steps)  # size shrinks along the path: the first k that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if size(mid) <= budget:
            hi = mid
        else:
            lo = mid + 1
    at = fill(points, state(start, steps, lo), budget - size(lo))
    chosen = {ly.name: ps[i] for ly, ps, i in zip(layers, points, at, strict=True)}
    total = extra + sum(p.payload_bytes for p in chosen.values())
    return chosen, total, lo, len(steps)


def fill(points: list[list[Point]], at: list[int], room: int) -> list[int]:
    """Spend what the path's step left of the budget (a step can save much more than needed):
    repeatedly move the one layer to the point that lowers its NSR most and still fits."""
    at = list(at)
    while room > 0:
        best = None
        for li, ps in enumerate(points):
            cur = ps[at[li]]
            for j, p in enumerate(ps):
                cost, gain = p.payload_bytes - cur.payload_bytes, cur.nsr - p.nsr
                if 0 < cost <= room and gain > 0 and (best is None or gain > best[0]):
                    best = (gain, li, j, cost)
        if best is None:
            return at
        _, li, j, cost = best
        at[li], room = j, room - cost
    return at


def _fit_size(
    layers: list[LayerSensitivity],
    fixed: list[pipeline.TensorJob],
    jobs: list[pipeline.TensorJob],
    options: CompressOptions,
    probe: Probe,
) -> MixedResult:
    """The per-layer choice within the size target, confirmed against the uniform settings
    that fit: the one with the highest output cosine on the calibration data is kept."""
    assert options.max_bits_per_weight is not None
    n_weights = sum(j.weight.array.size for j in jobs)
    budget = int(options.max_bits_per_weight * n_weights / 8)
    extra = _fixed_bytes(fixed, options)
    name, chosen, size, k, n_steps, trials = size_choice(layers, budget, extra, probe)
    best = next(t for t in trials if t["choice"] == name)
    goal = {
        "goal": "size",
        "max_payload_bytes": budget,
        "payload_bytes": size,
        "metric": probe.metric,
        "drop_pp": best["drop_pp"],
        "chosen": name,
    }
    return MixedResult(goal, size <= budget, chosen, {}, n_steps, k, trials)


def size_choice(
    layers: list[LayerSensitivity], budget: int, extra: int, probe: Probe
) -> tuple[str, dict[str, Point], int, int, int, list[dict[str, object]]]:
    """`fit`'s per-layer choice and, per sparsity of the grid, the uniform setting with the most
    bits that fits, each measured on the calibration data (the additive error model orders
    the path; it does not get the last word). Returns the winner's name ("per_layer" or the
    setting's label), points, payload, the path step and length, and every trial."""
    chosen, size, k, n_steps = fit(layers, budget, extra)
    candidates = [("per_layer", chosen, size)]
    settings = sorted(
        {p.setting for ly in layers for p in ly.points if p.setting.bits is not None},
        key=lambda st: (st.sparsity, -(st.bits or 0)),
    )
    done: set[float] = set()
    for st in settings:
        points = {ly.name: p for ly in layers if (p := ly.at(st)) is not None}
        total = extra + sum(p.payload_bytes for p in points.values())
        if st.sparsity not in done and len(points) == len(layers) and total <= budget:
            done.add(st.sparsity)
            candidates.append((st.label, points, total))
    trials, best = [], None
    for name, points, total in candidates:
        acc = probe.compare(points)
        trials.append(
            {
                "choice": name,
                "payload_bytes": total,
                "drop_pp": round(acc.drop_pp, 4),
                "cosine": round(acc.output_cosine, 6),
            }
        )
        if best is None or acc.output_cosine > best[0]:
            best = (acc.output_cosine, name, points, total)
    assert best is not None
    return best[1], best[2], best[3], k, n_steps, trials


def within_drop(
    layers: list[LayerSensitivity], options: CompressOptions, probe: Probe
) -> MixedResult:
    """The last state on the path whose measured drop is within --max-drop."""
    assert options.max_drop is not None
    start, steps = greedy_path([ly.points for ly in layers])
    trials: dict[int, dict[str, object]] = {}

    def drop(k: int) -> float:
        if k not in trials:
            at = state(start, steps, k)
            chosen = _chosen(layers, at)
            d = probe.drop(chosen)
            size = sum(p.payload_bytes for p in chosen.values())
            predicted = sum(p.nsr for p in chosen.values())
            trials[k] = {
                "step": k,
                "payload_bytes": size,
                "predicted_nsr": float(f"{predicted:.6g}"),
                "drop_pp": round(d, 4),
            }
        return float(trials[k]["drop_pp"])  # type: ignore[arg-type]

    lo, hi = 0, len(steps)
    if drop(hi) <= options.max_drop:
        lo = hi
    else:
        while hi - lo > 1:  # invariant: lo is within the drop (0: the model itself), hi is not
            mid = (lo + hi) // 2
            if drop(mid) <= options.max_drop:
                lo = mid
            else:
                hi = mid
    chosen = _chosen(layers, state(start, steps, lo))
    best = trials.get(lo, {"payload_bytes": sum(p.payload_bytes for p in chosen.values())})
    goal = {
        "goal": "drop",
        "metric": probe.metric,
        "max_drop_pp": options.max_drop,
        "drop_pp": round(drop(lo) if lo else 0.0, 4),
        "payload_bytes": best["payload_bytes"],
    }
    ordered = [trials[k] for k in sorted(trials)]
    return MixedResult(goal, True, chosen, {}, len(steps), lo, ordered)


def _chosen(layers: list[LayerSensitivity], at: list[int]) -> dict[str, Point]:
    return {ly.name: ly.points[i] for ly, i in zip(layers, at, strict=True)}


def _apply(
    jobs: list[pipeline.TensorJob], layers: list[LayerSensitivity], chosen: dict[str, Point]
) -> None:
    """Fill each job with its chosen setting's tensors; float layers leave the list."""
    keep = []
    for job in jobs:
        point = chosen.get(job.name)
        if point is not None and point.setting.bits is None:
            continue
        if point is not None:
            assert point.quantized is not None and point.encoded is not None
            s = point.setting
            job.settings = replace(job.settings, bits=s.bits, sparsity=s.sparsity)
            job.quantized = point.quantized
            per_layer = {"bits": s.bits, "sparsity": s.sparsity}
            job.encoded = replace(
                point.encoded, stats={**point.encoded.stats, "per_layer": per_layer}
            )
            job.reconstruction = point.reconstruction
        keep.append(job)
    for layer in layers:  # the tensors of the settings not chosen are no longer needed
        sensitivity._dropped(layer)
    jobs[:] = keep


class Probe:
    """The drop on the calibration data of the whole model with some layers' chosen points."""

    def __init__(
        self,
        model: onnx_io.SourceModel,
        calib: str | Path,
        jobs: list[pipeline.TensorJob],
        stats: dict[str, calibrate.InputStats],
        bias_correction: bool,
    ) -> None:
        self.model = model
        self.jobs = {j.name: j for j in jobs}
        self.stats = stats if bias_correction else {}
        sess = runtime.source_session(model)
        self.data = runtime.load_data(calib, sess)
        self.output = runtime.score_output(sess)
        (self.reference,) = runtime.run(sess, self.data, [self.output])
        self.metric = "top1" if self.data.labels is not None else "agreement"

    def drop(self, chosen: dict[str, Point]) -> float:
        return self.compare(chosen).drop_pp

    def compare(self, chosen: dict[str, Point]) -> Accuracy:
        """Accuracy figures of the model with `chosen` (float points: the original layer)."""
        trial_jobs, encoded, arrays = [], [], {}
        for name, point in chosen.items():
            if point.setting.bits is None:
                continue
            assert point.quantized is not None and point.encoded is not None
            q, e = point.quantized, point.encoded
            job = replace(self.jobs[name], quantized=q, encoded=e)
            trial_jobs.append(job)
            encoded.append(e)
            arrays[name] = dequantize(e.decoded, q.scales, q.axis, q.group)
        if self.stats:
            arrays.update(bias.corrected_biases(self.model, trial_jobs, encoded, self.stats)[0])
        sess = runtime.session(onnx_io.substitute(self.model, arrays), "candidate model")
        (out,) = runtime.run(sess, self.data, [self.output])
        return compare_outputs(self.reference, out, self.data.labels)
