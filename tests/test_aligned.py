"""Crossbar-aligned pruning (docs/crossbar.md §3) and the tile-presence bitmap (docs/format.md
§3.6): unit numbering, golden blob, hypothesis round trips, saliency, the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from models import tiny_cnn

from xorc import aligned, api
from xorc.config import CompressOptions
from xorc.datapath.config import DatapathConfig
from xorc.datapath.sim import simulate
from xorc.decode import decode_levels
from xorc.errors import ConfigError, UsageError
from xorc.format import levels_digest, read_bytes, read_file
from xorc.hessian import Hessian
from xorc.tiles import (
    Structure,
    absent_nonzero,
    coded_shape,
    decode_presence,
    encode_presence,
    pack,
    unit_ids,
    unit_mask,
    unpack,
)

GOLDEN = Path(__file__).parent / "golden" / "containers"


def test_unit_ids_golden() -> None:
    st_ = Structure("kernel-group", 2, 2, 2, 1)
    ids = unit_ids((3, 2, 2), 0, st_)  # Co 3 (column blocks {0,1},{2}), Ci 2 x kernel 2
    assert ids.reshape(3, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]]
    tile = Structure("crossbar", 3, 1, 1, 1)
    ids = unit_ids((5, 2), 1, tile)  # Gemm [K=5, N=2]: output axis 1, 2 row tiles of 3
    assert ids.T.tolist() == [[0, 0, 0, 1, 1], [2, 2, 2, 3, 3]]
    assert encode_presence(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1], bool)) == bytes([0xB0, 0x80])


def test_golden_blob_decodes_and_its_bitmap_holds() -> None:
    expected = json.loads((GOLDEN / "tiny_crossbar.levels.json").read_text())
    container = read_bytes(read_file(GOLDEN / "tiny_crossbar.xorc"))
    pruned = 0
    for t in container.tensors:
        levels = decode_levels(container, t)
        assert levels.ravel().tolist() == expected[t.name]
        assert levels_digest(levels) == t.digest and t.structure is not None
        present = decode_presence(
            container.stream(t, "presence"),
            t.structure.n_units(t.shape, 0 if t.axis is None else t.axis),
        )
        pruned += int((~present).sum())
    assert pruned == 1  # w2's second tile of 64 features


def test_packed_golden_blob_decodes_with_both_models() -> None:
    expected = json.loads((GOLDEN / "tiny_crossbar_packed.levels.json").read_text())
    container = read_bytes(read_file(GOLDEN / "tiny_crossbar_packed.xorc"))
    w2 = next(t for t in container.tensors if t.name == "w2")
    assert w2.structure is not None and w2.structure.coded == "present"
    assert sum(s.length for s in w2.streams if s.name == "values") == 64 * 12  # one tile of two
    for t in container.tensors:
        levels = decode_levels(container, t)
        assert levels.ravel().tolist() == expected[t.name]
        assert levels_digest(levels) == t.digest
    sim = simulate(container, DatapathConfig(), keep_levels=True)
    for t in container.tensors:
        assert sim.levels[t.name].ravel().tolist() == expected[t.name]


def test_pack_order_is_the_matrix_row_by_row() -> None:
    levels = np.arange(1, 13, dtype=np.int16).reshape(3, 4)  # Gemm [K=3, N=4], output axis 1
    mask = np.array([[1, 0, 1, 1], [1, 0, 1, 1], [0, 0, 0, 0]], bool)
    assert pack(levels, mask, 1).tolist() == [1, 5, 3, 7, 4, 8]  # column o, then feature f
    np.testing.assert_array_equal(unpack(pack(levels, mask, 1), mask, 1), np.where(mask, levels, 0))


@given(
    st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5),
    st.sampled_from(["kernel-group", "crossbar"]), st.integers(0, 2**32 - 1), st.integers(0, 1),
)  # fmt: skip
def test_packed_round_trip(
    co: int, ci: int, k: int, rows: int, cols: int, kind: str, seed: int, axis: int
) -> None:
    structure = Structure(kind, rows, cols, k if axis == 0 else 1, 1, "present")
    shape = (co, ci * k) if axis == 0 else (ci * k, co)
    rng = np.random.default_rng(seed)
    ids = unit_ids(shape, axis, structure)
    keep = rng.random(structure.n_units(shape, axis)) < 0.5
    levels = np.where(keep[ids], rng.integers(-3, 4, shape), 0).astype(np.int16)
    present, mask = unit_mask(levels, axis, structure)
    coded = pack(levels, mask, axis)
    shape2, mask2 = coded_shape(shape, axis, structure, encode_presence(present))
    assert mask2 is not None and shape2 == coded.shape == (int(mask.sum()),)
    np.testing.assert_array_equal(unpack(coded, mask2, axis), levels)


@given(
    st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 5),
    st.sampled_from(["kernel-group", "crossbar"]), st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_presence_round_trip(
    co: int, ci: int, k: int, rows: int, cols: int, kind: str, seed: int
) -> None:
    structure = Structure(kind, rows, cols, k * k, 1)
    shape = (co, ci, k, k)
    n = structure.n_units(shape, 0)
    assert n <= co * ci * k * k
    rng = np.random.default_rng(seed)
    present = rng.random(n) < 0.5
    ids = unit_ids(shape, 0, structure)
    assert ids.min() >= 0 and ids.max() < n and len(np.unique(ids)) == n
    levels = np.where(present[ids], rng.integers(-3, 4, shape), 0).astype(np.int16)
    data = encode_presence(present)
    np.testing.assert_array_equal(decode_presence(data, n), present)
    assert absent_nonzero(levels, 0, structure, data) == 0
    if (~present).any():
        flipped = np.where(ids == np.flatnonzero(~present)[0], 1, levels).astype(np.int16)
        assert absent_nonzero(flipped, 0, structure, data) > 0


def test_prune_reaches_at_most_the_sparsity_and_keeps_tiles_dense() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 40)).astype(np.float32)
    w[:, 20:30] *= 0.01  # the least salient tile
    structure = Structure("crossbar", 10, 4, 1, 1)
    out, info = aligned.prune(w, 0, 0.25, structure, None)  # 8 tiles of 4 x 10 weights
    assert info["pruned_units"] == 2 and info["saliency"] == "magnitude"
    assert (out[:, 20:30] == 0).all() and np.count_nonzero(out == 0) == 80
    assert aligned.prune(w, 0, 0.12, structure, None)[1]["pruned_units"] == 0  # 40 > 38


def test_obs_saliency_with_identity_h_ranks_as_magnitude() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(6, 12)).astype(np.float32)
    structure = Structure("kernel-group", 4, 3, 2, 1)
    hess = Hessian(np.eye(12)[None], 100)
    a, info_a = aligned.prune(w, 0, 0.4, structure, hess)
    b, _ = aligned.prune(w, 0, 0.4, structure, None)
    assert info_a["saliency"] == "obs"
    np.testing.assert_array_equal(a, b)
    corr = np.eye(12) + 0.9 * np.ones((12, 12))  # correlated inputs: OBS ranks differently
    c, _ = aligned.prune(w * np.arange(1, 13), 0, 0.4, structure, Hessian(corr[None], 100))
    assert np.count_nonzero(c == 0) >= 0.3 * c.size


def test_options_refuse_bad_combinations() -> None:
    with pytest.raises(ConfigError, match="prune_structure"):
        CompressOptions(prune_structure="rows")
    with pytest.raises(ConfigError, match="prune_pattern"):
        CompressOptions(prune_structure="crossbar", prune_pattern="2:4")
    glob = CompressOptions(prune_structure="crossbar", sparsity_scope="global", sparsity=0.5)
    with pytest.raises(UsageError, match="needs --calib"):
        glob.resolved(False)
    assert glob.resolved(True).prune == "obs"
    with pytest.raises(ConfigError, match="crossbar"):
        CompressOptions(crossbar="crossbar-1")


@pytest.mark.parametrize("kind", ["kernel-group", "crossbar"])
def test_pipeline_prunes_with_calib(tmp_path: Path, kind: str) -> None:
    model, calib, blob = tmp_path / "m.onnx", tmp_path / "c.npz", tmp_path / "m.xorc"
    onnx.save(tiny_cnn(), model)
    x = np.random.default_rng(0).normal(size=(64, 1, 8, 8)).astype(np.float32)
    np.savez(calib, x=x)
    options = CompressOptions(
        sparsity=0.5, prune_structure=kind, crossbar="crossbar-64-slc", scale_dtype="pow2"
    )
    api.compress(model, blob, options, calib)
    container = read_bytes(read_file(blob))
    w2 = next(t for t in container.tensors if t.name == "w2")
    assert w2.structure is not None and w2.stats["aligned"]["saliency"] == "obs"
    assert w2.stats["reconstruction"]["method"] == "gptq"
    assert api.verify(blob).bit_exact
    layer = next(m for m in api.map_crossbars(blob, "crossbar-64-slc").layers if m.name == "w2")
    assert layer.tiles_used == 1 < layer.tiles_dense == 2


def test_global_scope_allocates_units_across_layers(tmp_path: Path) -> None:
    model, calib, blob = tmp_path / "m.onnx", tmp_path / "c.npz", tmp_path / "m.xorc"
    onnx.save(tiny_cnn(), model)
    x = np.random.default_rng(0).normal(size=(64, 1, 8, 8)).astype(np.float32)
    np.savez(calib, x=x)
    options = CompressOptions(
        sparsity=0.3, sparsity_scope="global", prune_structure="crossbar",
        crossbar="crossbar-64-slc", scale_dtype="pow2",
    )  # fmt: skip
    api.compress(model, blob, options, calib)
    container = read_bytes(read_file(blob))
    zeros = sum(t.n_weights - t.n_nonzero for t in container.tensors)
    assert zeros >= 0.3 * sum(t.n_weights for t in container.tensors)
    w2 = next(t for t in container.tensors if t.name == "w2")
    assert w2.stats["reconstruction"]["allocation"] == "global"
    assert w2.structure is not None and w2.stats["aligned"]["pruned_units"] >= 1
    assert api.verify(blob).bit_exact


@pytest.mark.parametrize("policy", ["raw", "all", "dictionary"])
def test_only_present_units_are_coded_when_shorter(tmp_path: Path, policy: str) -> None:
    model, blob = tmp_path / "m.onnx", tmp_path / "m.xorc"
    onnx.save(tiny_cnn(), model)
    options = CompressOptions(
        policy=policy, sparsity=0.5, prune_structure="crossbar", crossbar="crossbar-64-slc"
    )
    api.compress(model, blob, options, None, min_fidelity=None)
    container = read_bytes(read_file(blob))
    w2 = next(t for t in container.tensors if t.name == "w2")
    assert w2.structure is not None and w2.structure.coded == "present"
    assert w2.stats["aligned"]["coded_weights"] == 64 * 12
    assert api.verify(blob, decoder="both").bit_exact
