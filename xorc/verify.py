"""`verify`: every decoder against the encoder's intended values, then accuracy in onnxruntime.

Bit-exactness needs only the blob: each record carries the SHA-256 of the levels the encoder
intended (docs/format.md §3.2 `digest`), and checking it loads neither onnx nor onnxruntime
(tests/test_layering.py); only the accuracy gate does. The accuracy gate runs the original
model and the rebuilt one on the same data: with labels it compares top-1 accuracy, without
labels it reports top-1 agreement with the original (`metric` = "agreement", `original` = 100).

Without labels, a sample on which the original model itself has not decided (its top class
less than `tie_ratio` times as likely as the runner-up, TIE_RATIO by default) is a **tie**: any
change of the weights may pick the runner-up, and which one is "right" the data cannot say.
Agreement and drop are then measured on the decided samples; the ties, and how many of them
flipped, are reported next to them (`ties`, `tie_flips`), and the raw agreement over every
sample stays in `top1_agreement`. `tie_ratio` 1 counts every sample (README.md, "verify").
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xorc.decode import decode_levels, rebuild_model, write_model
from xorc.errors import UsageError
from xorc.format import Container, levels_digest

SCHEMA_VERSION = 1
TIE_RATIO = 1.1
"""Without labels, a sample whose original top class is less than this many times as likely
as its runner-up (softmax of the scores; log-ratio below ln 1.1 = 0.095) is a tie."""


@dataclass
class Accuracy:
    """Result of the accuracy gate (JSON field names are fixed)."""

    metric: str
    original: float
    compressed: float
    drop_pp: float
    n_samples: int
    top1_agreement: float
    output_cosine: float
    ties: int = 0
    tie_flips: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class VerifyReport:
    bit_exact: bool
    tensors_checked: int
    decoders: list[str]
    mismatches: list[str] = field(default_factory=list)
    accuracy: Accuracy | None = None
    max_drop: float | None = None
    tie_ratio: float | None = None  # without labels (module docstring)
    variation: list[dict[str, Any]] | None = None  # verify --variation (xorc/variation.py)

    @property
    def passed(self) -> bool:
        if not self.bit_exact:
            return False
        return (
            self.accuracy is None or self.max_drop is None or self.accuracy.drop_pp <= self.max_drop
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "bit_exact": self.bit_exact,
            "tensors_checked": self.tensors_checked,
            "decoders": self.decoders,
            "mismatches": self.mismatches,
            "accuracy": None if self.accuracy is None else self.accuracy.to_json(),
            "max_drop_pp": self.max_drop,
            "tie_ratio": self.tie_ratio,
            "passed": self.passed,
            **({} if self.variation is None else {"variation": self.variation}),
        }


DECODERS = ("reference", "datapath", "both")


def check_bit_exact(
    container: Container,
    progress: Callable[[str], None] | None = None,
    decoder: str = "reference",
    preset: str | None = None,
    keep_levels: bool = True,
) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Decode every tensor with the chosen decoders and compare with the encoder's digests.

    `decoder` is "reference" (the codecs' decoders), "datapath" (the accelerator simulator,
    xorc.datapath) or "both". Returns the levels (of the reference decoder when it ran; none
    without `keep_levels`: then one tensor's levels are in memory at a time), the names of the
    decoders that ran, and one line per mismatch.
    """
    if decoder not in DECODERS:
        raise UsageError(f"--decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    ran = ["reference", "datapath"] if decoder == "both" else [decoder]
    levels: list[np.ndarray] = []
    mismatches: list[str] = []
    if "reference" in ran:
        for record in container.tensors:
            lv = decode_levels(container, record)
            if levels_digest(lv) != record.digest:
                mismatches.append(f"{record.name}: reference decoder differs from the encoder")
            if keep_levels:
                levels.append(lv)
            if progress is not None:
                progress(record.name)
    if "datapath" in ran:
        from xorc import datapath

        wanted = keep_levels and "reference" not in ran
        result = datapath.simulate(
            container, datapath.load_config(None, preset), keep_levels=wanted
        )
        mismatches += [
            f"{t.name}: datapath simulator differs from the encoder"
            for t in result.tensors
            if not t.digest_match
        ]
        if wanted:
            levels = [result.levels[t.name] for t in container.tensors]
    return levels, ran, mismatches


def measure_accuracy(
    original: bytes | Path,
    compressed: bytes | Path,
    data_path: str | Path,
    progress: Callable[[int], None] | None = None,
    tie_ratio: float = TIE_RATIO,
) -> Accuracy:
    """Run both models on the data and compare top-1 (labels) or agreement (no labels)."""
    from xorc import runtime

    sess_o = runtime.session(original, "original model")
    sess_c = runtime.session(compressed, "decoded model")
    data = runtime.load_data(data_path, sess_o)
    name = runtime.score_output(sess_o)
    (out_o,) = runtime.run(sess_o, data, [name], progress=progress)
    (out_c,) = runtime.run(sess_c, data, [name], progress=progress)
    return compare_outputs(out_o, out_c, data.labels, tie_ratio)


def compare_outputs(
    out_o: np.ndarray, out_c: np.ndarray, labels: np.ndarray | None, tie_ratio: float = TIE_RATIO
) -> Accuracy:
    """Accuracy figures from the two models' scores (module docstring: ties)."""
    n = out_o.shape[0]
    a = out_o.reshape(n, -1).astype(np.float64)
    b = out_c.reshape(n, -1).astype(np.float64)
    top_o, top_c = a.argmax(axis=1), b.argmax(axis=1)
    agreement = 100.0 * float(np.mean(top_o == top_c))
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = float(
        np.mean(np.where(denom > 0, (a * b).sum(axis=1) / np.maximum(denom, 1e-300), 1.0))
    )
    if labels is not None:
        acc_o = 100.0 * float(np.mean(top_o == labels))
        acc_c = 100.0 * float(np.mean(top_c == labels))
        return Accuracy("top1", acc_o, acc_c, acc_o - acc_c, n, agreement, cosine)
    tie = tie_margin(a) < np.log(tie_ratio)
    decided = ~tie
    agree = 100.0 * float(np.mean(top_o[decided] == top_c[decided])) if decided.any() else 100.0
    flips = int(np.sum(tie & (top_o != top_c)))
    return Accuracy(
        "agreement", 100.0, agree, 100.0 - agree, n, agreement, cosine, int(tie.sum()), flips
    )


def tie_margin(scores: np.ndarray) -> np.ndarray:
    """Per sample, the log-ratio of the two most likely classes' probabilities: the top-two
    difference of the scores (logits), or of their logarithms where every row is already a
    probability distribution; +inf with fewer than two classes."""
    if scores.shape[1] < 2:
        return np.full(scores.shape[0], np.inf)
    rows_sum_1 = np.allclose(scores.sum(axis=1), 1, atol=1e-3)
    probs = scores.min() >= 0 and scores.max() <= 1 and rows_sum_1
    logs = np.log(np.maximum(scores, 1e-300)) if probs else scores
    top2 = np.partition(logs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def verify_container(
    container: Container,
    model_path: str | Path | None = None,
    data_path: str | Path | None = None,
    max_drop: float = 1.0,
    progress: Callable[[str], None] | None = None,
    decoder: str = "both",
    preset: str | None = None,
    tie_ratio: float = TIE_RATIO,
) -> VerifyReport:
    """Bit-exact check, and with `data_path` the accuracy gate against `model_path`."""
    levels, decoders, mismatches = check_bit_exact(
        container, progress, decoder, preset, keep_levels=data_path is not None
    )
    report = VerifyReport(not mismatches, len(container.tensors), decoders, mismatches)
    if data_path is None:
        return report
    if model_path is None:
        raise UsageError("--accuracy needs --model ORIGINAL.onnx to compare against")
    report.accuracy = accuracy_gate(container, levels, model_path, data_path, tie_ratio)
    report.max_drop = max_drop
    report.tie_ratio = tie_ratio if report.accuracy.metric == "agreement" else None
    return report


def accuracy_gate(
    container: Container,
    levels: list[np.ndarray],
    model_path: str | Path,
    data_path: str | Path,
    tie_ratio: float = TIE_RATIO,
) -> Accuracy:
    """The original model (checked against the blob's `source_sha256`) and the model rebuilt
    from `levels`, run on the data."""
    from xorc import onnx_io

    source = onnx_io.load_model(model_path)
    if source.sha256 != container.meta.get("source_sha256"):
        raise UsageError(
            f"{model_path}: not the model this blob was made from (SHA-256 differs from the blob's)"
        )
    if not source.external:
        return measure_accuracy(
            onnx_io.serialize(source), rebuild_model(container, levels), data_path, None, tie_ratio
        )
    with tempfile.TemporaryDirectory(prefix="xorc-verify-") as tmp:  # graph + external data
        rebuilt = Path(tmp, "decoded.onnx")
        write_model(container, rebuilt, "always", levels)
        return measure_accuracy(Path(source.path), rebuilt, data_path, None, tie_ratio)
