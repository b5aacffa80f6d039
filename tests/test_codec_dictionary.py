"""Codec `dictionary` (docs/codecs/dictionary.md): round trips, golden vectors, hostile input."""

from __future__ import annotations

import heapq
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.dictionary import huffman
from xorc.codecs.dictionary.decode import decode
from xorc.codecs.dictionary.encode import (
    Prepared,
    candidates,
    encode,
    encode_prepared,
    tolerance_candidates,
)
from xorc.codecs.dictionary.huffman_build import code_lengths, encode_symbols
from xorc.codecs.dictionary.kmeans import LevelKMeans
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import Encoded, QuantTensor

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "dictionary" / "cases.json"


def tensor(values: np.ndarray, bits: int = 8, axis: int | None = 0, importance=None) -> QuantTensor:
    v = np.asarray(values, dtype=np.int16)
    return QuantTensor(
        "t", v, bits, np.ones(1, dtype=np.float32), axis if v.ndim else None, importance
    )


def levels(rng: np.random.Generator, shape, bits: int = 8, sparsity: float = 0.0, spread=8.0):
    top = (1 << (bits - 1)) - 1
    v = np.clip(np.rint(rng.laplace(0, spread, size=shape)), -top, top)
    v[rng.random(shape) < sparsity] = 0
    return v.astype(np.int16)


def roundtrip(e: Encoded, q: QuantTensor) -> np.ndarray:
    out = decode(q.shape, q.bits, e.params, e.streams)
    assert out.dtype == np.int16 and out.shape == q.shape
    np.testing.assert_array_equal(out, e.decoded)
    np.testing.assert_array_equal(out != 0, q.values != 0)  # the mask is kept exactly
    return out


def distinct_per_group(q: QuantTensor, group: int | None) -> int:
    v = np.moveaxis(q.values, q.axis or 0, 0) if q.values.ndim else q.values.reshape(1)
    rows = v.shape[0]
    g = group or rows
    return max(
        (np.unique(v[i : i + g][v[i : i + g] != 0]).size for i in range(0, rows, g)), default=0
    )


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    bits=st.integers(2, 8),
    sparsity=st.sampled_from([0.0, 0.3, 0.9]),
    k=st.one_of(st.none(), st.integers(1, 256)),
    group=st.one_of(st.none(), st.integers(1, 4)),
    weighted=st.booleans(),
)
def test_roundtrip_property(seed, shape, bits, sparsity, k, group, weighted):
    rng = np.random.default_rng(seed)
    v = levels(rng, shape, bits, sparsity)
    imp = rng.random(shape).astype(np.float32) if weighted else None
    q = tensor(v, bits, axis=int(rng.integers(len(shape))), importance=imp)
    e = encode(q, DictionaryOptions(dict_size=k, dict_group=group))
    assert e.codec == CodecId.DICTIONARY
    out = roundtrip(e, q)
    if k is not None:
        assert e.params["k"] <= k
        if distinct_per_group(q, group) <= k - 1:
            np.testing.assert_array_equal(out, v)  # few enough levels: lossless
    json.dumps(e.params)
    json.dumps(e.stats)


@pytest.mark.parametrize("k", [*range(1, 18), 31, 32, 33, 64, 100, 128, 255, 256])
def test_every_dictionary_size(k):
    q = tensor(levels(np.random.default_rng(k), (12, 40), spread=30.0, sparsity=0.05))
    e = encode(q, DictionaryOptions(dict_size=k))
    out = roundtrip(e, q)
    assert e.params["k"] <= k
    assert e.stats["index_bits"] == (e.params["k"] - 1).bit_length()
    assert np.unique(out[out != 0]).size <= k
    if np.unique(q.values).size <= k:
        np.testing.assert_array_equal(out, q.values)


