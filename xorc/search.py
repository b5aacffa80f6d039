"""Searches over one global size/accuracy knob.

* `--max-drop PP` (`search`): the smallest blob whose accuracy drop on the calibration data stays
  within PP.
* `--max-bits-per-weight B` (`fit_size`): the most accurate blob whose weights take at most B
  bits each (every stream and the scales, as `inspect` counts them); needs no data.

Policies `importance` and `dictionary` trade size for accuracy through one global knob:

* `importance`: the XOR error budget f (at most f times the correct-all error count left
  uncorrected; xorc.codecs.xor.encode documents it). Each tensor is solved once
  (`solve_tensor`), and every trial only rebuilds streams (`finish`).
* `dictionary`: a relative error tolerance t; every tensor gets entropy-constrained codebooks
  aiming at that relative level error (so K and the index coding vary per tensor under one
  global knob; docs/codecs/dictionary.md).

Blob size shrinks monotonically along the knob's grid, so a binary search over the grid finds
the largest knob whose drop is within PP with about log2(grid) accuracy runs (or, for a size
target, the smallest knob that fits, refined between grid points). Each run decodes
nothing: it substitutes the weights the decoders will produce (`Encoded.decoded`), applies bias
correction when enabled, and runs the model in onnxruntime on the calibration data. With labels
the drop is in top-1 accuracy against the original model's; without, it is 100 minus the top-1
agreement with the original model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xorc import onnx_io, runtime
from xorc.quantize import dequantize
from xorc.tensor import Encoded, QuantTensor
from xorc.verify import compare_outputs


@dataclass(frozen=True)
class Trial:
    """One point the search measured."""

    knob: float
    payload_bytes: int
    drop_pp: float | None = None  # None: not measured (a size search)

    def to_json(self) -> dict[str, float]:
        out: dict[str, float] = {"knob": self.knob, "payload_bytes": self.payload_bytes}
        if self.drop_pp is not None:
            out["drop_pp"] = round(self.drop_pp, 4)
        return out


@dataclass(frozen=True)
class SearchResult:
    """The chosen encodings and how they were found. `goal` holds what the search aimed at and
    reached: `metric`, `max_drop_pp`, `drop_pp` for `search`; `goal` "size",
    `max_payload_bytes`, `payload_bytes` for `fit_size`."""

    encoded: list[Encoded]
    knob_name: str
    knob: float
    met: bool
    trials: list[Trial]
    goal: dict[str, object]

    def to_json(self) -> dict[str, object]:
        return {
            "knob": self.knob_name,
            "chosen": self.knob,
            "met": self.met,
            "trials": [t.to_json() for t in self.trials],
            **self.goal,
        }


class AccuracyProbe:
    """Runs the model with candidate weights on the calibration data."""

    def __init__(
        self,
        model: onnx_io.SourceModel,
        calib: str | Path,
        quantized: list[QuantTensor],
        dtypes: list[str],
        biases: Callable[[list[Encoded]], dict[str, np.ndarray]],
    ) -> None:
        self.model = model
        self.quantized = quantized
        self.dtypes = dtypes
        self.biases = biases
        sess = runtime.source_session(model)
        self.data = runtime.load_data(calib, sess)
        self.output = runtime.score_output(sess)
        (self.reference,) = runtime.run(sess, self.data, [self.output])
        self.metric = "top1" if self.data.labels is not None else "agreement"

    def drop(self, encoded: list[Encoded]) -> float:
        arrays: dict[str, np.ndarray] = {}
        for q, e, dtype in zip(self.quantized, encoded, self.dtypes, strict=True):
            if dtype in ("int8", "uint8"):
                continue
            arrays[q.name] = dequantize(e.decoded, q.scales, q.axis, q.group)
        arrays.update(self.biases(encoded))
        sess = runtime.session(onnx_io.substitute(self.model, arrays), "candidate model")
        (out,) = runtime.run(sess, self.data, [self.output])
        return compare_outputs(self.reference, out, self.data.labels).drop_pp


def search(
    grid: tuple[float, ...],
    encode_at: Callable[[float], list[Encoded]],
    probe: AccuracyProbe,
    max_drop: float,
    knob_name: str,
    extra_bytes: int = 0,
) -> SearchResult:
    """Binary search for the largest knob on `grid` whose drop is within `max_drop`. Trial
    sizes count the streams plus `extra_bytes` (the scales), as `fit_size` does."""
    trials: dict[int, tuple[list[Encoded], Trial]] = {}
    drops: dict[int, float] = {}

    def drop(i: int) -> float:
        if i not in trials:
            encoded = encode_at(grid[i])
            size = extra_bytes + sum(len(s) for e in encoded for s in e.streams.values())
            drops[i] = probe.drop(encoded)
            trials[i] = (encoded, Trial(grid[i], size, drops[i]))
        return drops[i]

    lo, hi = 0, len(grid) - 1
    if drop(lo) > max_drop:
        best = lo  # nothing meets the gate: keep the most accurate point, and say so
    elif drop(hi) <= max_drop:
        best = hi
    else:
        while hi - lo > 1:  # invariant: lo meets the gate, hi does not
            mid = (lo + hi) // 2
            if drop(mid) <= max_drop:
                lo = mid
            else:
                hi = mid
        best = lo
    return SearchResult(
        trials[best][0],
        knob_name,
        grid[best],
        drops[best] <= max_drop,
        [t for _, (_, t) in sorted(trials.items())],
        {"metric": probe.metric, "max_drop_pp": max_drop, "drop_pp": round(drops[best], 4)},
    )


SIZE_REFINE_STEPS = 6
"""`fit_size`: bisections between the two grid points around the target (the knob's grid is
about 1.8x per step; 6 steps bring that to about 1 %)."""


def fit_size(
    grid: tuple[float, ...],
    encode_at: Callable[[float], list[Encoded]],
    budget_bytes: int,
    extra_bytes: int,
    knob_name: str,
    refine: int = SIZE_REFINE_STEPS,
) -> SearchResult:
    """The smallest knob (the most accurate encoding) whose streams plus `extra_bytes` (the
    scales) take at most `budget_bytes`: a binary search over `grid`, then `refine` bisections
    (geometric above 0) between the last knob that was too big and the first that fits. When
    even the grid's last knob is too big, that one is returned with `met` false."""
    trials: dict[float, tuple[list[Encoded], Trial]] = {}

    def size(knob: float) -> int:
        if knob not in trials:
            encoded = encode_at(knob)
            total = extra_bytes + sum(len(s) for e in encoded for s in e.streams.values())
            trials[knob] = (encoded, Trial(knob, total))
        return trials[knob][1].payload_bytes

    lo, hi = 0, len(grid) - 1
    if size(grid[lo]) <= budget_bytes:
        best = grid[lo]
    elif size(grid[hi]) > budget_bytes:
        best = grid[hi]
    else:
        while hi - lo > 1:  # invariant: grid[lo] is too big, grid[hi] fits
            mid = (lo + hi) // 2
            if size(grid[mid]) <= budget_bytes:
                hi = mid
            else:
                lo = mid
        too_big, best = grid[lo], grid[hi]
        for _ in range(refine):
            mid = (too_big * best) ** 0.5 if too_big > 0 else (too_big + best) / 2
            if size(mid) <= budget_bytes:
                best = mid
            else:
                too_big = mid
    encoded, chosen = trials[best]
    return SearchResult(
        encoded,
        knob_name,
        best,
        chosen.payload_bytes <= budget_bytes,
        [t for _, (_, t) in sorted(trials.items())],
        {"goal": "size", "max_payload_bytes": budget_bytes, "payload_bytes": chosen.payload_bytes},
    )
