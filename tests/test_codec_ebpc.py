"""Codec `ebpc` (docs/codecs/ebpc.md): RTL conformance vectors, an independent literal reference
encoder, round-trips, the parallel parser under stress, hostile input, the weight adapter."""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xorc.codecs.ebpc as ebpc
import xorc.codecs.ebpc.bpc_parse as bpc_parse
import xorc.codecs.ebpc.parse_jit as parse_jit
import xorc.codecs.ebpc.znz_decode as znz_decode
from xorc.codecs import CodecId
from xorc.codecs.ebpc import EbpcStreams, decode, decode_many, encode, encode_transmissions
from xorc.codecs.ebpc.options import EbpcOptions
from xorc.errors import BadRecord, CorruptStream, UsageError
from xorc.tensor import QuantTensor

GOLDEN = Path(__file__).parent / "golden" / "ebpc"
ROOT = Path(__file__).resolve().parent.parent
FORMATS = [(8, 8), (16, 8), (16, 16)]
PARSERS = ["numpy", "compiled"]  # the speculative numpy parser; the numba walk (parse_jit)


@contextmanager
def use_parser(parser: str) -> Iterator[None]:
    """Decode with the named BPC parser inside the block (skips if numba is not installed)."""
    if parser == "compiled" and parse_jit._load() is None:
        pytest.skip("numba is not installed: no compiled parser")
    with parse_jit.using(parser):
        assert (parse_jit.compiled_walker() is not None) == (parser == "compiled")
        yield


# --- an independent, literal reference encoder (strings of '0'/'1', straight from the spec) ----


def ref_encode(values: list[int], w: int, n: int, swap: bool = False) -> tuple[str, str]:
    """ZNZ and BPC bit strings, one rule at a time, the slow and obvious way."""
    znz, run = [], 0
    for v in values:
        if v == 0:
            run += 1
            if run == 16:
                znz.append("0" + format(15, "04b"))
                run = 0
            continue
        if run:
            znz.append("0" + format(run - 1, "04b"))
            run = 0
        znz.append("1")
    if run:
        znz.append("0" + format(run - 1, "04b"))
    nz = [v for v in values if v != 0]
    nz += [0] * (-len(nz) % n)
    m, cb, pb = n - 1, (w - 1).bit_length(), (n - 1).bit_length()
    bpc = []
    for i in range(0, len(nz), n):
        blk = nz[i : i + n]
        bpc.append(format(blk[0] & ((1 << w) - 1), f"0{w}b"))
        d = [(blk[j + 1] - blk[j]) & ((1 << (w + 1)) - 1) for j in range(m)]
        planes = [sum(((d[j] >> b) & 1) << (m - 1 - j) for j in range(m)) for b in range(w + 1)]
        dbx = [planes[0]] + [planes[b] ^ planes[b - 1] for b in range(1, w + 1)]
        b = 0
        while b <= w:
            s = dbx[b]
            if s == 0:
                k = 1
                while b + k <= w and dbx[b + k] == 0:
                    k += 1
                if k == 1:
                    bpc.append("001" if swap else "01")
                else:
                    bpc.append(("01" if swap else "001") + format(k - 2, f"0{cb}b"))
                b += k
                continue
            ones = [j for j in range(m) if (s >> (m - 1 - j)) & 1]
            if s == (1 << m) - 1:
                bpc.append("00000")
            elif planes[b] == 0:
                bpc.append("00001")
            elif len(ones) == 2 and ones[1] == ones[0] + 1:
                bpc.append("00010" + format(ones[0], f"0{pb}b"))
            elif len(ones) == 1:
                bpc.append("00011" + format(ones[0], f"0{pb}b"))
            else:
                bpc.append("1" + format(s, f"0{m}b"))
            b += 1
    return "".join(znz), "".join(bpc)


