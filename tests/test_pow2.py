"""Power-of-two scales (`--scale-dtype pow2`, docs/format.md §3.4): the quantizer, the stream,
the shift-only dequantization, GPTQ against the pow2 scale, the container flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xorc import api
from xorc.config import CompressOptions
from xorc.decode import to_weights
from xorc.errors import CorruptStream
from xorc.format import read_bytes, read_file, v1
from xorc.format.container import decode_scales, encode_scales, pow2_shifts
from xorc.hessian import Hessian
from xorc.quantize import dequantize, max_level, pow2_ceil, quantize, shift_dequantize
from xorc.reconstruct import Method, reconstruct

floats = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
    elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False),  # a subnormal max|w| / top
    # underflows to 0: its float32 scale is then 1, its pow2 scale 2^-126 (both valid)
)


@given(floats, st.integers(2, 8), st.booleans())
def test_pow2_levels_are_those_of_the_pow2_scale(
    w: np.ndarray, bits: int, per_channel: bool
) -> None:
    axis = 0 if per_channel else None
    levels, scales = quantize(w, bits, axis, "pow2")
    shifts = pow2_shifts(scales)
    assert shifts is not None
    np.testing.assert_array_equal(np.ldexp(1.0, -shifts.astype(int)).astype(np.float32), scales)
    assert np.abs(levels).max(initial=0) <= max_level(bits)
    err = np.abs(dequantize(levels, scales, axis) - w)
    bound = scales.reshape([-1] + [1] * (w.ndim - 1)) / 2 if per_channel else scales / 2
    assert (err <= bound * (1 + 1e-6)).all()  # nothing clips: the scale was rounded up
    _, float_scales = quantize(w, bits, axis, "float32")
    assert (scales >= float_scales).all() and (scales < 2 * float_scales + 1e-30).all()


@given(hnp.arrays(np.int8, st.integers(1, 40), elements=st.integers(-127, 126)))
def test_pow2_stream_round_trip(shifts: np.ndarray) -> None:
    scales = np.ldexp(1.0, -shifts.astype(int)).astype(np.float32)
    data = encode_scales(scales, "pow2")
    assert data == shifts.tobytes() and len(data) == shifts.size
    np.testing.assert_array_equal(decode_scales(data, "pow2"), scales)


def test_pow2_golden_bytes_and_refusals() -> None:
    assert encode_scales(np.float32([1.0, 0.5, 2.0**-126, 2.0**127]), "pow2") == bytes(
        [0, 1, 126, 0x81]
    )
    with pytest.raises(ValueError):
        encode_scales(np.float32([0.75]), "pow2")
    assert np.isinf(decode_scales(bytes([0x80]), "pow2")).all()  # n = -128: 2^128
    np.testing.assert_array_equal(pow2_ceil(np.array([0.3, 0.25, 1e-45, 0.0])), [0.5, 0.25,
                                  2.0**-126, 1.0])  # fmt: skip


@given(floats, st.integers(2, 8))
def test_shift_dequantize_equals_multiplying(w: np.ndarray, bits: int) -> None:
    levels, scales = quantize(w, bits, 0, "pow2")
    shifts = pow2_shifts(scales)
    assert shifts is not None
    np.testing.assert_array_equal(
        shift_dequantize(levels, shifts, 0), dequantize(levels, scales, 0)
    )


def test_gptq_quantizes_against_the_pow2_scale() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(12, 20)).astype(np.float32)
    x = rng.normal(size=(500, 20)) * np.exp(rng.normal(size=20))
    hess = Hessian((x.T @ x / len(x))[None], len(x))
    levels, scales, _ = reconstruct(w, 0, True, hess, Method(4, scale_dtype="pow2"))
    assert pow2_shifts(scales) is not None
    np.testing.assert_array_equal(scales, quantize(w, 4, 0, "pow2")[1])
    rtn = dequantize(quantize(w, 4, 0, "pow2")[0], scales, 0)
    gptq = dequantize(levels, scales, 0)

    def err(q: np.ndarray) -> float:
        d = (q - w).astype(np.float64)
        return float(np.einsum("of,fg,og->", d, hess.moment[0], d))

    assert err(gptq) < err(rtn)


def test_pow2_blob_sets_the_flag_and_rebuilds(tmp_path: Path) -> None:
    blob = tmp_path / "m.xorc"
    api.compress("sample_models/digits_mlp.onnx", blob, CompressOptions(bits=4, scale_dtype="pow2"))
    data = read_file(blob)
    assert v1.read_layout(data).required_flags & v1.POW2_SCALES
    container = read_bytes(data)
    assert {t.scale_dtype for t in container.tensors} == {"pow2"}
    report = api.verify(blob)
    assert report.bit_exact
    record = container.tensors[0]
    payload = bytearray(container.payload)
    payload[record.streams[0].offset] = 0x80  # shift -128: an infinite scale
    bad = type(container)(container.meta, container.tensors, container.graph, bytes(payload))
    with pytest.raises(CorruptStream, match="scales"):
        to_weights(bad, record, np.zeros(record.shape, np.int16))
