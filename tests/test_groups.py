"""Group scales (`--group-size G`, docs/format.md §3.4 "Group scales"): the quantizer's layout,
the stream, GPTQ's per-group scales, the record field and its required flag, malformed records,
and a compressed blob that decodes and verifies."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xorc import api, errors
from xorc.config import CompressOptions
from xorc.decode import decode_levels, to_weights
from xorc.format import read_bytes, read_file, v1
from xorc.format.container import decode_scales, dumps, encode_scales, pow2_shifts
from xorc.hessian import Hessian
from xorc.quantize import (
    dequantize,
    expand_scales,
    group_of,
    max_level,
    quantize,
    shift_dequantize,
)
from xorc.reconstruct import Method, reconstruct

MLP = "sample_models/digits_mlp.onnx"


def test_golden_group_scales_and_levels() -> None:
    """A [2, 5] weight, G = 2 at 4 bits (levels ±7): rows [1 -7 | 2 3.5 | 0.7] and
    [0 0 | -14 7 | 1.4] give groups of max|w| 7, 3.5, 0.7 and 0 (scale 1), 14, 1.4."""
    w = np.float32([[1, -7, 2, 3.5, 0.7], [0, 0, -14, 7, 1.4]])
    levels, scales = quantize(w, 4, 0, "float32", 2)
    np.testing.assert_array_equal(scales, np.float32([1, 0.5, 0.1, 1, 2, 0.2]))
    np.testing.assert_array_equal(levels, [[1, -7, 4, 7, 7], [0, 0, -7, 4, 7]])
    assert encode_scales(scales, "float32") == np.float32([1, 0.5, 0.1, 1, 2, 0.2]).tobytes()
    levels, scales = quantize(w, 4, 0, "pow2", 2)  # peaks / 7 rounded up to 2^-n
    assert encode_scales(scales, "pow2") == bytes([0, 1, 3, 0, 255, 2])
    np.testing.assert_array_equal(levels, [[1, -7, 4, 7, 6], [0, 0, -7, 4, 6]])


def test_layout_of_a_matmul_weight_is_its_columns() -> None:
    """axis 1 of a [K, N] weight: each column's K inputs are its row; scale c·ceil(K/G) + j."""
    w = np.arange(1, 13, dtype=np.float32).reshape(6, 2)  # K = 6, N = 2
    scales = np.float32([1, 2, 3, 4])  # G = 4: ceil(6 / 4) = 2 groups per column
    full = expand_scales(scales, 1, w.shape, 4)
    np.testing.assert_array_equal(full[:, 0], [1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(full[:, 1], [3, 3, 3, 3, 4, 4])
    _, got = quantize(w, 8, 1, "float32", 4)
    np.testing.assert_allclose(got * 127, [7, 11, 8, 12], rtol=1e-6)


def test_group_applies_only_to_rows_longer_than_it() -> None:
    assert group_of((8, 3, 3, 3), 0, 16) == 16
    assert group_of((8, 3, 3, 3), 0, 27) is None  # one group per channel: written per channel
    assert group_of((8, 27), None, 4) is None
    assert group_of((8, 27), 0, None) is None


floats = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=4, max_side=7),
    elements=st.floats(-1e3, 1e3, width=32),
)