@pytest.mark.parametrize("zeros", ["entry", "mask", "runs"])
@pytest.mark.parametrize("group", [None, 1, 3])
def test_layouts_and_groups(zeros, group):
    q = tensor(levels(np.random.default_rng(7), (10, 3, 5), sparsity=0.6, spread=20.0))
    for k in (2, 8, None):
        e = encode_prepared(Prepared(q, DictionaryOptions(dict_group=group)), k, zeros=zeros)
        roundtrip(e, q)
        assert e.params["zeros"] == zeros
        assert e.stats["groups"] == -(-10 // (group or 10))


def test_per_group_codebooks_follow_the_axis():
    v = np.stack([np.full((4, 6), 5), np.full((4, 6), -40), np.full((4, 6), 90)], axis=1)
    q = tensor(v, axis=1)
    e = encode(q, DictionaryOptions(dict_size=1, dict_group=1))
    np.testing.assert_array_equal(roundtrip(e, q), v)  # one entry per column is enough
    assert e.params["axis"] == 1 and e.params["group"] == 1


def test_none_layout_without_zeros():
    q = tensor(levels(np.random.default_rng(1), (6, 7), spread=2.0) | 1)
    e = encode(q, DictionaryOptions(dict_size=4))
    assert e.params["zeros"] == "none"
    roundtrip(e, q)


def test_all_zero_tensor():
    q = tensor(np.zeros((5, 4)))
    e = encode(q, DictionaryOptions(dict_size=16))
    assert e.params["k"] == 1 and all(len(s) == 0 for s in e.streams.values())
    np.testing.assert_array_equal(roundtrip(e, q), 0)


@pytest.mark.parametrize("value", [0, 1, -127])
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_single_element(shape, value):
    q = tensor(np.full(shape, value))
    e = encode(q, DictionaryOptions())
    np.testing.assert_array_equal(roundtrip(e, q), value)


def test_empty_tensor():
    q = tensor(np.zeros((0, 3)))
    roundtrip(encode(q, DictionaryOptions()), q)


def test_huffman_is_used_when_it_pays():
    q = tensor(levels(np.random.default_rng(3), (64, 64), spread=3.0))
    e = encode(q, DictionaryOptions(dict_size=32))
    assert e.params["huffman"] and e.stats["entropy_coded"]
    assert len(e.streams["indices"]) < 64 * 64 * 5 / 8
    roundtrip(e, q)


def test_deterministic():
    q = tensor(levels(np.random.default_rng(5), (20, 30), sparsity=0.4))
    for opts in (DictionaryOptions(), DictionaryOptions(dict_size=8, dict_group=3)):
        a, b = encode(q, opts), encode(q, opts)
        assert a.params == b.params and a.streams == b.streams


def test_candidates_equal_encode():
    q = tensor(levels(np.random.default_rng(9), (16, 50), spread=20.0))
    found = candidates(q, DictionaryOptions(dict_group=4), [4, 16, None, 64])
    for k, e in found.items():
        direct = encode(q, DictionaryOptions(dict_size=k, dict_group=4))
        assert e.params == direct.params and e.streams == direct.streams
    sizes = [found[k].stats["bits_per_weight"] for k in (4, 16, 64)]
    assert sizes == sorted(sizes)
    errors = [found[k].stats["mean_abs_level_error"] for k in (4, 16, 64)]
    assert errors == sorted(errors, reverse=True)


def test_tolerance_candidates():
    q = tensor(levels(np.random.default_rng(11), (32, 64), spread=20.0))
    found = tolerance_candidates(q, DictionaryOptions(), [1e-4, 1e-3, 1e-2])
    for e in found.values():
        roundtrip(e, q)
    bits = [found[t].stats["bits_per_weight"] for t in (1e-4, 1e-3, 1e-2)]
    assert bits == sorted(bits, reverse=True)


def correlated_layer(rng: np.random.Generator, rows: int, cols: int, sparsity: float = 0.0):
    """A layer's unrounded levels and the second moment of inputs with correlated features."""
    mix = rng.standard_normal((cols, cols)) / np.sqrt(cols)
    x = rng.standard_normal((4 * cols, cols)) @ (np.eye(cols) + 2 * mix)
    moment = x.T @ x / len(x)
    exact = np.clip(rng.laplace(0, 12.0, size=(rows, cols)), -127, 127)
    exact[rng.random(exact.shape) < sparsity] = 0.0
    return exact, moment


def output_error(exact: np.ndarray, levels: np.ndarray, moment: np.ndarray) -> float:
    d = exact - levels
    return float(np.einsum("ij,jk,ik->", d, moment, d))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 40),
    cols=st.integers(1, 60),
    k=st.integers(2, 32),
    group=st.none() | st.integers(1, 8),
    sparsity=st.sampled_from([0.0, 0.5]),
)
@example(seed=0, rows=7, cols=1, k=2, group=1, sparsity=0.5)  # rows with empty codebooks last
def test_compensated_roundtrip_keeps_codebooks_and_mask(seed, rows, cols, k, group, sparsity):
    """With an input moment the encoder compensates errors (section 7.3): still exact round
    trips, the mask kept, every level an entry of its own group's codebook."""
    rng = np.random.default_rng(seed)
    exact, moment = correlated_layer(rng, rows, cols, sparsity)
    values = np.rint(exact).astype(np.int16)
    exact[values == 0] = 0.0
    q = QuantTensor("t", values, 8, np.ones(rows, np.float32), 0, None, exact, moment)
    e = encode(q, DictionaryOptions(dict_size=k, dict_group=group))
    assert e.stats["compensated"] is True
    out = roundtrip(e, q)
    g = group or rows
    for start in range(0, rows, g):
        block = out[start : start + g]
        assert len(np.unique(block[block != 0])) <= k