def padded_hex(bits: str, w: int) -> str:
    if not bits:
        return ""
    bits += "0" * (-len(bits) % w)
    return int(bits, 2).to_bytes(len(bits) // 8, "big").hex()


def assert_matches_reference(values: list[int], w: int, n: int, swap: bool = False) -> None:
    znz, bpc = ref_encode(values, w, n, swap)
    e = encode(
        np.array(values, dtype=np.int64), w, n, allow_non_rtl_block=n > w, swap_zero_codes=swap
    )
    assert (e.znz_bitlen, e.bpc_bitlen) == (len(znz), len(bpc))
    assert e.znz.hex() == padded_hex(znz, w)
    assert e.bpc.hex() == padded_hex(bpc, w)
    np.testing.assert_array_equal(decode(e), values)


# --- conformance vectors ------------------------------------------------------------------------


def load_cases() -> list[tuple[int, int, dict]]:
    cases = []
    for path in sorted(GOLDEN.glob("ebpc_*_cases.json")):
        doc = json.loads(path.read_text())
        assert doc["max_zero_run"] == 16
        cases += [(doc["word_width"], doc["block_size"], c) for c in doc["cases"]]
    return cases


CASES = load_cases()


def test_vector_files_present() -> None:
    assert len(CASES) >= 24
    assert {(w, n) for w, n, _ in CASES} == set(FORMATS)


@pytest.mark.parametrize(
    ("w", "n", "case"), CASES, ids=[f"W{w}N{n}-{c['name']}" for w, n, c in CASES]
)
def test_vector_bit_exact(w: int, n: int, case: dict) -> None:
    values = np.array(case["input"], dtype=np.int64)
    e = encode(values, w, n)
    assert e.n_words == case["n_words"]
    assert e.znz_bitlen == case["znz_bitlen"] and e.bpc_bitlen == case["bpc_bitlen"]
    assert e.znz.hex() == case["znz_hex"] and e.bpc.hex() == case["bpc_hex"]
    assert len(e.znz) * 8 // w == case["znz_n_words"]
    assert len(e.bpc) * 8 // w == case["bpc_n_words"]
    assert hashlib.sha256(e.znz).hexdigest() == case["znz_sha256"]
    assert hashlib.sha256(e.bpc).hexdigest() == case["bpc_sha256"]
    assert e.rtl_compatible == (e.n_words > 0)
    if case["ratio_unpadded"] is not None:
        assert e.ratio == pytest.approx(case["ratio_unpadded"])
        assert e.padded_ratio == pytest.approx(case["ratio_word_padded"])


@pytest.mark.parametrize(
    ("w", "n", "case"), CASES, ids=[f"W{w}N{n}-{c['name']}" for w, n, c in CASES]
)
@pytest.mark.parametrize("parser", PARSERS)
def test_vector_decodes_from_its_bytes(w: int, n: int, case: dict, parser: str) -> None:
    record = EbpcStreams(
        w,
        n,
        case["n_words"],
        bytes.fromhex(case["znz_hex"]),
        bytes.fromhex(case["bpc_hex"]),
        case["znz_bitlen"],
        case["bpc_bitlen"],
    )
    with use_parser(parser):
        out = decode(record)
    assert out.dtype == (np.int8 if w == 8 else np.int16)
    np.testing.assert_array_equal(out, case["input"])


def test_reference_encoder_reproduces_the_vectors() -> None:
    for w, n, case in CASES:
        assert ref_encode(case["input"], w, n) == (case["znz_bits"], case["bpc_bits"])


def test_worked_example() -> None:
    e = encode([5])
    assert (e.znz.hex(), e.bpc.hex(), e.bpc_bitlen) == ("80", "0518423058", 37)


# --- cases from the note's conformance list, against the reference --------------------------------


def note_cases(w: int) -> list[list[int]]:
    top, low = (1 << (w - 1)) - 1, -(1 << (w - 1))
    rng = np.random.default_rng(w)
    cases: list[list[int]] = [[], [0], [5], [top], [low]]
    cases += [[0] * k for k in (1, 2, 15, 16, 17, 31, 32, 33, 48, 49, 4000)]
    cases += [[1] + [0] * k + [1] for k in (0, 1, 14, 15, 16, 17, 31, 32, 33)]
    cases += [[0] * 20 + [3, 4] + [0] * 40, [0] * 33 + [7]]
    cases += [list(range(1, k + 1)) for k in [*range(1, 10), *range(15, 26)]]
    cases += [[-1] * 64, [42] * 17, list(range(1, 65)), list(range(64, 0, -1))]
    cases += [list(range(low, top + 1))]
    cases += [[top, low] * 32, [low, top] * 9, [top, 0, low, 0, 0, top] * 5]
    cases += [[1, 2, 3, 4, 5, 6, 7, 8], [3, 2, 3, 2, 3, 2, 3, 2], [0, 9, 9, 9, 9, 9, 9, 9, 9]]
    cases += [[1, -1] * 8, [1, 3, 1, 3, 1, 3, 1, 3], [8, 4, 2, 1, 1, 2, 4, 8]]
    cases.append([int(v) for v in rng.integers(low, top + 1, 300)])
    walk = np.clip(np.cumsum(rng.integers(-3, 4, 300)), low, top)
    cases.append([int(v) for v in walk])
    relu = np.maximum(rng.normal(0, top / 4, 300), 0).astype(int)
    cases.append([int(v) for v in relu])
    return cases


@pytest.mark.parametrize(("w", "n"), FORMATS)
def test_note_conformance_list(w: int, n: int) -> None:
    for values in note_cases(w):
        assert_matches_reference(values, w, n)


@pytest.mark.parametrize(("w", "n"), FORMATS)
def test_random_inputs_match_reference(w: int, n: int) -> None:
    rng = np.random.default_rng(1000 + w + n)
    top = 1 << (w - 1)
    for trial in range(40):
        size = int(rng.integers(0, 200))
        kind = trial % 4
        if kind == 0:
            x = rng.integers(-top, top, size)
        elif kind == 1:
            x = np.maximum(rng.normal(0, top / 8, size), 0).astype(np.int64)
        elif kind == 2:
            x = np.clip(np.cumsum(rng.integers(-4, 5, size)), -top, top - 1)
        else:
            x = rng.integers(-top, top, size) * (rng.random(size) < 0.3)
        assert_matches_reference([int(v) for v in x], w, n)


def test_every_symbol_kind_is_exercised() -> None:
    _, bpc = ref_encode([1, 2, 3, 4, 5, 6, 7, 8] + [-1] * 8 + [1, 3] * 8 + [5, 0, 0, 5], 8, 8)
    seen = "".join(ref_encode(v, 8, 8)[1] for v in ([1, -1] * 4, [8, 4, 2, 1, 1, 2, 4, 8], [9] * 8))
    for code in ("00000", "00001", "00010", "00011", "001", "01"):
        assert code in bpc + seen


# --- non-RTL study variants ---------------------------------------------------------------------


def test_variants_are_labelled_and_round_trip() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, 500) * (rng.random(500) < 0.5)
    with pytest.raises(ValueError, match="not an RTL format"):
        encode(x, 8, 16)
    wide = encode(x, 8, 16, allow_non_rtl_block=True)
    swapped = encode(x, swap_zero_codes=True)
    assert not wide.rtl_compatible and not swapped.rtl_compatible
    assert encode(x).rtl_compatible
    np.testing.assert_array_equal(decode(wide), x)
    np.testing.assert_array_equal(decode(swapped), x)
    for values in ([1, 2, 3], [0] * 40 + [9, 9, 9], list(range(-20, 20))):
        assert_matches_reference(values, 8, 16)
        assert_matches_reference(values, 8, 8, swap=True)


