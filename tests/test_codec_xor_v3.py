"""Codec `xor` variant 3 (docs/codecs/xor.md §12): mask-adaptive seed widths, the register,
solver, round-trips, golden values, datapath agreement, hostile records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xorc.codecs import CodecId
from xorc.codecs.raw.decode import decode as raw_decode
from xorc.codecs.xor.adaptive import field_widths, register_windows
from xorc.codecs.xor.adaptsolve import AdaptLanes, solve_adaptive
from xorc.codecs.xor.decode import decode
from xorc.codecs.xor.encode import encode, finish, solve_tensor
from xorc.codecs.xor.network import DEFAULT_M_SEED, network, xor_outputs
from xorc.codecs.xor.options import XorOptions
from xorc.datapath import DatapathConfig, simulate_tensor
from xorc.datapath.units.xor import adaptive_registers
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import Encoded, QuantTensor

GOLDEN = Path(__file__).parent / "golden" / "xor"
V3 = XorOptions(variant=3)


def make_q(shape: tuple[int, ...], bits: int, sparsity: float, seed: int) -> QuantTensor:
    rng = np.random.default_rng(seed)
    top = 2 ** (bits - 1) - 1
    v = rng.integers(-top, top + 1, size=shape).astype(np.int16)
    v[v == 0] = 1
    v[rng.random(shape) < sparsity] = 0
    imp = rng.random(shape).astype(np.float32)
    return QuantTensor("t", v, bits, np.ones(1, np.float32), None, imp)


def rows_pruned_q(seed: int) -> QuantTensor:
    """Rows of very different density, some empty (like fashion_cnn_sparse's fc1)."""
    rng = np.random.default_rng(seed)
    v = rng.integers(-127, 128, size=(48, 600)).astype(np.int16)
    v[v == 0] = 1
    density = rng.choice([0.0, 0.03, 0.1, 0.3], size=48)[:, None]
    v[rng.random(v.shape) >= density] = 0
    return QuantTensor("t", v, 8, np.ones(1, np.float32), None)


def xor_only(q: QuantTensor, options: XorOptions = V3) -> Encoded:
    return finish(solve_tensor(q, options), None, fallback=False)


def both(q: QuantTensor, params: dict, streams: dict) -> list[np.ndarray]:
    ref = decode(q.shape, q.bits, params, streams)
    sim = simulate_tensor(q.shape, q.bits, CodecId.XOR, params, streams, DatapathConfig())[0]
    return [ref, sim]


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
def test_solver_errors_match_decoding(seed: int) -> None:
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
    seeds, errors = solve_adaptive(AdaptLanes(coef, rhs, counts, widths, reg), 3)
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


# --- round-trips ---------------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 12), min_size=0, max_size=3).map(tuple)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=shapes,
    bits=st.integers(2, 8),
    sparsity=st.sampled_from([0.0, 0.3, 0.7, 0.9, 1.0]),
    seed=st.integers(0, 2**16),
    effort=st.integers(1, 2),
)
def test_round_trip_is_exact(
    shape: tuple[int, ...], bits: int, sparsity: float, seed: int, effort: int
) -> None:
    q = make_q(shape, bits, sparsity, seed)
    e = encode(q, XorOptions(variant=3, effort=effort))
    dec = decode if e.codec == CodecId.XOR else raw_decode
    assert np.array_equal(dec(q.shape, q.bits, e.params, e.streams), q.values)
    assert np.array_equal(e.decoded, q.values)
    e = xor_only(q, XorOptions(variant=3, effort=effort))
    ref, sim = both(q, dict(e.params), dict(e.streams))
    assert np.array_equal(ref, q.values) and np.array_equal(sim, q.values)


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
    a, b = xor_only(q), xor_only(q)
    assert a.params == b.params and a.streams == b.streams


def test_adaptive_widths_beat_fixed_rates_on_uneven_rows() -> None:
    q = rows_pruned_q(3)
    v2 = xor_only(q, XorOptions(variant=2))
    v3 = xor_only(q)
    size = [sum(len(s) for s in e.streams.values()) for e in (v2, v3)]
    assert size[1] < 0.9 * size[0]
    assert np.array_equal(decode(q.shape, 8, v3.params, v3.streams), q.values)


# --- hostile records -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[QuantTensor, Encoded]:
    q = make_q((30, 50), 6, 0.75, seed=13)
    return q, xor_only(q)


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
    q, e = sample
    streams = dict(e.streams)
    streams[name] = streams[name][:-1] if change == "truncate" else streams[name] + b"\x00"
    with pytest.raises(CorruptStream, match=name):
        decode(q.shape, q.bits, e.params, streams)
    with pytest.raises(CorruptStream):
        simulate_tensor(q.shape, q.bits, CodecId.XOR, e.params, streams, DatapathConfig())


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
    e = xor_only(q)
    k = e.params["n_kept"]
    assert e.stats["plane_mode"][1] in ("ones", "zeros")
    for mode, count in zip(e.stats["plane_mode"], e.params["patches"], strict=True):
        assert mode == "seeds" or count <= k / 4
    assert np.array_equal(decode(q.shape, 8, e.params, e.streams), q.values)
