"""xorc.prequant: int8/uint8 weights back bit for bit, and --requantize's bounded change."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xorc import prequant
from xorc.errors import UnsupportedModel


@st.composite
def quantized(draw):
    dtype = draw(st.sampled_from(["int8", "uint8"]))
    lo, hi = prequant.RANGES[dtype]
    rows, cols = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    a, b = sorted(draw(st.lists(st.integers(lo, hi), min_size=2, max_size=2)))
    seed = draw(st.integers(0, 2**16))
    v = np.random.default_rng(seed).integers(a, b + 1, size=(rows, cols)).astype(dtype)
    per_row = draw(st.booleans())
    zp = draw(st.lists(st.integers(lo, hi), min_size=rows, max_size=rows)) if per_row else [0]
    return v, np.array(zp, np.int32), 0 if per_row else None, dtype


@given(quantized())
@settings(max_examples=200, deadline=None)
def test_lossless_is_exact_or_the_tensor_uses_all_256_values(case) -> None:
    v, zp, axis, dtype = case
    stored = prequant.lossless(v, zp, axis)
    if stored is None:
        assert int(v.max()) - int(v.min()) == 255
        return
    assert np.abs(stored.levels).max(initial=0) <= 127
    back = prequant.decode(stored.levels, stored.scales, stored.offsets, stored.axis, dtype)
    np.testing.assert_array_equal(back, v)


@given(quantized())
@settings(max_examples=200, deadline=None)
def test_requantize_at_8_bits_moves_at_most_one_extreme_by_one(case) -> None:
    v, zp, axis, dtype = case
    stored = prequant.requantize(v, zp, axis, 8, "float32")
    back = prequant.decode(stored.levels, stored.scales, stored.offsets, stored.axis, dtype)
    diff = back.astype(int) - v.astype(int)
    assert np.abs(diff).max(initial=0) <= 1
    moved = v[diff != 0]
    assert moved.size == 0 or np.unique(moved).size == 1  # one extreme value, not several


@pytest.mark.parametrize("bits", [2, 4, 6])
def test_requantize_to_fewer_bits_stays_within_half_a_step(bits: int) -> None:
    r = np.random.default_rng(bits)
    v = r.integers(0, 256, size=(8, 32)).astype(np.uint8)
    zp = r.integers(100, 156, size=8).astype(np.int32)
    stored = prequant.requantize(v, zp, 0, bits, "float32")
    assert stored.bits == bits and np.abs(stored.levels).max() <= 2 ** (bits - 1) - 1
    back = prequant.decode(stored.levels, stored.scales, stored.offsets, 0, "uint8")
    step = stored.scales[:, None]
    assert (np.abs(back.astype(float) - v) <= step / 2 + 0.5 + 1e-9).all()


def test_zero_points_per_direction_and_per_gate_row() -> None:
    shape = (2, 12, 40)  # DynamicQuantizeLSTM W: [dirs, I, 4H]
    z, axis = prequant.per_channel(np.array([3, 9]), shape, 2, "w")
    assert axis == 0 and list(z) == [3, 9]
    rows = np.arange(40).reshape(1, 40)  # [dirs=1, 4H]
    z, axis = prequant.per_channel(rows, (1, 12, 40), 2, "w")
    assert axis == 2 and list(z) == list(range(40))
    with pytest.raises(UnsupportedModel, match="more than one axis"):
        prequant.per_channel(np.arange(80).reshape(2, 40), shape, 2, "w")
