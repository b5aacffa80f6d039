"""Quantization, pruning and configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xorc.config import CompressOptions, build_options
from xorc.errors import ConfigError
from xorc.quantize import dequantize, global_threshold, prune_below, prune_to, quantize

floats = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
    elements=st.floats(-100, 100, width=32),
)


@given(floats, st.integers(2, 8), st.booleans())
def test_quantize_is_symmetric_and_bounded(w: np.ndarray, bits: int, per_channel: bool) -> None:
    axis = 0 if per_channel else None
    levels, scales = quantize(w, bits, axis)
    top = 2 ** (bits - 1) - 1
    assert levels.shape == w.shape and np.abs(levels).max(initial=0) <= top
    assert scales.dtype == np.float32 and (scales > 0).all()
    err = np.abs(dequantize(levels, scales, axis) - w)
    bound = (scales.max() if axis is None else scales.reshape(-1, *[1] * (w.ndim - 1))) * 0.5
    assert (err <= bound * (1 + 1e-5) + 1e-6).all()
    assert (levels[w == 0] == 0).all()


def test_known_values() -> None:
    w = np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]], np.float32)
    levels, scales = quantize(w, 8, 0)
    assert levels.tolist() == [[127, -64, 32], [0, 0, 0]]  # -63.5 rounds half to even
    assert scales.tolist() == [pytest.approx(1 / 127), 1.0]


@given(floats, st.floats(0, 0.99))
def test_prune_reaches_target(w: np.ndarray, s: float) -> None:
    pruned = prune_to(w, s)
    zeros = np.count_nonzero(pruned == 0)
    assert zeros >= int(np.ceil(s * w.size - 1e-9))
    kept = pruned != 0
    if kept.any() and (~kept).any():
        assert np.abs(w[kept]).min() >= np.abs(w[~kept & (w != 0)]).max(initial=0)


def test_global_threshold() -> None:
    a, b = np.arange(1, 11, dtype=np.float32), np.arange(11, 21, dtype=np.float32)
    t = global_threshold([a, b], 0.5)
    assert t == 10 and not prune_below(a, t).any() and prune_below(b, t).all()


def test_config_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "xorc.toml"
    cfg.write_text(
        'bits = 6\nsparsity = 0.5\npolicy = "raw"\n'
        '[[layer]]\nmatch = "conv*"\nbits = 8\n'
        '[[layer]]\nmatch = "fc*"\nskip = true\n'
    )
    opts = build_options(cfg, bits=4, sparsity=None)
    assert opts.bits == 4 and opts.sparsity == 0.5 and opts.policy == "raw"
    assert opts.settings_for("w1", ["conv1"]).bits == 8
    assert opts.settings_for("w3", ["fc2"]).skip
    assert opts.settings_for("other", []).bits == 4


@pytest.mark.parametrize(
    "text",
    [
        "bits = 9",
        "policy = 'zip'",
        "unknown = 1",
        "[[layer]]\nbits = 4",
        "sparsity = 1.0",
        "bits = [",
        "[[layer]]\nmatch = 'a'\nsparsity = -1",
    ],
)
def test_bad_config(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        build_options(cfg)


def test_options_digest_is_stable() -> None:
    assert CompressOptions().digest() == CompressOptions().digest()
    assert CompressOptions(bits=4).digest() != CompressOptions().digest()
