"""Codec `xor` variant 3 (docs/codecs/xor.md §12): mask-adaptive seed widths, the register,
solver, round-trips, golden values, datapath agreement, hostile records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xor_helpers import both, check_bad_stream_length, make_q, xor_only

from xorc.codecs import CodecId
from xorc.codecs.xor.adaptive import field_widths, register_windows
from xorc.codecs.xor.adaptsolve import AdaptLanes, solve_adaptive, solve_adaptive_numpy
from xorc.codecs.xor.decode import decode
from xorc.codecs.xor.network import DEFAULT_M_SEED, network, xor_outputs
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.seqsolve_jit import compiled_solver
from xorc.datapath import DatapathConfig, simulate_tensor
from xorc.datapath.units.xor import adaptive_registers
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import Encoded, QuantTensor

GOLDEN = Path(__file__).parent / "golden" / "xor"
V3 = XorOptions(variant=3)


def rows_pruned_q(seed: int) -> QuantTensor:
    """Rows of very different density, some empty (like fashion_cnn_sparse's fc1)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(-127, 128, size=(48, 600)).astype(np.int16)
    v[v == 0] = 1
    density = rng.choice([0.0, 0.03, 0.1, 0.3], size=48)[:, None]
    v[rng.random(v.shape) >= density] = 0
    return QuantTensor("t", v, 8, np.ones(1, np.float32), None)


# --- the register (spec §12.1, §12.4) ------------------------------------------------------------


def test_golden_register_table() -> None:
    widths = field_widths(np.array([2, 1, 4]), [384], [6])
    assert widths.tolist() == [[3, 2, 6]]
    fields = np.array([[0b101, 0b01, 0b110011]], dtype=np.uint64)
    win = register_windows(fields, widths, [6], 3)[0]
    assert [int(w) for w in win] == [0x05, 0x15, 0x33]
    assert adaptive_registers([fields[0]], [widths[0]], [6], 3)[0].tolist() == [0x05, 0x15, 0x33]
    rows = network(DEFAULT_M_SEED, 4)
    out = xor_outputs(win[:, None], rows[None, :]).tolist()
    assert out == [[0, 0, 1, 1], [0, 1, 1, 0], [0, 0, 0, 1]]


@settings(max_examples=60, deadline=None)
@given(
    care=st.lists(st.integers(1, 80), min_size=1, max_size=40),
    rate=st.integers(0, 700),
    reg=st.integers(1, 64),
    stream_len=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_register_models_agree(
    care: list[int], rate: int, reg: int, stream_len: int, seed: int
) -> None:
    """The reference decoder's closed form and the datapath's stepping register agree, and
    both equal a plain loop over the spec's shift rule."""
    widths = field_widths(np.array(care), [rate], [reg])
    rng = np.random.default_rng(seed)
    fields = np.array(
        [int(rng.integers(0, 2**63)) & ((1 << int(w)) - 1) for w in widths[0]], dtype=np.uint64
    )
    ref = register_windows(fields[None, :], widths, [reg], stream_len)[0]
    sim = adaptive_registers([fields], [widths[0]], [reg], stream_len)[0]
    r, want = 0, []
    for m, (x, w) in enumerate(zip(fields.tolist(), widths[0].tolist(), strict=True)):
        r = 0 if m % stream_len == 0 else r
        r = ((r << w) | x) & ((1 << reg) - 1)
        want.append(r)
    assert ref.tolist() == want and sim.tolist() == want


def test_golden_tiny_int4_v3() -> None:
    doc = json.loads((GOLDEN / "tiny_int4_v3.json").read_text())
    streams = {k: bytes.fromhex(v) for k, v in doc["streams"].items()}
    p = doc["params"]
    assert p["variant"] == 3 and 1 in p["invert"] and p["stream_len"] < 5
    q = QuantTensor("t", np.array(doc["values"], np.int16), doc["bits"], np.ones(1), None)
    ref, sim = both(q, p, streams)
    assert ref.tolist() == doc["values"] and sim.tolist() == doc["values"]


# --- solver --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("solver", [solve_adaptive, solve_adaptive_numpy])
def test_solver_errors_match_decoding(seed: int, solver: Callable) -> None:
    rng = np.random.default_rng(seed)
    n_lanes, steps, n_out = 5, 24, 40
    care = rng.random((n_lanes, steps, n_out)) < rng.uniform(0.1, 0.6)
    counts = care.sum(axis=2)
    reg = rng.integers(8, 65, n_lanes)
    rates = rng.integers(150, 330, n_lanes)
    widths = np.stack(
        [field_widths(counts[i], [int(rates[i])], [int(reg[i])])[0] for i in range(5)]
    )
    k = max(int(counts.max()), 1)
    coef = np.zeros((n_lanes, steps, k), np.uint64)
    rhs = np.zeros((n_lanes, steps, k), np.uint8)
    lane, t, r = np.nonzero(care)
    rank = np.cumsum(care, axis=2)[lane, t, r] - 1
    coef[lane, t, rank] = network(DEFAULT_M_SEED, n_out)[r]
    rhs[lane, t, rank] = rng.integers(0, 8, lane.size).astype(np.uint8)
    seeds, errors = solver(AdaptLanes(coef, rhs, counts, widths, reg), 3)
    for i in range(n_lanes):
        assert (seeds[i] >> widths[i].astype(np.uint64)[:, None]).max() == 0
        win = register_windows(
            np.ascontiguousarray(seeds[i].T),
            np.repeat(widths[i][None], 3, 0),
            [int(reg[i])] * 3,
            steps,
        )
        for p in range(3):
            got = xor_outputs(win[p][:, None], coef[i])
            want = (rhs[i] >> p) & 1
            live = np.arange(k)[None, :] < counts[i][:, None]
            assert int(((got != want) & live).sum()) == errors[i, p]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 40),
    st.integers(1, 12),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
)
def test_numpy_solver_matches_compiled(
    n_lanes: int, steps: int, k: int, n_planes: int, seed: int
) -> None:
    """Random lanes (any rows, widths 0 .. W, W 1 .. 64): the numpy solver gives the compiled
    kernel's seeds and errors bit for bit."""
    if compiled_solver() is None:
        pytest.skip("numba is not installed (or XORC_JIT=0): no compiled solver")
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, k + 1, (n_lanes, steps))
    coef = rng.integers(0, 2**64, (n_lanes, steps, k), dtype=np.uint64)
    rhs = rng.integers(0, 256, (n_lanes, steps, k)).astype(np.uint8)
    pad = np.arange(k)[None, None, :] >= counts[..., None]
    coef[pad], rhs[pad] = 0, 0
    reg = rng.integers(1, 65, n_lanes)
    widths = np.minimum(rng.integers(0, 70, (n_lanes, steps)), reg[:, None])
    lanes = AdaptLanes(coef, rhs, counts, widths, reg)
    fast, slow = solve_adaptive(lanes, n_planes), solve_adaptive_numpy(lanes, n_planes)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


