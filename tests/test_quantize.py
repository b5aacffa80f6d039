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
from xorc.quantize import (
    bfloat16_ceil,
    dequantize,
    global_threshold,
    is_bfloat16,
    prune_below,
    prune_to,
    quantize,
)

floats = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
    elements=st.floats(-100, 100, width=32),
)


@given(floats, st.integers(2, 8), st.booleans(), st.sampled_from(["float32", "bfloat16"]))
def test_quantize_is_symmetric_and_bounded(
    w: np.ndarray, bits: int, per_channel: bool, scale_dtype: str
) -> None:
    axis = 0 if per_channel else None
    levels, scales = quantize(w, bits, axis, scale_dtype)
    top = 2 ** (bits - 1) - 1
    assert levels.shape == w.shape and np.abs(levels).max(initial=0) <= top
    assert scales.dtype == np.float32 and (scales > 0).all()
    err = np.abs(dequantize(levels, scales, axis) - w)
    bound = (scales.max() if axis is None else scales.reshape(-1, *[1] * (w.ndim - 1))) * 0.5
    assert (err <= bound * (1 + 1e-5) + 1e-6).all()
    assert (levels[w == 0] == 0).all()


@given(st.floats(2.0**-126, 2.0**127, width=32))
def test_bfloat16_ceil_is_the_next_bfloat16_at_or_above(x: float) -> None:
    v = np.array([x], np.float32)
    up = bfloat16_ceil(v)
    assert is_bfloat16(up) and up[0] >= v[0]
    assert up[0] < v[0] * (1 + 2**-7)  # under one bfloat16 step (7 stored mantissa bits)
    below = (up.view(np.uint32) - np.uint32(0x10000)).view(np.float32)
    assert below[0] < v[0]  # the bfloat16 value below is too small: `up` is the smallest


@given(floats, st.integers(2, 8))
def test_bfloat16_scales_only_round_the_scale_up(w: np.ndarray, bits: int) -> None:
    """bfloat16 scales are the float32 ones rounded up, and the levels are those of the
    rounded scale (so no level clips)."""
    lv32, s32 = quantize(w, bits, 0, "float32")
    lv16, s16 = quantize(w, bits, 0, "bfloat16")
    normal = s32 >= np.finfo(np.float32).tiny  # subnormal scales stay float32
    assert np.array_equal(s16[~normal], s32[~normal]) and is_bfloat16(s16[normal])
    assert (s16 >= s32).all() and (s16[normal] < s32[normal] * (1 + 2**-7)).all()
    shape = [-1] + [1] * (w.ndim - 1)
    direct = np.rint(w.astype(np.float64) / s16.astype(np.float64).reshape(shape))
    assert np.array_equal(lv16, direct.astype(np.int16))
    assert (np.abs(lv16.astype(int) - lv32) <= 1).all()


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
