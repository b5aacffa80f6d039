"""Codec `xor` variant 2 (docs/codecs/xor.md §11): shift-register windows, round-trips, solver,
golden values, plane modes, hostile records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xor_helpers import both, check_bad_stream_length, make_q, xor_only

from xorc.codecs import CodecId
from xorc.codecs.raw.decode import decode as raw_decode
from xorc.codecs.xor.decode import decode, seed_windows
from xorc.codecs.xor.encode import encode, finish, solve_tensor
from xorc.codecs.xor.network import DEFAULT_M_SEED, network, xor_outputs
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.seqsolve import Lanes, low_mask, solve_lanes
from xorc.errors import BadRecord
from xorc.tensor import Encoded, QuantTensor

GOLDEN = Path(__file__).parent / "golden" / "xor"
V2 = XorOptions(variant=2)


def laplace_q(n: int, bits: int, sparsity: float, seed: int) -> QuantTensor:
    rng = np.random.default_rng(seed)
    w = rng.laplace(size=n)
    w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
    top = 2 ** (bits - 1) - 1
    v = np.round(w / np.abs(w).max() * top).astype(np.int16)
    v[(w != 0) & (v == 0)] = 1
    return QuantTensor("t", v, bits, np.ones(1, np.float32), None)


# --- the register (spec §11.1, §11.3) ------------------------------------------------------------


def test_golden_register_table() -> None:
    seeds = np.array([[0b101, 0b011, 0b110]], dtype=np.uint64)
    win = seed_windows(seeds, [3], [2], 2)[0]
    assert [int(w) for w in win] == [0x05, 0x2B, 0x06]
    rows = network(DEFAULT_M_SEED, 4)
    assert [int(r) & 0x3F for r in rows] == [0x25, 0x12, 0x0B, 0x31]
    out = xor_outputs(win[:, None], rows[None, :]).tolist()
    assert out == [[0, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 0]]


def test_one_stage_is_variant_one() -> None:
    seeds = np.arange(1, 11, dtype=np.uint64)[None, :]
    assert np.array_equal(seed_windows(seeds, [7], [1], 3), seeds)


def test_golden_tiny_int4_v2() -> None:
    doc = json.loads((GOLDEN / "tiny_int4_v2.json").read_text())
    streams = {k: bytes.fromhex(v) for k, v in doc["streams"].items()}
    p = doc["params"]
    assert p["variant"] == 2 and 1 in p["invert"] and p["stream_len"] < 5
    out = decode(tuple(doc["shape"]), doc["bits"], p, streams)
    assert out.tolist() == doc["values"]


# --- solver --------------------------------------------------------------------------------------


def _decode_lanes(seeds: np.ndarray, lanes: Lanes) -> np.ndarray:
    """Errors per lane and plane by evaluating the register windows (decoder layout)."""
    n_lanes, steps, n_planes = seeds.shape
    errs = np.zeros((n_lanes, n_planes), dtype=np.int64)
    for lane in range(n_lanes):
        n, s = int(lanes.n_in[lane]), int(lanes.stages[lane])
        win = seed_windows(seeds[lane].T.copy(), [n] * n_planes, [s] * n_planes, steps)
        for t in range(steps):
            k = int(lanes.counts[lane, t])
            got = xor_outputs(win[:, t, None], lanes.coef[lane, t, None, :k])
            planes = np.arange(n_planes, dtype=np.uint8)[:, None]
            want = (lanes.rhs[lane, t, None, :k] >> planes) & 1
            errs[lane] += (got != want).sum(axis=1)
    return errs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solver_errors_match_decoding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_lanes, steps, n_out = 6, 20, 32
    n_in = rng.integers(1, 12, n_lanes)
    stages = np.array([rng.integers(1, 64 // n + 1) for n in n_in])
    care = rng.random((n_lanes, steps, n_out)) < rng.uniform(0.2, 0.6)
    counts = care.sum(axis=2)
    k = int(counts.max())
    coef = np.zeros((n_lanes, steps, k), np.uint64)
    rhs = np.zeros((n_lanes, steps, k), np.uint8)
    lane, t, r = np.nonzero(care)
    rank = np.cumsum(care, axis=2)[lane, t, r] - 1
    rows = network(DEFAULT_M_SEED, n_out)
    coef[lane, t, rank] = rows[r] & low_mask(n_in * stages)[lane]
    rhs[lane, t, rank] = rng.integers(0, 8, lane.size).astype(np.uint8)
    lanes = Lanes(coef, rhs, counts, n_in, stages)
    seeds, errors = solve_lanes(lanes, 3)
    assert (seeds >> n_in.astype(np.uint64)[:, None, None]).max() == 0
    assert np.array_equal(_decode_lanes(seeds, lanes), errors)


# --- round-trips ---------------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 12), min_size=0, max_size=3).map(tuple)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=shapes,
    bits=st.integers(2, 8),
    sparsity=st.sampled_from([0.0, 0.3, 0.7, 0.9, 1.0]),
    seed=st.integers(0, 2**16),
    effort=st.integers(1, 2),
)
@pytest.mark.parametrize("variant", [2, 3])
def test_round_trip_is_exact(
    variant: int, shape: tuple[int, ...], bits: int, sparsity: float, seed: int, effort: int
) -> None:
    """Variants 2 and 3: both decoders rebuild the levels, with or without the raw fallback."""
    q = make_q(shape, bits, sparsity, seed)
    options = XorOptions(seed=seed, effort=effort, variant=variant)
    e = xor_only(q, options)
    assert e.params["variant"] == variant
    ref, sim = both(q, dict(e.params), dict(e.streams))
    assert np.array_equal(ref, q.values) and np.array_equal(sim, q.values)
    assert np.array_equal(e.decoded, q.values)
    json.dumps(e.params), json.dumps(e.stats)
    chosen = encode(q, options)
    dec = decode if chosen.codec == CodecId.XOR else raw_decode
    assert np.array_equal(dec(q.shape, bits, chosen.params, chosen.streams), q.values)


@pytest.mark.parametrize("budget", [None, 0.5, 5.0])
def test_importance_budget(budget: float | None) -> None:
    q = make_q((60, 90), 8, 0.85, seed=21)
    o = XorOptions(effort=2, patch_policy="importance", variant=2)
    e = finish(solve_tensor(q, o), budget, fallback=False)
    out = decode(q.shape, q.bits, e.params, e.streams)
    assert np.array_equal(out, e.decoded)
    assert np.array_equal(out != 0, q.values != 0)
    left = sum(e.stats["errors_left"])
    assert left <= (budget or 0.0) * e.stats["errors_if_all"]
    if not budget:
        assert np.array_equal(out, q.values)


def test_deterministic() -> None:
    q = make_q((50, 60), 6, 0.8, seed=9)
    o = XorOptions(seed=4, effort=2, variant=2)
    a, b = encode(q, o), encode(q, o)
    assert a.params == b.params and a.streams == b.streams and a.stats == b.stats


# --- rate and plane modes --------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.7, 0.9])
def test_variant_two_is_smaller_than_variant_one(sparsity: float) -> None:
    q = laplace_q(120_000, 8, sparsity, seed=5)
    one = xor_only(q, XorOptions(variant=1)).stats["bits_per_weight"]
    two = xor_only(q, V2).stats["bits_per_weight"]
    assert two["planes"] + two["patches"] < 0.95 * (one["planes"] + one["patches"])
    assert two["planes"] + two["patches"] <= 1.1 * 8 * (1 - sparsity)


def test_plane_modes_follow_the_skew() -> None:
    rng = np.random.default_rng(3)
    mag = np.where(rng.random(40_000) < 0.97, 6, 1)  # magnitude code 110 or 001
    v = (mag * np.where(rng.random(mag.size) < 0.5, -1, 1)).astype(np.int16)
    v[rng.random(v.size) < 0.8] = 0
    q = QuantTensor("t", v, 4, np.ones(1, np.float32), None)
    e = xor_only(q, V2)
    modes = e.stats["plane_mode"]
    assert modes[0] == "seeds"  # sign: unbiased
    assert modes[1] == "zeros" and e.params["invert"][1] == 1  # 97 % ones
    assert modes[3] == "ones" and e.params["n_in"][3] == 0  # 97 % zeros
    assert np.array_equal(decode(q.shape, 4, e.params, e.streams), v)


# --- hostile records -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[QuantTensor, Encoded]:
    q = make_q((30, 50), 6, 0.75, seed=13)
    e = xor_only(q, V2)
    assert max(e.params["stages"]) > 1
    return q, e


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stages", [0] * 6),
        ("stages", [65] * 6),
        ("stages", [1, 2]),
        ("stages", [64] * 6),  # window wider than 64 bits
        ("invert", [2] * 6),
        ("invert", "0"),
        ("stream_len", 0),
        ("stream_len", 2**31),
        ("stream_len", 1.5),
        ("variant", 3),
    ],
)
def test_bad_params(sample: tuple[QuantTensor, Encoded], key: str, value: object) -> None:
    q, e = sample
    with pytest.raises(BadRecord):
        decode(q.shape, q.bits, {**e.params, key: value}, e.streams)
    params = dict(e.params)
    del params[key]
    with pytest.raises(BadRecord):
        decode(q.shape, q.bits, params, e.streams)


def test_wrong_stream_len_decodes_differently(sample: tuple[QuantTensor, Encoded]) -> None:
    q, e = sample
    out = decode(q.shape, q.bits, {**e.params, "stream_len": 1}, e.streams)
    assert not np.array_equal(out, q.values)


def test_inspect_notes_show_variant_stages_and_efficiency(
    sample: tuple[QuantTensor, Encoded],
) -> None:
    from xorc.codecs.xor.spec import notes

    _, e = sample
    text = " ".join(notes(e.stats))
    assert text.startswith("variant=2")
    assert f"N_s={'/'.join(map(str, e.params['stages']))}" in text
    assert "eff=" in text and "modes=" in text
    assert " ".join(
        notes(xor_only(make_q((30, 50), 6, 0.75, 13), XorOptions(variant=1)).stats)
    ).startswith("variant=1")


def test_compiled_solver_matches_numpy() -> None:
    """The numba kernel (xorc[fast]) and the numpy solver give the same seeds and errors."""
    from xorc.codecs.xor.seqsolve import solve_lanes_numpy
    from xorc.codecs.xor.seqsolve_jit import compiled_solver

    if compiled_solver() is None:
        pytest.skip("numba is not installed (or XORC_JIT=0): no compiled solver")
    rng = np.random.default_rng(7)
    n_lanes, steps, n_out = 8, 25, 32
    n_in = rng.integers(1, 20, n_lanes)
    n_in[:2] = (64, 1)
    stages = np.array([rng.integers(1, 64 // n + 1) for n in n_in])
    care = rng.random((n_lanes, steps, n_out)) < 0.5
    counts = care.sum(axis=2)
    coef = np.zeros((n_lanes, steps, int(counts.max())), np.uint64)
    rhs = np.zeros(coef.shape, np.uint8)
    lane, t, r = np.nonzero(care)
    rank = np.cumsum(care, axis=2)[lane, t, r] - 1
    coef[lane, t, rank] = network(DEFAULT_M_SEED, n_out)[r] & low_mask(n_in * stages)[lane]
    rhs[lane, t, rank] = rng.integers(0, 256, lane.size).astype(np.uint8)
    lanes = Lanes(coef, rhs, counts, n_in, stages)
    fast, slow = solve_lanes(lanes, 8), solve_lanes_numpy(lanes, 8)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert np.array_equal(_decode_lanes(fast[0], lanes), fast[1])


def test_datapath_matches_reference(sample: tuple[QuantTensor, Encoded]) -> None:
    q, e = sample
    ref, sim = both(q, dict(e.params), dict(e.streams))
    assert np.array_equal(ref, q.values) and np.array_equal(sim, q.values)
    # a different stream length is a different (valid) record: both models agree on it
    ref, sim = both(q, {**e.params, "stream_len": 3}, dict(e.streams))
    assert np.array_equal(ref, sim)


@pytest.mark.parametrize("name", ["mask", "seeds", "patches"])
@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_bad_stream_length(sample: tuple[QuantTensor, Encoded], name: str, change: str) -> None:
    check_bad_stream_length(*sample, name, change)


def test_flipped_seed_bits_agree_in_both_models(sample: tuple[QuantTensor, Encoded]) -> None:
    q, e = sample
    data = e.streams["seeds"]
    for i in range(0, sum(e.stats["plane_bits"]), 97):  # not the pad bits
        bad = bytearray(data)
        bad[i // 8] ^= 0x80 >> (i % 8)
        ref, sim = both(q, dict(e.params), {**e.streams, "seeds": bytes(bad)})
        assert np.array_equal(ref, sim)


@pytest.mark.parametrize("variant", [2, 3])
def test_blobs_do_not_depend_on_numba(monkeypatch: pytest.MonkeyPatch, variant: int) -> None:
    """Same input and options give byte-identical streams with and without the compiled
    solver (XORC_JIT=0 forces numpy), variants 2 and 3."""
    q = laplace_q(20_000, 8, 0.9, seed=4)
    o = XorOptions(variant=variant, effort=2)
    monkeypatch.setenv("XORC_JIT", "1")
    a = encode(q, o)
    monkeypatch.setenv("XORC_JIT", "0")
    b = encode(q, o)
    assert a.params == b.params and a.streams == b.streams