# --- round trips --------------------------------------------------------------------------------


def values_strategy(w: int) -> st.SearchStrategy[list[int]]:
    top = 1 << (w - 1)
    small = st.integers(-3, 3)
    wide = st.integers(-top, top - 1)
    return st.lists(st.one_of(st.just(0), small, wide), max_size=300)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(("w", "n"), [*FORMATS, (8, 16)])
@given(data=st.data())
def test_round_trip(w: int, n: int, parser: str, data: st.DataObject) -> None:
    values = data.draw(values_strategy(w))
    swap = data.draw(st.booleans())
    e = encode(values, w, n, allow_non_rtl_block=n > w, swap_zero_codes=swap)
    with use_parser(parser):
        np.testing.assert_array_equal(decode(e), values)
    assert len(e.znz) == -(-e.znz_bitlen // w) * w // 8
    assert len(e.bpc) == -(-e.bpc_bitlen // w) * w // 8


@pytest.mark.parametrize("per_bit_windows", [True, False])
@pytest.mark.parametrize("segment", [64, 300, 4096])
@pytest.mark.parametrize(("w", "n"), FORMATS)
def test_parallel_parser_with_many_lanes(
    monkeypatch: pytest.MonkeyPatch, segment: int, w: int, n: int, per_bit_windows: bool
) -> None:
    """Tiny segments force lanes that start mid-symbol, guess wrong and resynchronise, across
    several streams decoded together; both ways of reading the windows (precomputed per bit
    for small buffers, peeked per step for large ones)."""
    monkeypatch.setattr(bpc_parse, "lane_segment_bits", lambda total: segment)
    monkeypatch.setattr(bpc_parse, "_SMALL_STREAM_BITS", 1 << 40 if per_bit_windows else 0)
    rng = np.random.default_rng(segment + w + n)
    top = 1 << (w - 1)
    inputs = [
        rng.integers(-top, top, 3000),
        np.maximum(rng.normal(0, top / 6, 5000), 0).astype(np.int64),
        np.zeros(700, dtype=np.int64),
        np.clip(np.cumsum(rng.integers(-2, 3, 4000)), -top, top - 1),
        np.full(999, -1),
        np.array([], dtype=np.int64),
        rng.integers(-top, top, 2500) * (rng.random(2500) < 0.2),
    ]
    records = [encode(x, w, n) for x in inputs]
    with use_parser("numpy"):
        decoded = decode_many(records)
    for x, y in zip(inputs, decoded, strict=True):
        np.testing.assert_array_equal(y, x)


def test_compiled_parser_matches_numpy_parser() -> None:
    """The numba walk records exactly the keys of the speculative parser, stream by stream,
    for several streams sharing one buffer."""
    if parse_jit._load() is None:
        pytest.skip("numba is not installed: no compiled parser")
    rng = np.random.default_rng(8)
    for w, n in FORMATS:
        top = 1 << (w - 1)
        inputs = [
            rng.integers(-top, top, 4000),
            np.maximum(rng.normal(0, top / 6, 9000), 0).astype(np.int64),
            np.full(333, 3),
        ]
        records = [encode(x, w, n) for x in inputs]
        offsets = np.cumsum([0] + [len(r.bpc) + 8 for r in records])
        buf = np.zeros(int(offsets[-1]) + 8192, dtype=np.uint8)
        for off, r in zip(offsets, records, strict=False):
            buf[off : off + len(r.bpc)] = np.frombuffer(r.bpc, dtype=np.uint8)
        starts = offsets[:-1].astype(np.int64) * 8
        ends = starts + np.array([r.bpc_bitlen for r in records])
        parsed = []
        for parser in PARSERS:
            with use_parser(parser):
                parsed.append(bpc_parse.parse_bpc(buf, starts, ends, w, n, False, 256))
        np.testing.assert_array_equal(parsed[0][0], parsed[1][0])
        np.testing.assert_array_equal(parsed[0][1], parsed[1][1])


def test_compiled_parser_regrows_its_key_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first key buffer that is too small (as for a stream of very short steps) is retried
    at the size that always suffices."""
    if parse_jit._load() is None:
        pytest.skip("numba is not installed: no compiled parser")
    monkeypatch.setattr(parse_jit, "_GUESS_BITS_PER_STEP", 10**9)
    x = np.maximum(np.random.default_rng(6).normal(0, 20, 4000), 0).astype(np.int64)
    with use_parser("compiled"):
        np.testing.assert_array_equal(decode(encode(x)), x)


def test_parser_falls_back_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """No numba (or XORC_JIT=0): the numpy parser decodes, with the same result."""
    x = np.maximum(np.random.default_rng(4).normal(0, 20, 5000), 0).astype(np.int64)
    e = encode(x)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    parse_jit._load.cache_clear()
    try:
        assert parse_jit.compiled_walker() is None
        np.testing.assert_array_equal(decode(e), x)
        with pytest.raises(ValueError, match="needs numba"), parse_jit.using("compiled"):
            pass
    finally:
        parse_jit._load.cache_clear()
    monkeypatch.setenv("XORC_JIT", "0")
    assert parse_jit.compiled_walker() is None
    with pytest.raises(ValueError, match="unknown BPC parser"), parse_jit.using("fast"):
        pass


def test_real_activation_like_maps() -> None:
    """Post-ReLU-like maps: smooth, sparse, in 0..95 (the paper's quantisation)."""
    rng = np.random.default_rng(3)
    field = np.cumsum(np.cumsum(rng.normal(0, 1, (16, 64, 64)), axis=1), axis=2)
    q = np.trunc(np.maximum(field, 0) / field.max() * 0.75 * 127).astype(np.int8)
    e = encode(q)
    np.testing.assert_array_equal(decode(e), q.ravel())
    assert e.ratio > 1.5


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="outside signed 8-bit"):
        encode([128])
    with pytest.raises(ValueError, match="integers"):
        encode(np.array([1.5]))
    with pytest.raises(ValueError, match="word width"):
        encode([1], 12)
    assert decode(encode(np.array([], dtype=np.float32))).size == 0


# --- transmissions ------------------------------------------------------------------------------


def test_transmissions_split_and_concatenate() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, 1000) * (rng.random(1000) < 0.4)
    parts = encode_transmissions(x, max_words=300)
    assert [p.n_words for p in parts] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate(decode_many(parts)), x)
    for p, lo in zip(parts, range(0, 1000, 300), strict=True):
        assert p == encode(x[lo : lo + 300])
    assert len(encode_transmissions(x)) == 1
    with pytest.raises(ValueError):
        encode_transmissions(x, max_words=ebpc.RTL_MAX_WORDS + 1)