def test_compensation_lowers_the_output_error():
    """Against nearest-entry trimming with the same codebook size, on correlated inputs."""
    rng = np.random.default_rng(7)
    exact, moment = correlated_layer(rng, 64, 96, sparsity=0.3)
    values = np.rint(exact).astype(np.int16)
    exact[values == 0] = 0.0
    plain = QuantTensor("t", values, 8, np.ones(64, np.float32), 0)
    comp = QuantTensor("t", values, 8, np.ones(64, np.float32), 0, None, exact, moment)
    for k in (4, 8, 16):
        a = encode(plain, DictionaryOptions(dict_size=k))
        b = encode(comp, DictionaryOptions(dict_size=k))
        assert not a.stats["compensated"] and b.stats["compensated"]
        assert output_error(exact, b.decoded, moment) < 0.8 * output_error(exact, a.decoded, moment)


@pytest.mark.parametrize("damage", ["shape", "nan", "indefinite"])
def test_unusable_moment_is_ignored(damage):
    """A moment of the wrong shape, with NaN, or not positive definite: plain trimming."""
    rng = np.random.default_rng(3)
    exact, moment = correlated_layer(rng, 8, 12)
    values = np.rint(exact).astype(np.int16)
    if damage == "shape":
        moment = moment[:5, :5]
    elif damage == "nan":
        moment[2, 3] = np.nan
    else:
        moment = -10 * np.eye(12) - np.ones((12, 12))
    q = QuantTensor("t", values, 8, np.ones(8, np.float32), 0, None, exact, moment)
    e = encode(q, DictionaryOptions(dict_size=8))
    assert e.stats["compensated"] is False
    roundtrip(e, q)


def test_importance_keeps_important_levels():
    v = np.array([[1, 2, 3, 50, 51, 52, 100, 120]], dtype=np.int16)
    imp = np.array([[1, 1, 1, 1, 1, 1, 1, 1e6]], dtype=np.float32)
    e = encode(tensor(v, importance=imp), DictionaryOptions(dict_size=3))
    assert e.decoded[0, -1] == 120


# --- building blocks --------------------------------------------------------------------------


def test_kmeans_is_optimal_against_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(20):
        x = np.unique(rng.integers(-7, 8, size=7))
        x = x[x != 0]
        w = rng.random(x.size) + 0.05
        km = LevelKMeans(x, w)
        for k in range(1, x.size):
            best = min(
                (w * np.min((x[:, None] - np.array(c)[None, :]) ** 2, axis=1)).sum()
                for c in itertools.combinations([c for c in range(-7, 8) if c], k)
            )
            cents, labels = km.solve(k)
            assert 0 not in cents
            assert (w * (x - cents[labels]) ** 2).sum() == pytest.approx(best)
            assert km.sse(k) == pytest.approx(best)