@given(floats, st.integers(2, 8), st.integers(1, 9), st.sampled_from(["float32", "pow2"]))
def test_group_round_trip(w: np.ndarray, bits: int, g: int, dtype: str) -> None:
    """Levels in range, every weight within half its group's scale, the stream round trip,
    and the shift-only rescale equal to multiplying."""
    axis = w.ndim - 1
    group = group_of(w.shape, axis, g)
    levels, scales = quantize(w, bits, axis, dtype, group)
    per_row = -(-(w.size // w.shape[axis]) // (group or w.size))
    assert scales.size == w.shape[axis] * (per_row if group else 1)
    assert np.abs(levels).max(initial=0) <= max_level(bits)
    full = np.broadcast_to(expand_scales(scales, axis, w.shape, group), w.shape)
    err = np.abs(dequantize(levels, scales, axis, group) - w)
    assert (err <= full / 2 * (1 + 1e-6)).all()
    np.testing.assert_array_equal(decode_scales(encode_scales(scales, dtype), dtype), scales)
    if dtype == "pow2":
        shifts = pow2_shifts(scales)
        assert shifts is not None
        np.testing.assert_array_equal(
            shift_dequantize(levels, shifts, axis, group), dequantize(levels, scales, axis, group)
        )


def _hessian(x: np.ndarray) -> Hessian:
    return Hessian((x.T @ x / len(x))[None], len(x))


def test_gptq_with_a_diagonal_h_is_round_to_nearest_per_group() -> None:
    """Without correlations GPTQ updates nothing, so each group's scale, fixed at its first
    column from the updated weights, is the group's own max|w|: exactly `quantize`."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(6, 40)).astype(np.float32)
    hess = Hessian(np.diag(rng.uniform(0.5, 2, 40))[None], 100)
    levels, scales, info = reconstruct(w, 0, True, hess, Method(4, group=16, clip=False))
    want_levels, want_scales = quantize(w, 4, 0, "bfloat16", 16)
    np.testing.assert_array_equal(scales, want_scales)
    np.testing.assert_array_equal(levels, want_levels)
    assert info["group_size"] == 16 and info["act_order"] is False


@pytest.mark.parametrize("dtype", ["bfloat16", "pow2"])
def test_gptq_groups_beat_round_to_nearest_and_per_channel(dtype: str) -> None:
    rng = np.random.default_rng(3)
    w = (rng.normal(size=(12, 96)) * np.exp(rng.normal(size=96))).astype(np.float32)
    x = rng.normal(size=(800, 96)) * np.exp(rng.normal(size=96))
    x[:, 1:] += 0.5 * x[:, :-1]
    hess = _hessian(x)

    def err(levels: np.ndarray, scales: np.ndarray, group: int | None) -> float:
        d = (dequantize(levels, scales, 0, group) - w).astype(np.float64)
        return float(np.einsum("of,fg,og->", d, hess.moment[0], d))

    g_levels, g_scales, _ = reconstruct(w, 0, True, hess, Method(4, scale_dtype=dtype, group=32))
    c_levels, c_scales, _ = reconstruct(w, 0, True, hess, Method(4, scale_dtype=dtype, clip=True))
    rtn = quantize(w, 4, 0, dtype, 32)
    assert g_scales.size == 12 * 3
    if dtype == "pow2":
        assert pow2_shifts(g_scales) is not None
    assert err(g_levels, g_scales, 32) < err(*rtn, 32)
    assert err(g_levels, g_scales, 32) < err(c_levels, c_scales, None)


@pytest.fixture(scope="module")
def group_blob(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blob = tmp_path_factory.mktemp("groups") / "m.xorc"
    api.compress(MLP, blob, CompressOptions(bits=4, group_size=16, scale_dtype="pow2"))
    return blob


def test_blob_with_groups_sets_its_flag_decodes_and_verifies(group_blob: Path) -> None:
    data = read_file(group_blob)
    assert v1.read_layout(data).required_flags & v1.GROUP_SCALES
    container = read_bytes(data)
    record = container.tensors[0]
    assert record.group_size == 16 and record.scale_dtype == "pow2"
    features = record.n_weights // record.shape[record.axis]
    assert len(container.stream(record, "scales")) == record.shape[record.axis] * -(-features // 16)
    assert api.verify(group_blob).bit_exact
    levels = decode_levels(container, record)
    scales = container.scales(record)
    np.testing.assert_array_equal(
        to_weights(container, record, levels), dequantize(levels, scales, record.axis, 16)
    )
    rows = api.inspect(group_blob).to_json()["tensors"]
    assert rows[0]["group_size"] == 16
    assert rows[0]["scale_bytes"] == len(container.stream(record, "scales"))


def test_blob_without_groups_has_no_field_and_no_flag(tmp_path: Path) -> None:
    blob = tmp_path / "m.xorc"
    api.compress(MLP, blob, CompressOptions(bits=4))
    data = read_file(blob)
    assert not v1.read_layout(data).required_flags & v1.GROUP_SCALES
    assert all("group_size" not in t.to_json() for t in read_bytes(data).tensors)


def test_a_reader_that_does_not_know_the_flag_refuses(
    group_blob: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(v1, "KNOWN_REQUIRED_FLAGS", v1.KNOWN_REQUIRED_FLAGS & ~v1.GROUP_SCALES)
    with pytest.raises(errors.BadSectionTable):
        read_bytes(read_file(group_blob))


def _edited(blob: Path, flags_off: int = 0, **fields: object) -> bytes:
    """The blob with the first record's JSON fields set (None: removed), its flags cleared."""
    data = read_file(blob)
    layout = v1.read_layout(data)
    bodies = [
        (s.kind, s.flags, bytes(data[s.offset : s.offset + s.length])) for s in layout.sections
    ]
    doc = json.loads(bodies[1][2])
    for key, value in fields.items():
        if value is None:
            doc["tensors"][0].pop(key, None)
        else:
            doc["tensors"][0][key] = value
    bodies[1] = (bodies[1][0], bodies[1][1], dumps(doc))
    return v1.write_sections(bodies, layout.required_flags & ~flags_off)


@pytest.mark.parametrize(
    ("fields", "flags_off", "match"),
    [
        ({"group_size": 0}, 0, "'group_size'"),
        ({"group_size": -16}, 0, "'group_size'"),
        ({"group_size": "16"}, 0, "'group_size'"),
        ({"group_size": 16.0}, 0, "'group_size'"),
        ({"group_size": 2**31}, 0, "'group_size'"),
        ({"group_size": 64}, 0, "'group_size' 64 must be below the 64"),
        ({"group_size": 8}, 0, "stream 'scales' is"),  # twice the scales the stream has
        ({"group_size": None}, 0, "stream 'scales' is"),  # the stream holds group scales
        ({"axis": None}, 0, "needs a channel axis"),
        ({"dtype": "int8"}, 0, "float dtype"),
        ({}, v1.GROUP_SCALES, "GROUP_SCALES is clear"),
    ],
)
def test_malformed_group_records_are_refused(
    group_blob: Path, fields: dict, flags_off: int, match: str
) -> None:
    with pytest.raises(errors.BadRecord, match=match) as info:
        read_bytes(_edited(group_blob, flags_off, **fields))
    assert "\n" not in str(info.value) and "tensor" in str(info.value)


def test_per_tensor_scales_with_groups_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="group_size"):
        CompressOptions(group_size=32, per_channel=False)
    with pytest.raises(errors.ConfigError, match="group_size"):
        CompressOptions(group_size=0)


def test_cli_refuses_a_bad_group_size(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from xorc.cli import cli

    result = CliRunner().invoke(cli, ["compress", MLP, "-o", str(tmp_path / "m.xorc"),
                                      "--group-size", "0"])  # fmt: skip
    assert result.exit_code == errors.ExitCode.USAGE and "--group-size" in result.output


def test_group_records_equal_after_write_read(group_blob: Path) -> None:
    container = read_bytes(read_file(group_blob))
    again = read_bytes(v1.write(dataclasses.replace(container)))
    assert again.tensors == container.tensors