# --- hostile input ------------------------------------------------------------------------------


def good_record() -> EbpcStreams:
    rng = np.random.default_rng(5)
    x = np.maximum(rng.normal(0, 30, 3000), 0).astype(np.int64)
    return encode(x)


@pytest.mark.parametrize("parser", PARSERS)
def test_bad_fields(parser: str) -> None:
    e = good_record()
    bad = [
        EbpcStreams(12, 8, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 4, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, -1, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words + 1, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words - 1, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, e.znz[:-1], e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc + b"\0", e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc, e.znz_bitlen + 8, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen - 1),
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc[:-1] + b"\x01", e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, "abc", e.bpc, e.znz_bitlen, e.bpc_bitlen),  # type: ignore[arg-type]
        EbpcStreams(8, 8, 0, b"", b"\0", 0, 8),
        EbpcStreams(8, 8, 1, b"\x80", b"", 1, 0),
        EbpcStreams(8, 8, 3, b"\x18", b"", 5, 0),
    ]
    for record in bad:
        with use_parser(parser), pytest.raises(CorruptStream) as info:
            decode(record)
        assert "\n" not in str(info.value)


def decode_outcome(record: EbpcStreams) -> np.ndarray | str:
    """The decoded words, or the CorruptStream message (one line)."""
    try:
        return decode(record)
    except CorruptStream as exc:
        assert "\n" not in str(exc)
        return str(exc)


