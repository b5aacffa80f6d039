"""Codec `insitu` (docs/codecs/insitu.md): golden vectors on both decoders, round trips, the
paper's storage accounting, the encoder's choices, hostile records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from xorc import errors
from xorc.cli import cli
from xorc.codecs import CodecId
from xorc.codecs.insitu.decode import decode
from xorc.codecs.insitu.encode import Prepared, encode, encoder_at
from xorc.codecs.insitu.options import InsituOptions
from xorc.codecs.insitu.schema import parse
from xorc.datapath import DatapathConfig, simulate_tensor
from xorc.decode import decode_levels
from xorc.errors import BadRecord, CorruptStream
from xorc.format import read_bytes
from xorc.quantize import quantize
from xorc.tensor import QuantTensor

ROOT = Path(__file__).resolve().parents[1]
CASES = json.loads((ROOT / "tests" / "golden" / "insitu" / "cases.json").read_text())
CONFIG = DatapathConfig()


def low_rank(seed: int, shape: tuple[int, ...], rank: int, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    m = rng.normal(size=(rows, rank)) @ rng.normal(size=(rank, cols))
    return (m + noise * rng.normal(size=m.shape)).reshape(shape)


def quant(w: np.ndarray, bits: int = 8, moment: np.ndarray | None = None) -> QuantTensor:
    levels, scales = quantize(w, bits, 0)
    exact = None if moment is None else w / scales.reshape(-1, *[1] * (w.ndim - 1))
    return QuantTensor("w", levels, bits, scales, 0, None, exact, moment)


def both(shape, bits, params, streams) -> np.ndarray:
    ref = decode(tuple(shape), bits, params, streams)
    dp, _ = simulate_tensor(tuple(shape), bits, CodecId.INSITU, params, streams, CONFIG)
    np.testing.assert_array_equal(ref, dp)
    return ref


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden(case) -> None:
    streams = {k: bytes.fromhex(v) for k, v in case["streams"].items()}
    out = both(case["shape"], case["bits"], case["params"], streams)
    assert out.ravel().tolist() == case["expected"]


def test_golden_by_hand() -> None:
    """A 1 x 2 matrix, Bo = 1: basis [3, -1] (4 bits), V [[2]] (3 bits), M = 5, shift 1:
    levels clamp((2 * [3, -1] * 5 + 1) >> 1) = [15, -5]."""
    params = {"axis": 0, "bi": 0, "bo": 1, "qb": 4, "qu": 0, "qv": 3, "mbits": 4, "shift": 1}
    streams = {"basis": bytes([0x39]), "v": bytes([0x40]), "multipliers": bytes([0x50])}
    assert both((1, 2), 8, params, streams).tolist() == [[15, -5]]


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([(6, 10), (8, 4, 3, 3), (5, 3, 2, 2), (4, 1, 3, 3), (7, 5, 1, 1)]),
    st.integers(0, 3),
    st.integers(1, 6),
    st.sampled_from([(8, 8, 8), (3, 6, 3), (2, 2, 2), (5, 4, 7)]),
    st.integers(2, 8),
    st.integers(0, 2**16),
)
def test_roundtrip(shape, bi, bo, qs, bits, seed) -> None:
    q = quant(low_rank(seed, shape, 2), bits)
    enc = encode(q, InsituOptions(config=(bi, bo, *qs)))
    assert enc.codec == CodecId.INSITU
    np.testing.assert_array_equal(both(shape, bits, enc.params, enc.streams), enc.decoded)
    again = encode(q, InsituOptions(config=(bi, bo, *qs)))
    assert again.streams == enc.streams and again.params == enc.params  # deterministic


def resnet18_cifar_convs() -> list[tuple[int, int, int]]:
    """(Co, Ci, k) of every convolution of ResNet-18 for CIFAR-10 (3x3 stem, 1x1 shortcuts)."""
    convs = [(64, 3, 3)]
    for cin, cout, down in [(64, 64, False), (64, 128, True), (128, 256, True), (256, 512, True)]:
        convs += [(cout, cin, 3), (cout, cout, 3), (cout, cout, 3), (cout, cout, 3)]
        if down:
            convs.append((cout, cin, 1))
    return convs


def test_paper_memory_ratio() -> None:
    """MLG 2-44-3-6-3 on ResNet-18 / CIFAR-10: memory ratio 0.0080 of FP32, parameter ratio
    0.0497 (shared/notes/weights-codecs.md §8.3), from the codec's own stream accounting.

    Paper rules: Bo = 44 where 44 < min(Co, Ci k^2), a 1x1 conv falls back to 0.9 min(Co, Ci),
    level 1 where Bi = 2 < min(Ci, k^2); other layers (the stem, the classifier) stay 8-bit
    matrices; batch norm and one FP32 scale per factor at 4 bytes. Our per-row multipliers
    replace the FP32 factor scales (the paper's accounting has none)."""
    convs = resnet18_cifar_convs()
    fc = 512 * 10 + 10
    bn = sum(2 * co for co, _, _ in convs)
    full = sum(co * ci * k * k for co, ci, k in convs) + fc + bn
    params = bits = 0
    for co, ci, k in convs:
        kk = k * k
        bo = 44 if min(co, ci * kk) > 44 else (int(0.9 * min(co, ci)) if k == 1 else 0)
        if bo == 0:
            params += co * ci * kk
            bits += 8 * co * ci * kk
            continue
        bi = 2 if min(ci, kk) > 2 else 0
        p = {"axis": 0, "bi": bi, "bo": bo, "qb": 3, "qu": 6 if bi else 0, "qv": 3}
        rec = parse((co, ci, k, k), 8, {**p, "mbits": 12, "shift": 0})
        stream = rec.stream_bits()
        del stream["multipliers"]
        factor_elements = sum(
            np.prod(s) for s in [rec.basis_shape, (co, bo)] + ([rec.u_shape] if bi else [])
        )
        params += int(factor_elements)
        bits += sum(stream.values()) + 3 * 32
    params += fc + bn
    bits += 8 * 5120 + 32 * 10 + 32 * bn
    assert round(params / full, 4) == 0.0497
    assert round(bits / (32 * full), 4) == 0.0080


def test_output_error_weighting_helps() -> None:
    """With an anisotropic H the H-weighted fit has lower output error than the weight fit."""
    rng = np.random.default_rng(3)
    w = low_rank(5, (32, 48), 6, noise=0.3)
    x = rng.normal(size=(2000, 48)) * np.geomspace(0.05, 3, 48)
    h = x.T @ x / len(x)
    config = InsituOptions(config=(0, 6, 8, 8, 8))
    weighted = Prepared(quant(w, 8, h), config)
    plain = Prepared(quant(w, 8), config)
    assert weighted.layer is not None and plain.layer is not None
    plain_levels = plain.choose(1.0).decoded
    assert weighted.points[0].error < 0.8 * weighted.layer.error(plain_levels)


def test_tolerance_picks_smallest_within_and_falls_back() -> None:
    q = quant(low_rank(1, (64, 32, 3, 3), 4), 8)
    prep = Prepared(q, InsituOptions())
    sizes = []
    for tol in (0.001, 0.01, 0.1, 0.3):
        enc = prep.choose(tol)
        if enc.codec == CodecId.INSITU:
            assert enc.stats["relative_error"] <= tol
            chosen = enc.stats["payload_bits"]
            assert all(p.bits >= sum(chosen.values()) for p in prep.points if p.error <= tol)
        sizes.append(sum(map(len, enc.streams.values())))
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < sizes[0]
    noise = quant(np.random.default_rng(2).normal(size=(16, 40)), 8)
    enc = encode(noise, InsituOptions(tolerance=0.001))
    assert enc.codec == CodecId.RAW and enc.stats["fallback"].startswith("raw:")
    trial = encoder_at([q, noise], [InsituOptions()] * 2, [None, None])
    assert [e.codec for e in trial(0.01)] == [CodecId.INSITU, CodecId.RAW]


GOOD = CASES[1]


def _record(**changes):
    params = {**GOOD["params"], **changes}
    streams = {k: bytes.fromhex(v) for k, v in GOOD["streams"].items()}
    return tuple(GOOD["shape"]), GOOD["bits"], params, streams


@pytest.mark.parametrize(
    "change",
    [
        {"bo": 0},
        {"bo": 9},
        {"bi": 5},
        {"bi": True},
        {"qb": 1},
        {"qu": 0},
        {"qv": 9},
        {"mbits": 17},
        {"shift": 63},
        {"axis": 4},
        {"extra": 1},
    ],
)
def test_hostile_params(change) -> None:
    with pytest.raises(BadRecord):
        decode(*_record(**change))


def test_hostile_shapes() -> None:
    p = {"axis": 0, "bi": 2, "bo": 1, "qb": 3, "qu": 3, "qv": 3, "mbits": 4, "shift": 0}
    with pytest.raises(BadRecord):  # level 1 on a matrix
        parse((4, 9), 8, p)
    with pytest.raises(BadRecord):
        parse((0, 3, 3, 3), 8, p)
    with pytest.raises(BadRecord):
        parse((), 8, p)
    with pytest.raises(BadRecord):
        parse((4, 2, 1, 1), 8, {**p, "bi": 1})  # 1x1: no level 1


@pytest.mark.parametrize("name", ["basis", "u", "v", "multipliers"])
def test_corrupt_streams(name) -> None:
    shape, bits, params, streams = _record()
    for bad in (streams[name][:-1], streams[name] + b"\0", b""):
        with pytest.raises(CorruptStream):
            decode(shape, bits, params, {**streams, name: bad})
        with pytest.raises(CorruptStream):
            simulate_tensor(shape, bits, CodecId.INSITU, params, {**streams, name: bad}, CONFIG)
    missing = {k: v for k, v in streams.items() if k != name}
    with pytest.raises(CorruptStream):
        decode(shape, bits, params, missing)


def test_pad_bits_negative_zero_extra_stream() -> None:
    shape, bits, params, streams = _record()
    v = bytearray(streams["v"])  # 24 x 3 bits = 72 bits: 9 bytes, no pad; basis: 162 bits
    b = bytearray(streams["basis"])
    b[-1] |= 1  # pad bit of the basis (162 bits in 21 bytes)
    with pytest.raises(CorruptStream, match="pad"):
        decode(shape, bits, params, {**streams, "basis": bytes(b)})
    v[0] = 0b10000000  # first V field 100: negative zero
    with pytest.raises(CorruptStream, match="negative zero"):
        decode(shape, bits, params, {**streams, "v": bytes(v)})
    with pytest.raises(CorruptStream, match="negative zero"):
        simulate_tensor(shape, bits, CodecId.INSITU, params, {**streams, "v": bytes(v)}, CONFIG)
    with pytest.raises(CorruptStream, match="unexpected"):
        decode(shape, bits, params, {**streams, "mask": b""})


def test_decoded_size_bound() -> None:
    """A record declaring more weights than 64 per stream bit is refused before generating."""
    shape = (4096, 4096)
    params = {"axis": 0, "bi": 0, "bo": 1, "qb": 2, "qu": 0, "qv": 2, "mbits": 1, "shift": 0}
    streams = {"basis": bytes(1024), "v": bytes(1024), "multipliers": bytes(512)}
    with pytest.raises(CorruptStream, match="at most"):
        simulate_tensor(shape, 8, CodecId.INSITU, params, streams, CONFIG)


MALFORMED = ROOT / "tests" / "golden" / "malformed" / "insitu"
MANIFEST = json.loads((MALFORMED / "manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_malformed_insitu_blob(name: str) -> None:
    """Each hostile record raises its error class (reader + both decoders) and `verify` ends
    with one line and exit code 4."""
    data = (MALFORMED / name).read_bytes()
    container = read_bytes(data)
    expected = getattr(errors, MANIFEST[name])
    with pytest.raises(expected):
        for record in container.tensors:
            decode_levels(container, record)
    with pytest.raises(expected):
        for record in container.tensors:
            simulate_tensor(
                record.shape, record.bits, record.codec, record.params,
                container.codec_streams(record), CONFIG,
            )  # fmt: skip
    result = CliRunner().invoke(cli, ["verify", str(MALFORMED / name)])
    assert result.exit_code == 4 and result.stderr.count("\n") == 1


def test_valid_insitu_blob_verifies() -> None:
    result = CliRunner().invoke(cli, ["verify", str(MALFORMED / "tiny_insitu.xorc")])
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in MALFORMED.glob("*.xorc")} == {*MANIFEST, "tiny_insitu.xorc"}


def test_compress_with_calib_fits_the_output_error(tmp_path: Path) -> None:
    """`compress --policy insitu --calib`: every layer gets its H (output error), the records
    verify on both decoders, and inspect / simulate JSON carry the insitu fields."""
    import onnx
    from models import tiny_cnn, tiny_inputs

    model, calib, blob = tmp_path / "m.onnx", tmp_path / "c.npz", tmp_path / "m.xorc"
    onnx.save(tiny_cnn(), model)
    np.savez(calib, x=tiny_inputs(64, seed=5))
    args = ["compress", str(model), "-o", str(blob), "--policy", "insitu", "--calib", str(calib)]
    result = CliRunner().invoke(cli, [*args, "--insitu-tolerance", "0.3", "--json"])
    assert result.exit_code == 0, result.stderr
    tensors = json.loads(result.stdout)["tensors"]
    generated = [t for t in tensors if t["codec"] == "insitu"]
    assert generated and all(t["details"]["error_metric"] == "output" for t in generated)
    assert all(t["details"]["relative_error"] <= 0.3 for t in generated)
    assert CliRunner().invoke(cli, ["verify", str(blob), "--decoder", "both"]).exit_code == 0
    sim = json.loads(CliRunner().invoke(cli, ["simulate", str(blob), "--json"]).stdout)
    details = [t["counters"]["details"] for t in sim["simulation"]["tensors"]]
    assert any(d.get("generator_macs", 0) > 0 and "dram_bytes_saved" in d for d in details)
    assert "insitu_generator" in sim["area"]["units"]