# --- round-trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [None, 1.0, 5.0])
def test_importance_budget(budget: float | None) -> None:
    q = make_q((40, 60), 6, 0.8, seed=5)
    o = XorOptions(variant=3, patch_policy="importance", error_budget=budget)
    e = xor_only(q, o)
    ref, sim = both(q, dict(e.params), dict(e.streams))
    assert np.array_equal(ref, e.decoded) and np.array_equal(sim, e.decoded)
    assert np.array_equal(e.decoded != 0, q.values != 0)
    if budget is None:
        assert np.array_equal(e.decoded, q.values)


def test_deterministic() -> None:
    q = make_q((50, 40), 8, 0.85, seed=9)
    a, b = xor_only(q, V3), xor_only(q, V3)
    assert a.params == b.params and a.streams == b.streams


def test_adaptive_widths_beat_fixed_rates_on_uneven_rows() -> None:
    q = rows_pruned_q(3)
    v2 = xor_only(q, XorOptions(variant=2))
    v3 = xor_only(q, V3)
    size = [sum(len(s) for s in e.streams.values()) for e in (v2, v3)]
    assert size[1] < 0.9 * size[0]
    assert np.array_equal(decode(q.shape, 8, v3.params, v3.streams), q.values)


# --- hostile records -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[QuantTensor, Encoded]:
    q = make_q((30, 50), 6, 0.75, seed=13)
    return q, xor_only(q, V3)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rate", [0] * 6),  # registers without rates
        ("rate", [16385] * 6),
        ("rate", [256, 256]),
        ("rate", "256"),
        ("invert", [2] * 6),
        ("stream_len", 0),
        ("stream_len", 2**31),
        ("variant", 4),
    ],
)
def test_bad_params(sample: tuple[QuantTensor, Encoded], key: str, value: object) -> None:
    q, e = sample
    with pytest.raises(BadRecord):
        decode(q.shape, q.bits, {**e.params, key: value}, e.streams)
    with pytest.raises(BadRecord):
        simulate_tensor(
            q.shape, q.bits, CodecId.XOR, {**e.params, key: value}, e.streams, DatapathConfig()
        )
    params = dict(e.params)
    del params[key]
    with pytest.raises(BadRecord):
        decode(q.shape, q.bits, params, e.streams)