@pytest.mark.parametrize(("w", "n"), FORMATS)
def test_corrupted_streams_never_crash(w: int, n: int) -> None:
    """Random bit flips, truncations and garbage: the decoder returns values or raises
    CorruptStream, nothing else; both parsers give the same values or the same message."""
    rng = np.random.default_rng(w * 100 + n)
    top = 1 << (w - 1)
    x = np.maximum(rng.normal(0, top / 6, 2000), 0).astype(np.int64) * rng.choice([1, -1], 2000)
    e = encode(x, w, n)
    failures = 0
    for trial in range(120):
        znz, bpc = bytearray(e.znz), bytearray(e.bpc)
        target = bpc if trial % 3 else znz
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(target)))
            target[i] ^= 1 << int(rng.integers(0, 8))
        zb, bb = e.znz_bitlen, e.bpc_bitlen
        if trial % 10 == 9:  # garbage of a plausible length
            bpc = bytearray(rng.integers(0, 256, len(bpc)).astype(np.uint8).tobytes())
        record = EbpcStreams(w, n, e.n_words, bytes(znz), bytes(bpc), zb, bb)
        with use_parser("numpy"):
            out = decode_outcome(record)
        if parse_jit._load() is not None:
            with use_parser("compiled"):
                again = decode_outcome(record)
            assert type(again) is type(out)
            assert again == out if isinstance(out, str) else np.array_equal(again, out)
        if isinstance(out, str):
            failures += 1
        else:
            assert out.shape == (e.n_words,)
    assert failures > 0


