"""Ties in the label-free agreement gate (xorc/verify.py): a sample the original model has not
decided is reported, not counted in the drop; `tie_ratio` 1 counts every sample."""

from __future__ import annotations

import numpy as np
import pytest

from xorc.verify import TIE_RATIO, compare_outputs, tie_margin

# original logits: sample 0 a tie (ratio e^0.05 = 1.05), 1 and 2 decided (e^1, e^0.2 = 1.22)
ORIGINAL = np.array([[2.0, 1.95, 0.0], [3.0, 2.0, 0.0], [0.0, 1.0, 1.2]])


@pytest.mark.parametrize(
    ("compressed", "ratio", "drop", "ties", "flips", "raw"),
    [
        ([[1.9, 2.0, 0.0], [3.0, 2.0, 0.0], [0.0, 1.0, 1.2]], TIE_RATIO, 0.0, 1, 1, 200 / 3),
        ([[1.9, 2.0, 0.0], [3.0, 2.0, 0.0], [0.0, 1.0, 1.2]], 1.0, 100 / 3, 0, 0, 200 / 3),
        ([[2.0, 1.9, 0.0], [3.0, 2.0, 0.0], [0.0, 1.3, 1.2]], TIE_RATIO, 50.0, 1, 0, 200 / 3),
        ([[2.0, 1.9, 0.0], [3.0, 2.0, 0.0], [0.0, 1.0, 1.2]], TIE_RATIO, 0.0, 1, 0, 100.0),
        ([[1.9, 2.0, 0.0], [3.0, 2.0, 0.0], [0.0, 1.0, 1.2]], 1.3, 0.0, 2, 1, 200 / 3),
    ],
)
def test_ties_are_reported_not_counted(
    compressed: list, ratio: float, drop: float, ties: int, flips: int, raw: float
) -> None:
    acc = compare_outputs(ORIGINAL, np.array(compressed), None, ratio)
    assert acc.drop_pp == pytest.approx(drop)
    assert (acc.ties, acc.tie_flips) == (ties, flips)
    assert acc.top1_agreement == pytest.approx(raw)  # over every sample, ties included


def test_probabilities_are_compared_as_log_ratios() -> None:
    logits = ORIGINAL
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert tie_margin(probs) == pytest.approx(tie_margin(logits))
    assert tie_margin(logits) == pytest.approx([0.05, 1.0, 0.2])
    assert np.isinf(tie_margin(np.ones((2, 1)))).all()  # one class: never a tie


def test_labels_ignore_ties() -> None:
    acc = compare_outputs(ORIGINAL, ORIGINAL[:, ::-1].copy(), np.array([0, 0, 2]))
    assert acc.metric == "top1" and acc.ties == 0 and acc.drop_pp == pytest.approx(100.0)
