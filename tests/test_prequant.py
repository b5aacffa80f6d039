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
def test_lossless_is_exact_and_symmetric_unless_the_tensor_uses_all_256_values(case) -> None:
    v, zp, axis, dtype = case
    stored = prequant.lossless(v, zp, axis)
    full = int(stored.levels.min(initial=0)) == -128
    assert np.abs(stored.levels).max(initial=0) <= (128 if full else 127)
    assert stored.levels.max(initial=0) <= 127
    if full:  # only when no symmetric levels fit: one offset, min + 128
        assert stored.axis is None and list(stored.offsets) == [int(v.min()) + 128]
    back = prequant.decode(stored.levels, stored.scales, stored.offsets, stored.axis, dtype)
    np.testing.assert_array_equal(back, v)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_all_256_values_get_the_full_range(dtype: str) -> None:
    lo, hi = prequant.RANGES[dtype]
    v = np.random.default_rng(0).integers(lo, hi + 1, size=(16, 16))
    i = np.arange(16)
    v[i, i], v[i, (i + 1) % 16] = lo, hi  # both extremes in every row and every column
    v = v.astype(dtype)
    stored = prequant.lossless(v, np.zeros(1, np.int32), None)
    assert stored.levels.min() == -128 and stored.levels.max() == 127
    back = prequant.decode(stored.levels, stored.scales, stored.offsets, None, dtype)
    np.testing.assert_array_equal(back, v)


@given(quantized())
@settings(max_examples=200, deadline=None)
def test_requantize_at_8_bits_is_exact(case) -> None:
    v, zp, axis, dtype = case
    stored = prequant.requantize(v, zp, axis, 8, "float32")
    back = prequant.decode(stored.levels, stored.scales, stored.offsets, stored.axis, dtype)
    np.testing.assert_array_equal(back, v)
    assert stored.mode == "lossless"


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


@given(st.integers(2, 8), st.integers(0, 2**16), st.integers(1, 200))
@settings(max_examples=60, deadline=None)
def test_raw_full_range_round_trips_on_both_decoders(bits: int, seed: int, n: int) -> None:
    """docs/format.md §4.1: levels in [-2^(Q-1), 2^(Q-1)-1], -2^(Q-1) as the negative zero."""
    from xorc.codecs.raw.decode import decode as raw_decode
    from xorc.codecs.raw.encode import encode as raw_encode
    from xorc.codecs.raw.options import RawOptions
    from xorc.datapath import DatapathConfig, simulate_tensor
    from xorc.tensor import QuantTensor

    top = 1 << (bits - 1)
    values = np.random.default_rng(seed).integers(-top, top, size=n).astype(np.int16)
    values[0] = -top
    q = QuantTensor("w", values, bits, np.ones(1, np.float32), None)
    enc = raw_encode(q, RawOptions())
    assert enc.params["full_range"] is True
    np.testing.assert_array_equal(raw_decode((n,), bits, enc.params, enc.streams), values)
    sim, _ = simulate_tensor((n,), bits, 0, enc.params, enc.streams, DatapathConfig())
    np.testing.assert_array_equal(sim, values)
    plain = {k: v for k, v in enc.params.items() if k != "full_range"}
    assert raw_decode((n,), bits, plain, enc.streams)[0] == 0  # without it: negative zero is 0