@pytest.mark.parametrize("name", ["mask", "seeds", "patches"])
@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_bad_stream_length(sample: tuple[QuantTensor, Encoded], name: str, change: str) -> None:
    check_bad_stream_length(*sample, name, change)


def test_changed_rates_and_flipped_bits_agree_in_both_models(
    sample: tuple[QuantTensor, Encoded],
) -> None:
    q, e = sample
    data = e.streams["seeds"]
    for i in range(0, sum(e.stats["plane_bits"]), 89):  # not the pad bits
        bad = bytearray(data)
        bad[i // 8] ^= 0x80 >> (i % 8)
        ref, sim = both(q, dict(e.params), {**e.streams, "seeds": bytes(bad)})
        assert np.array_equal(ref, sim)
    ref, sim = both(q, {**e.params, "stream_len": 3}, dict(e.streams))
    assert np.array_equal(ref, sim) and not np.array_equal(ref, q.values)


def test_inspect_notes_show_variant_and_rates(sample: tuple[QuantTensor, Encoded]) -> None:
    from xorc.codecs.xor.spec import notes

    _, e = sample
    text = " ".join(notes(e.stats))
    assert text.startswith("variant=3")
    assert f"rate={'/'.join(map(str, e.params['rate']))}" in text and "eff=" in text


def test_patches_are_care_indices(sample: tuple[QuantTensor, Encoded]) -> None:
    """Patch values count kept weights (§12.3): one at K is out of range in both models."""
    from xorc.codecs.xor.patches import encode_patches

    q, e = sample
    k = e.params["n_kept"]
    runs = [np.zeros(0, np.int64)] * q.bits
    runs[2] = np.array([k - 1])
    ok = dict(zip(("patches", "patch_k", "patch_bits"), encode_patches(runs)[1:], strict=True))
    stream = encode_patches(runs)[0]
    ref, sim = both(q, {**e.params, **ok}, {**e.streams, "patches": stream})
    assert np.array_equal(ref, sim)
    runs[2] = np.array([k])
    bad = dict(zip(("patches", "patch_k", "patch_bits"), encode_patches(runs)[1:], strict=True))
    streams = {**e.streams, "patches": encode_patches(runs)[0]}
    with pytest.raises(CorruptStream):
        decode(q.shape, q.bits, {**e.params, **bad}, streams)
    with pytest.raises(CorruptStream):
        simulate_tensor(
            q.shape, q.bits, CodecId.XOR, {**e.params, **bad}, streams, DatapathConfig()
        )


def test_skewed_plane_is_patched_within_the_share() -> None:
    """A plane with few ones among its care bits is coded as patches; no plane coded at rate 0
    patches more than a quarter of its care bits."""
    q = rows_pruned_q(5)
    v = q.values.copy()
    v[np.abs(v) >= 64] //= 3  # the magnitude MSB is now rare among kept weights
    q = QuantTensor("t", v, 8, np.ones(1, np.float32), None)
    e = xor_only(q, V3)
    k = e.params["n_kept"]
    assert e.stats["plane_mode"][1] in ("ones", "zeros")
    for mode, count in zip(e.stats["plane_mode"], e.params["patches"], strict=True):
        assert mode == "seeds" or count <= k / 4
    assert np.array_equal(decode(q.shape, 8, e.params, e.streams), q.values)