def _huffman_cost(freqs: np.ndarray) -> int:
    heap = [int(f) for f in freqs if f > 0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def test_code_lengths_optimal_and_bounded():
    rng = np.random.default_rng(4)
    for _ in range(50):
        f = rng.integers(0, 1000, size=int(rng.integers(2, 60))) * (rng.random(1)[0] < 2)
        if np.count_nonzero(f) < 2:
            continue
        lengths = code_lengths(f)
        huffman.check_lengths(lengths)
        assert (f * lengths).sum() == _huffman_cost(f)
    skewed = np.maximum((1e15 * 0.6 ** np.arange(200)).astype(np.int64), 1)
    lengths = code_lengths(skewed)
    assert lengths.max() == huffman.MAX_LEN
    huffman.check_lengths(lengths)


def test_huffman_decode_matches_symbols():
    rng = np.random.default_rng(6)
    for k in (2, 3, 17, 256):
        f = rng.integers(1, 50, size=k) ** 3
        lengths = code_lengths(f)
        sym = rng.choice(k, size=3000, p=f / f.sum())
        data, nbits = encode_symbols(sym, lengths)
        out, used = huffman.decode(data, sym.size, lengths)
        assert used == nbits
        np.testing.assert_array_equal(out, sym)


def test_canonical_codes_are_deflate_order():
    lengths = np.array([3, 3, 3, 3, 3, 2, 4, 4])  # RFC 1951 section 3.2.2 example
    codes = huffman.canonical_codes(lengths)
    assert codes.tolist() == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def test_bit_windows():
    data = bytes([0b10110010, 0b01111000])
    assert bitio.bit_windows(data, 4, [0, 3, 12]).tolist() == [0b1011, 0b1001, 0b1000]
    assert bitio.bit_windows(data, 3).tolist()[:4] == [0b101, 0b011, 0b110, 0b100]


# --- golden vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", json.loads(GOLDEN.read_text()), ids=lambda c: c["name"])
def test_golden(case):
    streams = {name: bytes.fromhex(data) for name, data in case["streams"].items()}
    out = decode(tuple(case["shape"]), case["bits"], case["params"], streams)
    assert out.ravel().tolist() == case["expected"]


# --- hostile input ----------------------------------------------------------------------------


def sample(
    zeros: str = "entry", huff: bool | None = None, k: int = 16
) -> tuple[QuantTensor, Encoded]:
    spread, sparsity = (2.0, 0.5) if huff or huff is None else (40.0, 0.02)
    q = tensor(levels(np.random.default_rng(8), (16, 40), sparsity=sparsity, spread=spread))
    e = encode_prepared(Prepared(q, DictionaryOptions(dict_group=4)), k, zeros=zeros)
    if huff is not None:
        assert e.params["huffman"] == huff
    return q, e


VARIANTS = [("entry", False), ("entry", True), ("mask", None), ("runs", None)]


@pytest.mark.parametrize(("zeros", "huff"), VARIANTS)
def test_truncated_or_oversized_streams(zeros, huff):
    q, e = sample(zeros, huff)
    for name, data in e.streams.items():
        if data:
            with pytest.raises(CorruptStream):
                decode(q.shape, q.bits, e.params, {**e.streams, name: data[:-1]})
        with pytest.raises(CorruptStream):
            decode(q.shape, q.bits, e.params, {**e.streams, name: data + b"\x00"})
        missing = {key: value for key, value in e.streams.items() if key != name}
        with pytest.raises(CorruptStream):
            decode(q.shape, q.bits, e.params, missing)
    with pytest.raises(CorruptStream):
        decode(q.shape, q.bits, e.params, {**e.streams, "extra": b""})


@pytest.mark.parametrize(("zeros", "huff"), VARIANTS)
def test_random_corruption_never_leaks_other_errors(zeros, huff):
    q, e = sample(zeros, huff)
    rng = np.random.default_rng(12)
    for _ in range(40):
        name = str(rng.choice(sorted(e.streams)))
        data = bytearray(e.streams[name])
        if not data:
            continue
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        try:
            out = decode(q.shape, q.bits, e.params, {**e.streams, name: bytes(data)})
        except CorruptStream:
            continue
        assert out.shape == q.shape and out.dtype == np.int16


def test_nonzero_pad_bits():
    q = tensor(np.array([[3, -1, 0], [7, 3, -5]]), bits=4)
    e = encode(q, DictionaryOptions(dict_size=4))  # the hand-checked golden case: d9 30 / e3 d0
    assert e.streams == {"codebook": bytes([0xD9, 0x30]), "indices": bytes([0xE3, 0xD0])}
    for name, bad in (("codebook", bytes([0xD9, 0x31])), ("indices", bytes([0xE3, 0xD1]))):
        with pytest.raises(CorruptStream, match="pad"):
            decode(q.shape, 4, e.params, {**e.streams, name: bad})


def test_zero_codebook_entry_and_index_out_of_range():
    q = tensor(np.array([[3, -1, 0], [7, 3, -5]]), bits=4)
    e = encode(q, DictionaryOptions(dict_size=4))  # codebook d9 30: -5, -1, 3
    for bad in (bytes([0x09, 0x30]), bytes([0x89, 0x30])):  # zero, negative zero
        with pytest.raises(CorruptStream, match="zero entry"):
            decode(q.shape, 4, e.params, {**e.streams, "codebook": bad})
    params = {**e.params, "k": 3, "zeros": "mask"}  # 2-bit indices, K = 3: index 3 invalid
    streams = {
        "codebook": bytes([0xD9, 0x30]),
        "mask": bytes([0xFC]),
        "indices": bytes([0xFF, 0xF0]),
    }
    with pytest.raises(CorruptStream, match="index"):
        decode((2, 3), 4, params, streams)


def test_bad_code_lengths():
    q, e = sample("entry", True)
    k = e.params["k"]
    incomplete = bitio.pack_fields(np.full(k, 15), 4)[0]
    single_long = bitio.pack_fields(np.array([2] + [0] * (k - 1)), 4)[0]
    nothing = bitio.pack_fields(np.zeros(k, dtype=np.int64), 4)[0]
    for bad in (incomplete, single_long, nothing):
        with pytest.raises(CorruptStream, match="code_lengths"):
            decode(q.shape, q.bits, e.params, {**e.streams, "code_lengths": bad})


def test_single_symbol_huffman_pattern_without_code():
    lengths = np.array([1, 0])
    with pytest.raises(CorruptStream, match="no code"):
        huffman.decode(bytes([0b01000000]), 3, lengths)


def test_runs_beyond_tensor():
    q, e = sample("runs")
    with pytest.raises(CorruptStream):
        decode(q.shape, q.bits, {**e.params, "nonzero": q.values.size}, e.streams)
    big = bitio.pack_bits(bitio.rice_encode(np.array([10_000], dtype=np.uint64), 0))
    params = {**e.params, "nonzero": 1}
    with pytest.raises(CorruptStream):
        decode(q.shape, q.bits, params, {**e.streams, "runs": big})


@pytest.mark.parametrize(
    "change",
    [
        {"k": 0},
        {"k": 257},
        {"k": True},
        {"group": 0},
        {"group": 17},
        {"axis": 2},
        {"zeros": "rle"},
        {"huffman": 1},
        {"extra": 1},
        {"nonzero": 3},
    ],
)
def test_bad_params(change):
    q, e = sample("entry", False)
    with pytest.raises(BadRecord):
        decode(q.shape, q.bits, {**e.params, **change}, e.streams)


def test_missing_param_and_huffman_with_k1():
    q, e = sample("entry", False)
    params = dict(e.params)
    del params["group"]
    with pytest.raises(BadRecord):
        decode(q.shape, q.bits, params, e.streams)
    with pytest.raises(BadRecord):
        decode((2,), 8, {"k": 1, "axis": 0, "group": 2, "zeros": "entry", "huffman": True}, {})
    with pytest.raises(BadRecord):
        decode((2,), 9, {"k": 1, "axis": 0, "group": 2, "zeros": "entry", "huffman": False}, {})


# --- layering ---------------------------------------------------------------------------------


def test_decoder_does_not_import_encoder():
    code = (
        "import sys, xorc.codecs.dictionary.decode\n"
        "bad = [m for m in ('encode', 'kmeans', 'huffman_build')\n"
        "       if 'xorc.codecs.dictionary.' + m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == ""
