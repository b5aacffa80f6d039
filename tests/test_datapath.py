"""Datapath simulator (docs/datapath.md): the same cases against the reference decoders and the
simulator (pymtl3 style: shared data, two models), hypothesis equivalence on random tensors and
hostile streams, counters, the patch queue and lane parser models, configs, the layering rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xorc.codecs import CodecId
from xorc.codecs.decoders import DECODERS as REGISTERED_DECODERS
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.codecs.ebpc.options import EbpcOptions
from xorc.codecs.raw.options import RawOptions
from xorc.codecs.xor.options import XorOptions
from xorc.datapath import (
    PRESETS,
    DatapathConfig,
    area_estimate,
    get_preset,
    load_config,
    render_area,
    render_text,
    simulate,
    simulate_tensor,
)
from xorc.datapath import parser as lane_parser
from xorc.datapath.units import patch as patch_unit
from xorc.errors import BadRecord, ConfigError, CorruptStream
from xorc.format import Container, TensorRecord, read_bytes
from xorc.format import v1 as format_v1
from xorc.format.container import layout_payload, levels_digest
from xorc.policies import POLICIES
from xorc.tensor import Encoded, QuantTensor

ROOT = Path(__file__).resolve().parent.parent
CONFIG = DatapathConfig()

# --- the two models under test --------------------------------------------------------------

Decode = Callable[[tuple[int, ...], int, int, Mapping[str, Any], Mapping[str, bytes]], np.ndarray]


REFERENCE: dict[int, Any] = dict(REGISTERED_DECODERS)


def reference_decode(shape, bits, codec, params, streams):  # type: ignore[no-untyped-def]
    """The reference decoder of the codec (the registry the CLI uses)."""
    decoder = REFERENCE.get(codec)
    if decoder is None:
        raise BadRecord(f"unknown codec id {codec}")
    return decoder(shape, bits, params, streams)


def datapath_decode(shape, bits, codec, params, streams):  # type: ignore[no-untyped-def]
    return simulate_tensor(shape, bits, codec, params, streams, CONFIG)[0]


MODELS: dict[str, Decode] = {"reference": reference_decode, "datapath": datapath_decode}

# --- encoders, by policy ----------------------------------------------------------------------

ENCODER_SPECS: dict[str, tuple[str, Any]] = {
    "raw": ("raw", RawOptions()),
    "xor-all": ("all", XorOptions()),
    "xor-importance": ("importance", XorOptions(patch_policy="importance", error_budget=0.9)),
    "xor2-all": ("all", XorOptions(variant=2)),
    "xor2-importance": (
        "importance",
        XorOptions(patch_policy="importance", error_budget=0.9, variant=2),
    ),
    "dictionary": ("dictionary", DictionaryOptions()),
    "dictionary-k6-g2": ("dictionary", DictionaryOptions(dict_size=6, dict_group=2)),
    "ebpc": ("ebpc", EbpcOptions()),
}


ENCODERS: dict[str, tuple[Any, Any]] = {
    name: (POLICIES[policy].encode_with, options)
    for name, (policy, options) in ENCODER_SPECS.items()
}
ENCODER_NAMES = list(ENCODER_SPECS)


def encoder(name: str) -> tuple[Any, Any]:
    return ENCODERS[name]


def make_q(shape: tuple[int, ...], bits: int, sparsity: float, seed: int) -> QuantTensor:
    """Laplace weights, magnitude-pruned, quantized per output channel (axis 0)."""
    rng = np.random.default_rng(seed)
    w = rng.laplace(size=shape)
    if w.size and sparsity > 0:
        w[np.abs(w) <= np.quantile(np.abs(w), sparsity)] = 0
    top = (1 << (bits - 1)) - 1
    axis = 0 if len(shape) >= 1 and shape[0] > 0 else None
    if axis is None:
        scale = np.array([max(float(np.abs(w).max(initial=0)), 1e-9) / top], dtype=np.float32)
        levels = np.clip(np.rint(w / scale[0]), -top, top)
    else:
        peak = np.abs(w).reshape(shape[0], -1).max(axis=1, initial=0)
        scale = np.where(peak > 0, peak / top, 1).astype(np.float32)
        levels = np.clip(np.rint(w / scale.reshape((-1,) + (1,) * (len(shape) - 1))), -top, top)
    importance = rng.random(shape).astype(np.float32)
    return QuantTensor("t", levels.astype(np.int16), bits, scale, axis, importance)


CASES = [
    ("conv-int8-s90", (16, 8, 3, 3), 8, 0.9),
    ("fc-int8-s80", (48, 100), 8, 0.8),
    ("fc-int4-s50", (37, 29), 4, 0.5),
    ("vec-int3-dense", (61,), 3, 0.0),
    ("scalar-int5", (), 5, 0.0),
    ("empty", (0, 4), 8, 0.0),
    ("int2-s70", (12, 40), 2, 0.7),
]

_ENCODED: dict[tuple[str, str], tuple[QuantTensor, Encoded]] = {}


def encoded(case: str, enc: str) -> tuple[QuantTensor, Encoded]:
    """Shared test data: one encoding per (case, encoder), made once."""
    key = (case, enc)
    if key not in _ENCODED:
        _, shape, bits, sparsity = next(c for c in CASES if c[0] == case)
        fn, options = encoder(enc)
        q = make_q(shape, bits, sparsity, seed=len(case))
        _ENCODED[key] = (q, fn(q, options))
    return _ENCODED[key]


# --- shared cases, both models ----------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("enc", ENCODER_NAMES)
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_decodes_to_intended_values(model: str, enc: str, case: str) -> None:
    q, e = encoded(case, enc)
    levels = MODELS[model](q.shape, q.bits, e.codec, e.params, e.streams)
    assert levels.dtype == np.int16
    assert levels.shape == q.shape
    np.testing.assert_array_equal(levels, e.decoded)


def _mutations(e: Encoded) -> list[tuple[str, dict[str, bytes], dict[str, Any]]]:
    """Hostile variants: truncated, extended, missing and extra streams; bad params."""
    out = []
    for name, data in e.streams.items():
        if data:
            out.append((f"{name}-truncated", {**e.streams, name: data[:-1]}, e.params))
            out.append((f"{name}-last-byte-ff", {**e.streams, name: data[:-1] + b"\xff"}, e.params))
        out.append((f"{name}-extended", {**e.streams, name: data + b"\x00"}, e.params))
        out.append((f"{name}-missing", {k: v for k, v in e.streams.items() if k != name}, e.params))
    out.append(("extra-stream", {**e.streams, "zzz": b"\x01"}, e.params))
    for key, value in e.params.items():
        out.append((f"{key}-wrong-type", e.streams, {**e.params, key: "x"}))
        if type(value) is int:
            out.append((f"{key}-plus-one", e.streams, {**e.params, key: value + 1}))
            out.append((f"{key}-negative", e.streams, {**e.params, key: -1}))
        if isinstance(value, list) and value:
            out.append((f"{key}-short", e.streams, {**e.params, key: value[:-1]}))
        out.append((f"{key}-missing", e.streams, {k: v for k, v in e.params.items() if k != key}))
    return out


def outcome(
    fn: Decode, q: QuantTensor, codec: int, params: Mapping[str, Any], streams: Mapping[str, bytes]
) -> Any:
    """('ok', levels bytes, shape) or ('error', class name); other exceptions escape."""
    try:
        levels = fn(q.shape, q.bits, codec, params, streams)
    except (BadRecord, CorruptStream) as exc:
        return ("error", type(exc).__name__)
    return ("ok", np.asarray(levels).tobytes(), np.asarray(levels).shape)


@pytest.mark.parametrize("enc", ENCODER_NAMES)
@pytest.mark.parametrize("case", ["conv-int8-s90", "fc-int4-s50", "vec-int3-dense"])
def test_hostile_inputs_same_outcome(enc: str, case: str) -> None:
    """Every mutation is refused with the same error class by both models, or decodes the same."""
    q, e = encoded(case, enc)
    for label, streams, params in _mutations(e):
        ref = outcome(reference_decode, q, e.codec, params, streams)
        sim = outcome(datapath_decode, q, e.codec, params, streams)
        assert ref == sim, label


def test_unknown_codec_id() -> None:
    with pytest.raises(BadRecord):
        simulate_tensor((4,), 8, 99, {}, {}, CONFIG)


# --- hypothesis: random tensors and random damage ----------------------------------------------

shapes = st.one_of(
    st.tuples(st.integers(1, 300)),
    st.tuples(st.integers(1, 24), st.integers(1, 40)),
    st.tuples(st.integers(1, 8), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3)),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    enc=st.sampled_from(ENCODER_NAMES),
    shape=shapes,
    bits=st.integers(2, 8),
    sparsity=st.sampled_from([0.0, 0.3, 0.7, 0.9, 0.97]),
    seed=st.integers(0, 2**16),
)
def test_random_tensors_equal(
    enc: str, shape: tuple[int, ...], bits: int, sparsity: float, seed: int
) -> None:
    if enc not in ENCODERS:
        return
    fn, options = ENCODERS[enc]
    q = make_q(shape, bits, sparsity, seed)
    e = fn(q, options)
    ref = reference_decode(q.shape, bits, e.codec, e.params, e.streams)
    sim, counters = simulate_tensor(q.shape, bits, e.codec, e.params, e.streams, CONFIG)
    np.testing.assert_array_equal(sim, ref)
    np.testing.assert_array_equal(sim, e.decoded)
    check_counters(counters, e.streams, CONFIG)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    enc=st.sampled_from(ENCODER_NAMES),
    case=st.sampled_from(["conv-int8-s90", "fc-int8-s80", "int2-s70"]),
    data=st.data(),
)
def test_random_damage_same_outcome(enc: str, case: str, data: st.DataObject) -> None:
    if enc not in ENCODERS:
        return
    q, e = encoded(case, enc)
    names = [k for k, v in e.streams.items() if v]
    if not names:
        return
    name = data.draw(st.sampled_from(names))
    buf = bytearray(e.streams[name])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] ^= 1 << data.draw(st.integers(0, 7))
    streams = {**e.streams, name: bytes(buf)}
    assert outcome(reference_decode, q, e.codec, e.params, streams) == outcome(
        datapath_decode, q, e.codec, e.params, streams
    )


# --- counters ---------------------------------------------------------------------------------


def check_counters(c: Any, streams: Mapping[str, bytes], config: DatapathConfig) -> None:
    width = config.bus_bytes
    fetched = [s for s in streams.values()]
    assert c.stream_bytes <= sum(len(s) for s in fetched)
    assert c.dram_bytes == c.dram_beats * width
    assert c.dram_bytes >= c.stream_bytes
    assert c.dram_bytes - c.stream_bytes < width * max(1, len(fetched))
    assert c.cycles >= c.dram_bytes / width
    assert c.cycles >= c.write_cycles == -(-c.n_weights // config.dim)
    assert c.stall_cycles == c.cycles - c.write_cycles >= 0
    assert c.uncompressed_bytes == c.n_weights
    assert c.patch_fifo_peak <= config.patch_fifo_depth


@pytest.mark.parametrize("enc", ENCODER_NAMES)
def test_counters_sanity(enc: str) -> None:
    q, e = encoded("conv-int8-s90", enc)
    _, c = simulate_tensor(
        q.shape, q.bits, e.codec, e.params, e.streams, CONFIG, scale_bytes=4 * q.shape[0]
    )
    check_counters(c, {**e.streams, "scales": bytes(4 * q.shape[0])}, CONFIG)
    # every stream of these codecs is read, each rounded up to whole bus words
    expected = (
        sum(-(-len(s) // 16) * 16 for s in e.streams.values()) + -(-4 * q.shape[0] // 16) * 16
    )
    assert c.dram_bytes == expected
    assert c.stream_bytes == sum(len(s) for s in e.streams.values()) + 4 * q.shape[0]
    assert c.bound in c.unit_cycles
    json.dumps(c.to_json())


def test_raw_dense_int8_is_write_and_bus_bound() -> None:
    """Raw int8 moves 16 weights per beat and writes one 16-weight row per cycle."""
    fn, options = encoder("raw")
    q = make_q((64, 64), 8, 0.0, 1)
    _, c = simulate_tensor(
        q.shape, 8, CodecId.RAW, *(lambda e: (e.params, e.streams))(fn(q, options)), CONFIG
    )
    assert c.dram_beats == 64 * 64 // 16
    assert c.cycles == 64 * 64 // 16 == c.uncompressed_cycles
    assert c.stall_cycles == 0


def test_dram_latency_limits_bandwidth() -> None:
    fn, options = encoder("raw")
    q = make_q((64, 64), 8, 0.0, 1)
    e = fn(q, options)
    slow = get_preset("gemmini-dram-latency")
    _, c = simulate_tensor(q.shape, 8, e.codec, e.params, e.streams, slow)
    # 16 requests x 64 B in flight over 128 cycles: 8 B per cycle, half the bus
    assert c.cycles == 128 + 2 * 64 * 64 // 16


def test_xor_counts_patches_and_stalls() -> None:
    q, e = encoded("fc-int8-s80", "xor-all")
    if e.codec != CodecId.XOR:
        pytest.skip("tensor fell back to raw")
    _, c = simulate_tensor(q.shape, q.bits, e.codec, e.params, e.streams, CONFIG)
    assert c.patch_flips == sum(e.params["patches"])
    _, strict = simulate_tensor(
        q.shape, q.bits, e.codec, e.params, e.streams, DatapathConfig(patch_fifo_depth=0)
    )
    assert strict.patch_stall_cycles >= c.patch_stall_cycles
    assert strict.patch_fifo_peak == 0


# --- the patch FIFO and the lane parser against naive loops -----------------------------------


def naive_queue(arrivals: np.ndarray, service: np.ndarray, depth: int, per: int) -> tuple[int, int]:
    o, stalls, peak = 0, 0, 0
    for a, s in zip(arrivals.tolist(), service.tolist(), strict=True):
        peak = max(peak, min(depth, o + a))
        left = o + a - s
        if left > depth:
            stalls += -(-(left - depth) // per)
        o = min(depth, max(0, left))
    return stalls, peak


@settings(max_examples=60, deadline=None)
@given(
    arrivals=st.lists(st.integers(0, 12), min_size=1, max_size=300),
    periods=st.sampled_from([(4,), (8,), (1, 8), (2, 16, 16)]),
    per=st.integers(1, 3),
    depth=st.integers(0, 20),
)
def test_patch_queue_matches_loop(
    arrivals: list[int], periods: tuple[int, ...], per: int, depth: int
) -> None:
    a = np.array(arrivals, dtype=np.int64)
    period = np.resize(np.array(periods, dtype=np.int64), a.size)
    t = patch_unit.timing(a, period, per, depth, 1)
    stalls, peak = naive_queue(a, per * period, depth, per)
    assert (t.stall_cycles, t.fifo_peak) == (stalls, peak)
    if depth == 0:
        assert t.stall_cycles == int(np.maximum(-(-a // per) - period, 0).sum())


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=2, max_size=12),
    seed=st.integers(0, 2**16),
    nbytes=st.integers(1, 300),
    segment=st.sampled_from([8, 16, 64, 512]),
)
def test_lane_parser_matches_sequential(
    lengths: list[int], seed: int, nbytes: int, segment: int
) -> None:
    """A random (state-free) length table: the lanes find the same chain as a sequential walk."""
    rng = np.random.default_rng(seed)
    table = rng.choice(np.array(lengths, dtype=np.int64), size=1 << 6)
    data = rng.integers(0, 256, nbytes, dtype=np.uint8)
    buf = np.zeros(nbytes + 32, dtype=np.uint8)
    buf[:nbytes] = data
    from xorc import bits as bitio

    win = bitio.byte_windows(buf)
    nbits = 8 * nbytes
    pos, _, end, _ = lane_parser.parse(win, table, 6, nbits, segment=segment)
    expected, p = [], 0
    while p < nbits:
        expected.append(p)
        p += int(table[int(bitio.peek_fields(win, np.array([p]), 6)[0])])
    assert pos.tolist() == expected
    assert end == p


# --- containers ---------------------------------------------------------------------------------


def make_container(
    items: list[tuple[str, QuantTensor, Encoded]], fmap: dict | None = None
) -> Container:
    streams = [
        [("scales", q.scales.astype("<f4").tobytes()), *e.streams.items()] for _, q, e in items
    ]
    payload, refs = layout_payload(streams)
    records = tuple(
        TensorRecord(
            name=name,
            shape=q.shape,
            dtype="float32",
            bits=q.bits,
            axis=q.axis,
            codec=int(e.codec),
            codec_name=CodecId(e.codec).name.lower(),
            policy="raw",
            params=e.params,
            streams=r,
            n_weights=int(q.values.size),
            n_nonzero=int(np.count_nonzero(e.decoded)),
            digest=levels_digest(e.decoded),
            stats={},
        )
        for (name, q, e), r in zip(items, refs, strict=True)
    )
    meta = {
        "format": "xorc",
        "tool": "xorc",
        "tool_version": "0",
        "source_sha256": "0" * 64,
        "options": {},
    }
    return Container(meta, records, b"", payload, fmap)


def _blob() -> Container:
    items = []
    for enc in ENCODER_NAMES:
        if enc in ENCODERS:
            q, e = encoded("fc-int8-s80", enc)
            items.append((f"{enc}.weight", q, e))
    fmap = {
        "n_inputs": 3,  # bit counts are summed over the calibration inputs (xorc.fmap)
        "layers": [
            {"name": "relu1", "scale": 0.1, "bits": 8, "method": "paper", "ratio": 2.5,
             "raw_bits": 3 * 8 * 4096, "compressed_bits": 3 * 8 * 4096 // 2.5},
        ],
    }  # fmt: skip
    return make_container(items, fmap)


def test_simulate_blob() -> None:
    container = read_bytes(format_v1.write(_blob()))
    macs = {t.name: 1000 * t.n_weights for t in container.tensors[:2]}
    result = simulate(container, CONFIG, macs, keep_levels=True)
    assert result.bit_exact
    for t, rec in zip(result.tensors, container.tensors, strict=True):
        ref = reference_decode(
            rec.shape, rec.bits, rec.codec, rec.params, container.codec_streams(rec)
        )
        np.testing.assert_array_equal(result.levels[t.name], ref)
    doc = result.to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {"config", "tensors", "totals", "fmap"}
    assert doc["tensors"][0]["layer"]["compute_cycles"] == -(
        -macs[doc["tensors"][0]["name"]] // 256
    )
    assert doc["tensors"][-1]["layer"]["compute_cycles"] is None
    tot = doc["totals"]
    assert tot["dram_bytes"] == sum(t["counters"]["dram_bytes"] for t in doc["tensors"])
    assert tot["fmap_raw_dram_bytes"] == 2 * 4096
    text = render_text(result)
    assert "total" in text and "feature" in text
    assert simulate(container, CONFIG).to_json() == simulate(container, CONFIG).to_json()


def test_simulate_names_the_tensor() -> None:
    container = _blob()
    bad = container.tensors[0]
    broken = TensorRecord(
        **{**bad.__dict__, "params": {**bad.params, "zzz": 1} if bad.codec == 2 else {}}
    )
    with pytest.raises(BadRecord, match=bad.name):
        simulate(Container(container.meta, (broken,), b"", container.payload), CONFIG)


def test_area_estimate() -> None:
    est = area_estimate(_blob(), CONFIG)
    doc = est.to_json()
    assert doc["mac_array_ge"] == pytest.approx(256 * 842 / 1.44, rel=1e-3)
    if "xor-all" in ENCODERS:
        assert doc["units"]["xor_network"]["xor2"] > 0
    assert "total" in render_area(est)
    json.dumps(doc)


# --- configuration ----------------------------------------------------------------------------


def test_presets() -> None:
    base = PRESETS["gemmini-default"]
    assert (base.dim, base.sp_kib, base.sp_banks, base.sp_row_bits, base.acc_kib) == (
        16,
        256,
        4,
        128,
        64,
    )
    assert (base.dma_bus_bits, base.dma_max_bytes, base.bus_bytes, base.sp_rows_per_bank) == (
        128,
        64,
        16,
        4096,
    )
    assert get_preset("gemmini-default") is base
    with pytest.raises(ConfigError, match="nope"):
        get_preset("nope")
    with pytest.raises(AttributeError):
        base.dim = 8  # type: ignore[misc]


def test_toml_overrides(tmp_path: Path) -> None:
    path = tmp_path / "dp.toml"
    path.write_text('preset = "gemmini-2x-decoder"\npatch_fifo_depth = 3\n')
    cfg = load_config(path)
    assert (cfg.patch_fifo_depth, cfg.xor_arrays) == (3, 2)
    assert load_config(path, "gemmini-default").xor_arrays == 1
    assert load_config(None).name == "gemmini-default"
    for text, word in [
        ("bogus_key = 1\n", "bogus_key"),
        ("dim = 'x'\n", "dim"),
        ("dim = 0\n", "dim"),
        ("patch_per_cycle = true\n", "patch_per_cycle"),
        ("dma_bus_bits = 100\n", "dma_bus_bits"),
        ("not toml [", "TOML"),
        ('preset = "nope"\n', "nope"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=word):
            load_config(path)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")


# --- layering -----------------------------------------------------------------------------------


def test_datapath_imports_no_encoder() -> None:
    code = (
        "import sys, xorc.datapath, xorc.datapath.sim, xorc.datapath.area\n"
        "bad = [m for m in sys.modules if m.startswith('xorc.codecs.') and "
        "m.rsplit('.', 1)[-1] in ('encode', 'solve', 'kmeans', 'huffman_build', 'core_encode')]\n"
        "bad += [m for m in sys.modules if m in ('onnx', 'onnxruntime')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


def test_datapath_does_not_call_reference_decoders() -> None:
    code = (
        "import sys, xorc.datapath\n"
        "print(','.join(m for m in sys.modules if m.startswith('xorc.codecs.') and "
        "m.rsplit('.', 1)[-1] in ('decode', 'core_decode', 'huffman', 'patches', 'mask')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


# --- sample models ------------------------------------------------------------------------------


SLOW_ONLY = pytest.mark.skipif(
    not os.environ.get("XORC_SLOW"), reason="about a minute of XOR encoding; set XORC_SLOW=1"
)


def _sample_tensors(name: str) -> list[QuantTensor]:
    """Weights (ndim >= 2) of a bundled model, int8 per output channel; zeros stay pruned."""
    import onnx
    from conftest import sample
    from onnx import numpy_helper

    from xorc.quantize import quantize

    model = onnx.load(str(sample(name)))
    out = []
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            levels, scales = quantize(w, 8, 0)
            out.append(QuantTensor(init.name, levels, 8, scales, 0))
    return out


@pytest.mark.parametrize(
    "model",
    [
        "digits_mlp.onnx",
        "fashion_cnn_sparse.onnx",
        pytest.param("efficientnet_lite0.onnx", marks=[pytest.mark.slow, SLOW_ONLY]),
    ],
)
@pytest.mark.parametrize("enc", ENCODER_NAMES)
def test_sample_models_bit_exact(model: str, enc: str) -> None:
    fn, options = encoder(enc)
    for q in _sample_tensors(model):
        e = fn(q, options)
        sim, _ = simulate_tensor(q.shape, q.bits, e.codec, e.params, e.streams, CONFIG)
        np.testing.assert_array_equal(
            sim, reference_decode(q.shape, q.bits, e.codec, e.params, e.streams)
        )
        np.testing.assert_array_equal(sim, e.decoded)