@pytest.mark.parametrize("parser", PARSERS)
def test_truncated_streams(parser: str) -> None:
    e = good_record()
    for cut in (1, 2, 5, 17):
        zb = max(e.znz_bitlen - cut, 0)
        bb = max(e.bpc_bitlen - cut, 0)
        for record in (
            EbpcStreams(8, 8, e.n_words, e.znz[: -(-zb // 8)], e.bpc, zb, e.bpc_bitlen),
            EbpcStreams(8, 8, e.n_words, e.znz, e.bpc[: -(-bb // 8)], e.znz_bitlen, bb),
        ):
            data = bytearray(record.znz if record.znz_bitlen != e.znz_bitlen else record.bpc)
            bits = record.znz_bitlen if record.znz_bitlen != e.znz_bitlen else record.bpc_bitlen
            if bits % 8:
                data[-1] &= 0xFF << (8 - bits % 8) & 0xFF
            if record.znz_bitlen != e.znz_bitlen:
                record = EbpcStreams(8, 8, e.n_words, bytes(data), e.bpc, zb, e.bpc_bitlen)
            else:
                record = EbpcStreams(8, 8, e.n_words, e.znz, bytes(data), e.znz_bitlen, bb)
            with use_parser(parser), pytest.raises(CorruptStream):
                decode(record)


# --- the weight adapter -------------------------------------------------------------------------


def weights(shape: tuple[int, ...], bits: int, sparsity: float, seed: int) -> QuantTensor:
    rng = np.random.default_rng(seed)
    top = 2 ** (bits - 1) - 1
    v = rng.integers(-top, top + 1, size=shape).astype(np.int16)
    v[rng.random(shape) < sparsity] = 0
    return QuantTensor("w", v, bits, np.ones(shape[0], np.float32), 0)


@pytest.mark.parametrize(("w", "n"), FORMATS)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_adapter_round_trip(w: int, n: int, bits: int) -> None:
    from xorc.codecs.ebpc.weights_decode import decode as weight_decode
    from xorc.codecs.ebpc.weights_encode import encode as weight_encode

    q = weights((32, 8, 3, 3), bits, 0.6, bits + w + n)
    e = weight_encode(q, EbpcOptions(word_width=w, block_size=n))
    assert e.codec == CodecId.EBPC
    assert set(e.streams) == {"znz", "bpc"}
    assert e.params["word_width"] == w and e.params["block_size"] == n
    assert e.params["n_words"] == [q.values.size]
    json.dumps(e.params)
    json.dumps(e.stats)
    np.testing.assert_array_equal(e.decoded, q.values)
    out = weight_decode(q.shape, bits, e.params, e.streams)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, q.values)
    record = encode(q.values.ravel(), w, n)
    assert e.streams == {"znz": record.znz, "bpc": record.bpc}


def test_adapter_several_transmissions() -> None:
    from xorc.codecs.ebpc.weights_decode import decode as weight_decode

    q = weights((10, 100), 4, 0.5, 1)
    parts = encode_transmissions(q.values.ravel(), max_words=256)
    params = {
        "word_width": 8,
        "block_size": 8,
        "max_zero_run": 16,
        "n_words": [p.n_words for p in parts],
        "znz_bitlen": [p.znz_bitlen for p in parts],
        "bpc_bitlen": [p.bpc_bitlen for p in parts],
    }
    streams = {"znz": b"".join(p.znz for p in parts), "bpc": b"".join(p.bpc for p in parts)}
    np.testing.assert_array_equal(weight_decode(q.shape, 4, params, streams), q.values)


def test_adapter_hostile_records() -> None:
    from xorc.codecs.ebpc.weights_decode import decode as weight_decode
    from xorc.codecs.ebpc.weights_encode import encode as weight_encode

    q = weights((16, 16), 4, 0.5, 2)
    e = weight_encode(q, EbpcOptions())
    p, s = e.params, e.streams
    bad_params = [
        {**p, "word_width": 12},
        {**p, "block_size": 16},
        {**p, "max_zero_run": 8},
        {**p, "n_words": [255]},
        {**p, "n_words": 256},
        {**p, "znz_bitlen": [1, 2]},
        {**p, "bpc_bitlen": ["x"]},
        {k: v for k, v in p.items() if k != "n_words"},
    ]
    for params in bad_params:
        with pytest.raises(BadRecord):
            weight_decode(q.shape, 4, params, s)
    for streams in ({"znz": s["znz"]}, {**s, "bpc": s["bpc"][:-1]}, {**s, "znz": s["znz"] + b"\0"}):
        with pytest.raises(CorruptStream):
            weight_decode(q.shape, 4, p, streams)
    with pytest.raises(CorruptStream, match="outside"):
        weight_decode(q.shape, 2, p, s)  # 4-bit levels do not fit 2 bits
    with pytest.raises(UsageError):
        weight_encode(q, EbpcOptions(word_width=8, block_size=16))


def test_adapter_empty_tensor() -> None:
    from xorc.codecs.ebpc.weights_decode import decode as weight_decode
    from xorc.codecs.ebpc.weights_encode import encode as weight_encode

    q = QuantTensor("e", np.zeros((0, 4), np.int16), 4, np.ones(1, np.float32), None)
    e = weight_encode(q, EbpcOptions())
    assert weight_decode((0, 4), 4, e.params, e.streams).shape == (0, 4)


# --- packaging ----------------------------------------------------------------------------------


def test_package_attributes_stay_the_stream_api() -> None:
    adapter_encode = importlib.import_module("xorc.codecs.ebpc.weights_encode")
    adapter_decode = importlib.import_module("xorc.codecs.ebpc.weights_decode")
    assert callable(adapter_encode.encode) and callable(adapter_decode.decode)
    assert ebpc.encode is encode and ebpc.decode is decode
    assert not isinstance(ebpc.encode, type(sys))


def test_decoders_do_not_load_the_encoder() -> None:
    code = (
        "import sys, xorc.codecs.ebpc.weights_decode, xorc.codecs.ebpc\n"
        "from xorc.codecs.ebpc import decode\n"
        "bad = [m for m in sys.modules if m.endswith(('encode',))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_chain_maps_matches_a_sequential_walk() -> None:
    rng = np.random.default_rng(9)
    for n, states in ((1, 5), (15, 5), (16, 5), (17, 3), (1000, 5), (5000, 10)):
        maps = rng.integers(0, states, (n, states)).astype(np.uint8)
        expected, s = [], 2 % states
        for k in range(n):
            expected.append(s)
            s = int(maps[k, s])
        np.testing.assert_array_equal(znz_decode.chain_maps(maps, 2 % states), expected)


def test_znz_general_composition_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the shortcut for constant chunks disabled, the map composition decodes alike."""
    monkeypatch.setattr(znz_decode, "_ZNZ_RESOLVE_ROUNDS", 0)
    rng = np.random.default_rng(12)
    for x in ([0, 5] * 3000, rng.integers(-2, 3, 20000), [0] * 100 + [1] + [0] * 17):
        np.testing.assert_array_equal(decode(encode(x)), x)


# --- the bit primitives added to xorc/bits.py ----------------------------------------------------


def test_bit_primitives() -> None:
    from xorc import bits as bitio

    rng = np.random.default_rng(21)
    for _ in range(60):
        n = int(rng.integers(0, 200))
        max_width = int(rng.choice([1, 5, 8, 16, 17, 33, 64]))
        widths = rng.integers(0, max_width + 1, n)
        values = np.array(
            [int(rng.integers(0, 1 << int(w))) if w < 64 else (1 << 63) + 5 for w in widths],
            dtype=np.uint64,
        )
        expected = bitio.pack_fields(values, widths) if n else (b"", 0)
        assert bitio.pack_fields_fast(values, widths, max_width) == expected
        data, nbits = expected
        win = bitio.unit_windows(data, nbits)
        stream = np.concatenate([bitio.unpack_bits(data, nbits), np.zeros(64, np.uint8)])
        for width in (1, 4, 16, 32):
            pos = rng.integers(0, nbits + 33, 20)
            got = bitio.peek_units(win, pos, width)
            want = [int("".join(map(str, stream[p : p + width])), 2) for p in pos]
            assert got.tolist() == want
        every = bitio.windows16(data)
        assert every.size == 8 * len(data)
        assert every.tolist() == bitio.bit_windows(data, 16).tolist()
