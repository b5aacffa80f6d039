"""The plain EBPC reference decoder (`xorc/codecs/ebpc/reference.py`, docs/codecs/ebpc.md §6)
as the oracle of the fast ones: the conformance vectors, round trips, hand-built malformed
streams and random corruptions, decoded by the reference, the numpy parser, the compiled parser
and the datapath's EBPC unit, which must all agree."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xorc.codecs.ebpc as ebpc
import xorc.codecs.ebpc.parse_jit as parse_jit
from xorc.bits import pack_bits, unpack_bits
from xorc.codecs.ebpc import EbpcStreams, encode, reference
from xorc.datapath.dram import BusStream
from xorc.datapath.units import ebpc as unit
from xorc.errors import CorruptStream

GOLDEN = Path(__file__).parent / "golden" / "ebpc"
FORMATS = [(8, 8), (16, 8), (16, 16), (8, 16)]  # (8, 16): the non-RTL study variant, §8
PARSERS = ["numpy"] + (["compiled"] if parse_jit._load() is not None else [])

Outcome = np.ndarray | type[CorruptStream]


def outcome(decoder: Callable[[EbpcStreams], np.ndarray], record: EbpcStreams) -> Outcome:
    """The decoded words, or CorruptStream (with a one-line message); anything else fails."""
    try:
        return np.asarray(decoder(record))
    except CorruptStream as exc:
        assert str(exc) and "\n" not in str(exc)
        return CorruptStream


def fast_decoder(parser: str) -> Callable[[EbpcStreams], np.ndarray]:
    def run(record: EbpcStreams) -> np.ndarray:
        with parse_jit.using(parser):
            return ebpc.decode(record)

    return run


def _bus(name: str, data: bytes) -> BusStream:
    return BusStream(name, len(data), np.frombuffer(data, dtype=np.uint8).reshape(-1, 1), 0)


def datapath_decode(record: EbpcStreams) -> np.ndarray:
    """The datapath's EBPC unit on one transmission, with the checks its caller makes."""
    w = record.word_width
    streams = {}
    for name in ("znz", "bpc"):
        data, bitlen = getattr(record, name), getattr(record, f"{name}_bitlen")
        if len(data) != -(-bitlen // w) * w // 8:
            raise CorruptStream(f"stream {name!r} has the wrong length")
        streams[name] = _bus(name, data)
        unit.check_padding(streams[name], bitlen, name)
    values, _ = unit.decode(
        w,
        record.block_size,
        record.n_words,
        streams["znz"],
        record.znz_bitlen,
        streams["bpc"],
        record.bpc_bitlen,
        record.swap_zero_codes,
    )
    return values


DECODERS = {f"fast-{p}": fast_decoder(p) for p in PARSERS} | {"datapath": datapath_decode}


def assert_all_agree(record: EbpcStreams, expected: Outcome | None = None) -> Outcome:
    """Every decoder gives the reference's words, or raises CorruptStream like it."""
    ref = outcome(reference.decode, record)
    if expected is not None:
        assert ref is expected if expected is CorruptStream else np.array_equal(ref, expected)
    for name, decoder in DECODERS.items():
        got = outcome(decoder, record)
        if ref is CorruptStream:
            assert got is CorruptStream, f"{name} decodes what the reference rejects"
        else:
            assert got is not CorruptStream, f"{name} rejects what the reference decodes"
            np.testing.assert_array_equal(got, ref, err_msg=name)
    return ref


# --- (a) the conformance vectors ------------------------------------------------------------------


def golden_cases() -> list[tuple[int, int, dict]]:
    cases = []
    for path in sorted(GOLDEN.glob("ebpc_*_cases.json")):
        doc = json.loads(path.read_text())
        cases += [(doc["word_width"], doc["block_size"], c) for c in doc["cases"]]
    return cases


CASES = golden_cases()


@pytest.mark.parametrize(
    ("w", "n", "case"), CASES, ids=[f"W{w}N{n}-{c['name']}" for w, n, c in CASES]
)
def test_reference_decodes_the_vectors(w: int, n: int, case: dict) -> None:
    record = EbpcStreams(
        w,
        n,
        case["n_words"],
        bytes.fromhex(case["znz_hex"]),
        bytes.fromhex(case["bpc_hex"]),
        case["znz_bitlen"],
        case["bpc_bitlen"],
    )
    out = reference.decode(record)
    assert out.dtype == (np.int8 if w == 8 else np.int16)
    assert out.tolist() == case["input"]


def test_vectors_cover_every_format_and_symbol() -> None:
    assert len(CASES) >= 24 and {(w, n) for w, n, _ in CASES} == set(FORMATS[:3])
    kinds = {k for _, _, c in CASES for k, v in c["symbol_counts"].items() if v}
    assert {"multi_all0_dbx", "all0_dbx", "all1_dbx", "all0_dbp", "two_consec"} <= kinds
    assert {"single1", "uncompressed"} <= kinds


# --- hand-built streams (§4, §6), W = N = 8 -------------------------------------------------------


def record(znz: str, bpc: str, n_words: int, w: int = 8, n: int = 8) -> EbpcStreams:
    """A record from bit strings (first character = first bit on the wire), padded as in §5."""

    def packed(bits: str) -> bytes:
        return pack_bits([int(b) for b in bits + "0" * (-len(bits) % w)])

    return EbpcStreams(w, n, n_words, packed(znz), packed(bpc), len(znz), len(bpc))


BASE5 = "00000101"
WORKED = BASE5 + "00011000" + "01" + "00001" + "00011000" + "001011"  # §5's example: [5]

MALFORMED = {
    "znz run past n_words": record("00011", "", 3),  # 4 zeros for 3 words
    "znz trailing symbol": record("11", WORKED, 1),
    "znz truncated run": record("1001", WORKED, 2),
    "bpc truncated": record("1", WORKED[:-1], 1),
    "bpc trailing bits": record("1", WORKED + "01", 1),
    "bpc missing block": record("1", "", 1),
    "bpc extra block": record("0", WORKED, 1),
    "single one at i = 7": record("1", BASE5 + "00011111" + "001111" + "0" * 8, 1),
    "pair at i = 6": record("1", BASE5 + "00010110" + "001111" + "0" * 8, 1),
    "zero run past plane 8": record("1", BASE5 + "00011000" + "001111", 1),
    "zero run one past plane 8": record("1" * 8, BASE5 + "001110" + "001000", 8),  # 8 + 2 planes
    "first bpc padding bit set": replace(record("1", WORKED + "1", 1), bpc_bitlen=37),
    "first znz padding bit set": replace(record("11", WORKED, 1), znz_bitlen=1),
    "zero at a non-zero word": record("1", "00000000" + "001111", 1),
    "padding word not zero": record("1", BASE5 + "001111", 1),
}


def test_worked_example_by_hand() -> None:
    assert record("1", WORKED, 1).bpc.hex() == "0518423058"
    assert_all_agree(record("1", WORKED, 1), np.array([5]))
    assert_all_agree(record("01111" + "1" + "00000", WORKED, 18), np.array([0] * 16 + [5, 0]))


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_streams_are_rejected(name: str) -> None:
    assert_all_agree(MALFORMED[name], CorruptStream)


def test_malformed_records_are_rejected() -> None:
    e = encode(np.arange(-40, 40))
    bad = [
        EbpcStreams(12, 8, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 4, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, -1, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, 2.0, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),  # type: ignore[arg-type]
        EbpcStreams(8, 8, e.n_words, e.znz[:-1], e.bpc, e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc + b"\0", e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc[:-1] + b"\x01", e.znz_bitlen, e.bpc_bitlen),
        EbpcStreams(8, 8, e.n_words, "ab", e.bpc, e.znz_bitlen, e.bpc_bitlen),  # type: ignore[arg-type]
        EbpcStreams(8, 8, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen, 1),  # type: ignore[arg-type]
        EbpcStreams(16, 8, e.n_words, e.znz, e.bpc, e.znz_bitlen, e.bpc_bitlen),  # 8-bit padding
    ]
    for rec in bad:
        assert outcome(reference.decode, rec) is CorruptStream
        assert outcome(ebpc.decode, rec) is CorruptStream


# --- (b) round trips ------------------------------------------------------------------------------


def words(w: int) -> st.SearchStrategy[list[int]]:
    """Runs of a repeated word (long zero runs, zero deltas) and dense stretches, any length."""
    top = 1 << (w - 1)
    word = st.one_of(st.just(0), st.integers(-3, 3), st.integers(-top, top - 1))
    runs = st.lists(st.tuples(word, st.integers(1, 40)), max_size=12)
    dense = st.lists(word, max_size=120)
    return st.tuples(runs, dense).map(lambda rd: [v for v, k in rd[0] for _ in range(k)] + rd[1])


@pytest.mark.parametrize(("w", "n"), FORMATS)
@given(data=st.data())
def test_round_trip_all_decoders(w: int, n: int, data: st.DataObject) -> None:
    values = data.draw(words(w))
    swap = data.draw(st.booleans())
    e = encode(values, w, n, allow_non_rtl_block=n > w, swap_zero_codes=swap)
    out = assert_all_agree(e, np.array(values, dtype=np.int64))
    assert isinstance(out, np.ndarray) and out.dtype == (np.int8 if w == 8 else np.int16)
    assert reference.decode_many([e, e])[1].tolist() == values


def test_reference_is_fast_enough_for_tests() -> None:
    import time

    x = np.random.default_rng(1).integers(-128, 128, 4000)
    e = encode(x)
    start = time.perf_counter()
    np.testing.assert_array_equal(reference.decode(e), x)
    assert time.perf_counter() - start < 1.0


# --- (c), (d) corrupted and truncated real streams ------------------------------------------------


def with_stream(e: EbpcStreams, name: str, bits: np.ndarray) -> EbpcStreams:
    """`e` with stream `name` ("znz" or "bpc") replaced by `bits`, padded as in §5."""
    padded = np.concatenate([bits, np.zeros(-bits.size % e.word_width, dtype=np.uint8)])
    return replace(e, **{name: pack_bits(padded), f"{name}_bitlen": int(bits.size)})


def corruptions(e: EbpcStreams, rng: np.random.Generator, count: int) -> list[EbpcStreams]:
    """Bit flips inside the exact stream bits, truncations, extensions, wrong word counts."""
    out = []
    for trial in range(count):
        name = "bpc" if trial % 3 else "znz"
        bits = unpack_bits(getattr(e, name), getattr(e, f"{name}_bitlen"))
        kind = trial % 5
        if kind == 0:  # truncated
            out.append(with_stream(e, name, bits[: int(rng.integers(0, bits.size))]))
        elif kind == 1:  # trailing bits
            tail = rng.integers(0, 2, int(rng.integers(1, 12))).astype(np.uint8)
            out.append(with_stream(e, name, np.concatenate([bits, tail])))
        elif kind == 2:  # wrong word count
            out.append(replace(e, n_words=max(e.n_words + int(rng.integers(-17, 18)), 0)))
        else:  # one to three flipped bits
            flipped = bits.copy()
            flipped[rng.integers(0, bits.size, int(rng.integers(1, 4)))] ^= 1
            out.append(with_stream(e, name, flipped))
    return out


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize(("w", "n"), FORMATS)
def test_corrupted_streams_agree_with_the_reference(w: int, n: int, swap: bool) -> None:
    """Every decoder returns the reference's words or rejects the stream like it. Flips in
    raw symbols keep the stream valid with other words, so both outcomes must occur."""
    rng = np.random.default_rng(10 * w + n + swap)
    top = 1 << (w - 1)
    x = np.maximum(rng.normal(0, top / 6, 400), 0).astype(np.int64) * rng.choice([1, -1], 400)
    e = encode(x, w, n, allow_non_rtl_block=n > w, swap_zero_codes=swap)
    results = [assert_all_agree(rec) for rec in corruptions(e, rng, 50)]
    rejected = sum(r is CorruptStream for r in results)
    changed = sum(r is not CorruptStream and not np.array_equal(r, x) for r in results)
    assert rejected > 5 and changed > 0
