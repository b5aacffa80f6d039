"""Codec `xor` (docs/codecs/xor.md): round-trips, policies, golden vectors, hostile input."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xorc.codecs import CodecId
from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.raw.decode import decode as raw_decode
from xorc.codecs.xor.decode import decode
from xorc.codecs.xor.encode import encode, finish, solve_tensor
from xorc.codecs.xor.network import (
    DEFAULT_M_SEED,
    network,
    network_crc32,
    splitmix64,
    xor_outputs,
)
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.solve import solve_group
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import Encoded, QuantTensor

GOLDEN = Path(__file__).parent / "golden" / "xor"


def make_q(
    shape: tuple[int, ...],
    bits: int,
    sparsity: float,
    seed: int,
    importance: bool = False,
) -> QuantTensor:
    """Random levels of the full symmetric range, a `sparsity` fraction set to 0."""
    rng = np.random.default_rng(seed)
    top = 2 ** (bits - 1) - 1
    v = rng.integers(-top, top + 1, size=shape).astype(np.int16)
    v[v == 0] = 1
    v[rng.random(shape) < sparsity] = 0
    imp = rng.random(shape).astype(np.float32) if importance else None
    return QuantTensor("t", v, bits, np.ones(1, np.float32), None, imp)


def laplace_q(n: int, bits: int, sparsity: float, seed: int) -> QuantTensor:
    """Laplace weights, magnitude-pruned and quantized per tensor (realistic plane statistics)."""
    rng = np.random.default_rng(seed)
    w = rng.laplace(size=n)
    w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
    top = 2 ** (bits - 1) - 1
    v = np.round(w / np.abs(w).max() * top).astype(np.int16)
    v[(w != 0) & (v == 0)] = 1
    return QuantTensor("t", v, bits, np.ones(1, np.float32), None)


def decode_any(q: QuantTensor, e: Encoded) -> np.ndarray:
    if e.codec == CodecId.XOR:
        return decode(q.shape, q.bits, e.params, e.streams)
    assert e.codec == CodecId.RAW
    return raw_decode(q.shape, q.bits, e.params, e.streams)


def xor_only(q: QuantTensor, options: XorOptions | None = None) -> Encoded:
    """The XOR encoding, even where `raw` would be smaller."""
    return finish(solve_tensor(q, options or XorOptions()), None, fallback=False)


# --- round-trips ---------------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 9), min_size=0, max_size=3).map(tuple)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=shapes,
    bits=st.integers(2, 8),
    sparsity=st.sampled_from([0.0, 0.3, 0.7, 0.9, 1.0]),
    seed=st.integers(0, 2**16),
    effort=st.integers(1, 3),
)
def test_policy_all_round_trip_is_exact(
    shape: tuple[int, ...], bits: int, sparsity: float, seed: int, effort: int
) -> None:
    q = make_q(shape, bits, sparsity, seed)
    options = XorOptions(seed=seed, effort=effort)
    e = xor_only(q, options)
    assert np.array_equal(decode(q.shape, bits, e.params, e.streams), q.values)
    assert np.array_equal(e.decoded, q.values)
    assert sum(e.stats["errors_left"]) == 0
    json.dumps(e.params), json.dumps(e.stats)  # JSON-able
    chosen = encode(q, options)
    assert np.array_equal(decode_any(q, chosen), q.values)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("sparsity", [0.8, 0.9])
def test_larger_tensors_round_trip(bits: int, sparsity: float) -> None:
    q = laplace_q(20_000 + 77, bits, sparsity, seed=bits)
    e = encode(q, XorOptions(effort=2))
    assert e.codec == CodecId.XOR
    assert np.array_equal(decode(q.shape, bits, e.params, e.streams), q.values)


@pytest.mark.parametrize(
    ("shape", "sparsity"),
    [
        ((5, 7), 1.0),
        ((33, 3), 0.0),
        ((1,), 0.0),
        ((), 0.0),
        ((1,), 1.0),
        ((1000,), 0.85),
        ((0, 5), 0.5),
    ],
    ids=["all-pruned", "none-pruned", "one-element", "scalar", "one-pruned", "ragged", "empty"],
)
def test_edge_cases(shape: tuple[int, ...], sparsity: float) -> None:
    q = make_q(shape, 8, sparsity, seed=3)
    e = xor_only(q)
    assert np.array_equal(decode(q.shape, 8, e.params, e.streams), q.values)
    chosen = encode(q, XorOptions())
    assert np.array_equal(decode_any(q, chosen), q.values)


def test_all_pruned_costs_nothing() -> None:
    q = make_q((4, 100), 8, 1.0, seed=1)
    e = encode(q, XorOptions())
    assert e.codec == CodecId.XOR
    assert sum(len(s) for s in e.streams.values()) == 0


def test_dense_tensor_falls_back_to_raw() -> None:
    q = make_q((64, 64), 4, 0.0, seed=5)
    e = encode(q, XorOptions())
    assert e.codec == CodecId.RAW
    assert e.stats["fallback"].startswith("raw:")
    assert np.array_equal(decode_any(q, e), q.values)


def test_sparse_int8_rate_is_near_the_bound() -> None:
    q = laplace_q(200_000, 8, 0.9, seed=11)
    s = encode(q, XorOptions()).stats["bits_per_weight"]
    assert s["planes"] + s["patches"] <= 1.3 * 8 * 0.1
    assert s["mask"] <= 0.5


def test_deterministic() -> None:
    q = make_q((50, 60), 6, 0.8, seed=9, importance=True)
    for policy, budget in (("all", None), ("importance", 0.5)):
        o = XorOptions(seed=4, effort=3, patch_policy=policy, error_budget=budget)
        a, b = encode(q, o), encode(q, o)
        assert a.params == b.params and a.streams == b.streams and a.stats == b.stats


# --- policy importance ---------------------------------------------------------------------------


def _plane_errors(q: QuantTensor, decoded: np.ndarray) -> list[int]:
    diff = to_sign_magnitude(decoded.ravel(), q.bits) ^ to_sign_magnitude(q.values.ravel(), q.bits)
    return [int(((diff >> (q.bits - 1 - i)) & 1).sum()) for i in range(q.bits)]


@pytest.mark.parametrize("budget", [None, 0.0, 0.3, 1.0, 5.0, 50.0])
@pytest.mark.parametrize("with_importance", [False, True])
def test_importance_budget(budget: float | None, with_importance: bool) -> None:
    q = make_q((96, 100), 8, 0.85, seed=21, importance=with_importance)
    solved = solve_tensor(q, XorOptions(effort=2, patch_policy="importance"))
    e = finish(solved, budget, fallback=False)
    out = decode(q.shape, q.bits, e.params, e.streams)
    assert np.array_equal(out, e.decoded)
    # Pruned weights stay 0 and kept weights never become 0.
    assert np.array_equal(out != 0, q.values != 0)
    # Every uncorrected error shows up as exactly one wrong bit of a kept weight.
    assert _plane_errors(q, out) == e.stats["errors_left"]
    changed = int((out != q.values).sum())
    left = sum(e.stats["errors_left"])
    assert -(-left // q.bits) <= changed <= left
    assert left <= (budget or 0.0) * e.stats["errors_if_all"]
    if not budget:
        assert changed == 0
    assert e.stats["patches"] == [
        a - b for a, b in zip(e.stats["errors"], e.stats["errors_left"], strict=True)
    ]


def test_budget_trades_size_for_errors() -> None:
    q = laplace_q(100_000, 8, 0.9, seed=2)
    solved = solve_tensor(q, XorOptions(patch_policy="importance"))
    sizes = []
    budgets = (None, 0.5, 1.0, 2.0, 5.0, 20.0, 50.0)
    for budget in budgets:
        e = finish(solved, budget, fallback=False)
        sizes.append(sum(len(s) for s in e.streams.values()))
        assert np.array_equal(decode(q.shape, 8, e.params, e.streams), e.decoded)
    assert all(a >= b for a, b in itertools.pairwise(sizes))  # monotone
    assert sizes[-2] < 0.9 * sizes[0]
    assert finish(solved, 20.0).stats["n_in"][-1] < finish(solved, None).stats["n_in"][-1]


def test_importance_pivots_push_errors_to_unimportant_bits() -> None:
    q = make_q((200, 256), 8, 0.88, seed=8, importance=True)
    solved = solve_tensor(q, XorOptions(patch_policy="importance"))
    imp = np.asarray(q.importance).ravel()[solved.kept]
    for i, plane in enumerate(solved.candidates):
        c = next(c for c in plane if c.n_in == solved.best_rate[i] - 2)
        assert c.err.size > 20
        assert imp[c.err].mean() < 0.6 * imp.mean()


def test_encode_matches_finish_of_solve() -> None:
    q = make_q((40, 50), 5, 0.8, seed=1, importance=True)
    o = XorOptions(seed=2, patch_policy="importance", error_budget=0.5)
    a, b = encode(q, o), finish(solve_tensor(q, o), 0.5)
    assert a.params == b.params and a.streams == b.streams


# --- solver --------------------------------------------------------------------------------------


def test_solver_errors_match_decoding() -> None:
    rng = np.random.default_rng(0)
    n_slices, n_out = 300, 64
    care = rng.random((n_slices, n_out)) < 0.3
    s_idx, r_idx = np.nonzero(care)
    targets = rng.integers(0, 8, s_idx.size).astype(np.uint8)
    rows = network(DEFAULT_M_SEED, n_out)
    keys = [rng.random(s_idx.size) for _ in range(3)]
    rates = [0, 5, 12, 19, 25, 40]
    sol = solve_group(s_idx.astype(np.int64), rows[r_idx], targets, keys, n_slices, 3, rates)
    for n in rates:
        for p in range(3):
            seeds = sol.seeds[n][:, p]
            assert (seeds >> np.uint64(n)).max() == 0  # only columns < n
            got = xor_outputs(seeds[s_idx], rows[r_idx])
            assert int((got != ((targets >> p) & 1)).sum()) == sol.errors[n][p]
    assert sol.errors[40].sum() < sol.errors[19].sum() < sol.errors[0].sum()


# --- network -------------------------------------------------------------------------------------


def test_network_generator_is_pinned() -> None:
    assert [int(v) for v in splitmix64(0, 3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]
    rows = network(DEFAULT_M_SEED, 512)
    assert [int(v) for v in rows[:2]] == [int(v) for v in splitmix64(0x584F5243, 2)]
    assert np.array_equal(network(DEFAULT_M_SEED, 64), rows[:64])
    assert network_crc32(rows) == 0xEB12B0C0


# --- golden --------------------------------------------------------------------------------------


def test_golden_tiny_int4() -> None:
    doc = json.loads((GOLDEN / "tiny_int4.json").read_text())
    streams = {k: bytes.fromhex(v) for k, v in doc["streams"].items()}
    out = decode(tuple(doc["shape"]), doc["bits"], doc["params"], streams)
    assert out.dtype == np.int16
    assert out.tolist() == doc["values"]
    assert sum(doc["params"]["patches"]) > 0
    # 4 busy slices of 64 (slice 2 is empty), sum(n_in) bits each.
    assert len(streams["seeds"]) == -(-4 * sum(doc["params"]["n_in"]) // 8)


# --- hostile input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[QuantTensor, Encoded]:
    q = make_q((30, 50), 6, 0.75, seed=13)
    e = xor_only(q)
    assert all(len(s) for s in e.streams.values())
    assert sum(e.params["patches"]) > 0
    return q, e


@pytest.mark.parametrize("name", ["mask", "seeds", "patches"])
@pytest.mark.parametrize("change", ["truncate", "extend", "drop"])
def test_bad_stream_length(sample: tuple[QuantTensor, Encoded], name: str, change: str) -> None:
    q, e = sample
    streams = dict(e.streams)
    if change == "truncate":
        streams[name] = streams[name][:-1]
    elif change == "extend":
        streams[name] = streams[name] + b"\x00"
    else:
        del streams[name]
    with pytest.raises(CorruptStream, match=name):
        decode(q.shape, q.bits, e.params, streams)


def test_extra_stream_is_refused(sample: tuple[QuantTensor, Encoded]) -> None:
    q, e = sample
    with pytest.raises(CorruptStream):
        decode(q.shape, q.bits, e.params, {**e.streams, "junk": b""})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("variant", 2),
        ("n_out", 0),
        ("n_out", "64"),
        ("m_seed", -1),
        ("m_crc32", 123),
        ("n_in", [1, 2]),
        ("n_in", [65] * 6),
        ("n_kept", 10**9),
        ("mask_coding", "zip"),
        ("patches", [0] * 5),
        ("patch_k", [33] * 6),
        ("mask_bits", True),
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


@pytest.mark.parametrize(
    ("key", "delta"),
    [("n_kept", -1), ("mask_bits", 1), ("patch_bits", 1), ("patches", 1), ("n_out", 1)],
)
def test_inconsistent_params(sample: tuple[QuantTensor, Encoded], key: str, delta: int) -> None:
    q, e = sample
    value = e.params[key]
    changed = [value[0] + delta, *value[1:]] if isinstance(value, list) else value + delta
    with pytest.raises((CorruptStream, BadRecord)):
        decode(q.shape, q.bits, {**e.params, key: changed}, e.streams)


def test_flipped_bits_never_crash(sample: tuple[QuantTensor, Encoded]) -> None:
    q, e = sample
    for name in ("mask", "patches"):
        data = e.streams[name]
        for i in range(0, 8 * len(data), 3):
            bad = bytearray(data)
            bad[i // 8] ^= 0x80 >> (i % 8)
            with contextlib.suppress(CorruptStream, BadRecord):
                decode(q.shape, q.bits, e.params, {**e.streams, name: bytes(bad)})


# --- layering ------------------------------------------------------------------------------------


def test_decoder_does_not_load_the_encoder() -> None:
    code = (
        "import sys, xorc.codecs.xor.decode\n"
        "bad = [m for m in sys.modules if m.startswith('xorc.codecs.xor.') "
        "and m.rsplit('.', 1)[1] in ('encode', 'solve')]\n"
        "bad += [m for m in sys.modules if m.endswith('.encode')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
