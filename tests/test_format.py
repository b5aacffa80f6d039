"""Container v1 (docs/format.md): round-trips, golden bytes, and every kind of damage."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GOLDEN
from hypothesis import given
from hypothesis import strategies as st

from xorc import bits as bitio
from xorc import errors
from xorc.decode import decode_levels
from xorc.format import Container, TensorRecord, read_bytes, v1
from xorc.format.container import (
    SCALE_DTYPES,
    SCALES,
    decode_scales,
    dumps,
    encode_scales,
    layout_payload,
    levels_digest,
)

MALFORMED = GOLDEN / "malformed"
MANIFEST = json.loads((MALFORMED / "manifest.json").read_text())
TINY = (GOLDEN / "containers" / "tiny_raw.xorc").read_bytes()


def read_and_decode(data: bytes) -> None:
    container = read_bytes(data)
    for record in container.tensors:
        decode_levels(container, record)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_malformed_blob_raises_its_error(name: str) -> None:
    expected = getattr(errors, MANIFEST[name])
    with pytest.raises(expected) as info:
        read_and_decode((MALFORMED / name).read_bytes())
    message = str(info.value)
    assert message and "\n" not in message


def test_golden_blob_decodes_to_its_levels() -> None:
    expected = json.loads((GOLDEN / "containers" / "tiny_raw.levels.json").read_text())
    container = read_bytes(TINY)
    assert [t.name for t in container.tensors] == list(expected)
    for t in container.tensors:
        levels = decode_levels(container, t)
        assert levels.ravel().tolist() == expected[t.name]
        assert levels_digest(levels) == t.digest


def test_full_range_golden_blob_gives_back_its_uint8_integers() -> None:
    """docs/format.md §4.1 raw `full_range`: level -128 (the negative-zero code), offset 128,
    the model's uint8 weight back bit for bit (its channels use all 256 values)."""
    from weight_models import qdq_uint8_conv

    from xorc.prequant import decode

    data = (GOLDEN / "containers" / "tiny_full_range.xorc").read_bytes()
    doc = json.loads((GOLDEN / "containers" / "tiny_full_range.levels.json").read_text())
    assert v1.read_layout(data).required_flags & (v1.INT_OFFSETS | v1.FULL_RANGE) == 10
    container = read_bytes(data)
    (rec,) = container.tensors
    levels = decode_levels(container, rec)
    assert levels.ravel().tolist() == doc["levels"] and levels.min() == -128
    assert levels_digest(levels) == rec.digest
    values = decode(levels, container.scales(rec), rec.offsets, rec.axis, rec.dtype)
    assert values.ravel().tolist() == doc["integers"]
    wq = qdq_uint8_conv(full_range=True)[0].graph.initializer[0]
    assert values.tobytes() == wq.raw_data and {0, 255} <= set(doc["integers"])


def test_write_read_write_is_identical() -> None:
    assert v1.write(read_bytes(TINY)) == TINY


def test_golden_blob_has_bfloat16_scales_and_sets_its_flag() -> None:
    layout = v1.read_layout(TINY)
    assert layout.version == (1, 1) and layout.required_flags == v1.BF16_SCALES
    assert {t.scale_dtype for t in read_bytes(TINY).tensors} == {"bfloat16"}


def test_version_1_0_blob_still_reads() -> None:
    """A file written before 1.1 (no `scale_dtype`, float32 scales) decodes to its levels."""
    old = (GOLDEN / "containers" / "tiny_raw_v1_0.xorc").read_bytes()
    expected = json.loads((GOLDEN / "containers" / "tiny_raw_v1_0.levels.json").read_text())
    assert v1.read_layout(old).version == (1, 0)
    assert b"scale_dtype" not in old
    container = read_bytes(old)
    for t in container.tensors:
        assert t.scale_dtype == "float32"
        assert decode_levels(container, t).ravel().tolist() == expected[t.name]
        scales = container.scales(t)
        assert scales.dtype == np.float32 and scales.size == t.n_channels and (scales > 0).all()


@given(st.lists(st.integers(0, 0xFFFF), max_size=20))
def test_bfloat16_scales_round_trip(upper: list[int]) -> None:
    scales = (np.array(upper, dtype=np.uint32) << 16).view(np.float32)
    data = encode_scales(scales, "bfloat16")
    assert len(data) == 2 * len(upper)
    assert decode_scales(data, "bfloat16").view(np.uint32).tolist() == [u << 16 for u in upper]
    with pytest.raises(ValueError, match="bfloat16"):
        encode_scales(np.array([1 / 3], np.float32), "bfloat16")


def test_every_truncation_is_refused() -> None:
    for cut in range(len(TINY)):
        with pytest.raises(errors.BlobError):
            read_bytes(TINY[:cut])


def test_every_single_bit_flip_is_detected() -> None:
    rng = np.random.default_rng(0)
    positions = rng.choice(len(TINY) * 8, size=400, replace=False)
    for pos in positions:
        damaged = bytearray(TINY)
        damaged[pos // 8] ^= 1 << (pos % 8)
        with pytest.raises(errors.BlobError):
            read_and_decode(bytes(damaged))


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def containers(draw: st.DrawFn) -> Container:
    n = draw(st.integers(0, 4))
    tensor_names = draw(st.lists(names, min_size=n, max_size=n, unique=True))
    streams, records = [], []
    for name in tensor_names:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
        axis = draw(st.none() | st.integers(0, max(len(shape) - 1, 0))) if shape else None
        channels = 1 if axis is None else shape[axis]
        blobs = draw(st.lists(st.binary(max_size=20), max_size=3))
        scale_dtype = draw(st.sampled_from(sorted(SCALE_DTYPES)))
        streams.append(
            [(SCALES, b"\0" * SCALE_DTYPES[scale_dtype] * channels)]
            + [(f"s{i}", b) for i, b in enumerate(blobs)]
        )
        records.append((name, shape, axis, scale_dtype))
    payload, refs = layout_payload(streams)
    tensors = tuple(
        TensorRecord(
            name=name,
            shape=shape,
            dtype="float32",
            bits=draw(st.integers(2, 8)),
            axis=axis,
            codec=0,
            codec_name="raw",
            policy="raw",
            params={"masked": False},
            streams=ref,
            n_weights=int(np.prod(shape, dtype=np.int64)),
            n_nonzero=0,
            digest="0" * 64,
            stats={"note": draw(names)},
            scale_dtype=scale_dtype,
        )
        for (name, shape, axis, scale_dtype), ref in zip(records, refs, strict=True)
    )
    meta = {
        "format": "xorc",
        "tool": "xorc",
        "tool_version": "t",
        "source_sha256": "s",
        "options": {"x": draw(st.integers())},
    }
    fmap = draw(st.none() | st.just({"layers": []}))
    return Container(meta, tensors, draw(st.binary(max_size=100)), payload, fmap)


@given(containers())
def test_container_round_trip(container: Container) -> None:
    data = v1.write(container)
    assert len(data) % 32 == 0
    back = read_bytes(data)
    assert back == container
    assert v1.write(back) == data
    bf16 = any(t.scale_dtype == "bfloat16" for t in container.tensors)
    pow2 = any(t.scale_dtype == "pow2" for t in container.tensors)
    expected = (v1.BF16_SCALES if bf16 else 0) | (v1.POW2_SCALES if pow2 else 0)
    assert v1.read_layout(data).required_flags == expected


def test_unknown_optional_section_is_skipped() -> None:
    layout = v1.read_layout(TINY)
    bodies = [(s.kind, s.flags, TINY[s.offset : s.offset + s.length]) for s in layout.sections]
    data = v1.write_sections([*bodies, (42, 0, b"future data")], layout.required_flags)
    assert read_bytes(data).tensors == read_bytes(TINY).tensors


def test_malformed_corpus_is_current(tmp_path: Path) -> None:
    """Every manifest entry has its file and every file its entry."""
    files = {p.name for p in MALFORMED.glob("*.xorc")}
    assert files == set(MANIFEST)


def with_records(data: bytes, **changes: Any) -> bytes:
    """The blob with every record's fields changed, rewritten by the writer (CRCs, footer)."""
    container = read_bytes(data)
    tensors = tuple(dataclasses.replace(t, **changes) for t in container.tensors)
    return v1.write(dataclasses.replace(container, tensors=tensors))


def cli_json(*args: str) -> tuple[int, dict]:
    from click.testing import CliRunner

    from xorc.cli import cli

    result = CliRunner().invoke(cli, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}


def test_unknown_policy_still_reads_inspects_and_verifies(tmp_path: Path) -> None:
    """`policy` is informational (docs/format.md §3.2): a reader never refuses one it does not
    know."""
    blob = tmp_path / "future.xorc"
    blob.write_bytes(with_records(TINY, policy="future-policy-x"))
    container = read_bytes(blob.read_bytes())
    assert {t.policy for t in container.tensors} == {"future-policy-x"}
    expected = json.loads((GOLDEN / "containers" / "tiny_raw.levels.json").read_text())
    for t in container.tensors:
        assert decode_levels(container, t).ravel().tolist() == expected[t.name]
    code, doc = cli_json("inspect", str(blob))
    assert code == 0 and {r["policy"] for r in doc["tensors"]} == {"future-policy-x"}
    code, doc = cli_json("verify", str(blob))
    assert code == 0 and doc["bit_exact"] and doc["passed"]


def test_unknown_codec_id_is_listed_but_refused_when_decoding(tmp_path: Path) -> None:
    blob = tmp_path / "future_codec.xorc"
    blob.write_bytes(with_records(TINY, policy="future-policy-x", codec=99))
    container = read_bytes(blob.read_bytes())
    with pytest.raises(errors.BadRecord, match="99"):
        decode_levels(container, container.tensors[0])
    assert cli_json("inspect", str(blob))[0] == 0
    assert cli_json("verify", str(blob))[0] == errors.ExitCode.BAD_BLOB


@pytest.mark.parametrize("policy", ["", "a\nb", "\x00", "x" * 257, 7, None])
def test_policy_must_be_a_short_printable_string(policy: object) -> None:
    layout = v1.read_layout(TINY)
    bodies = [(s.kind, s.flags, TINY[s.offset : s.offset + s.length]) for s in layout.sections]
    doc = json.loads(bodies[1][2])
    doc["tensors"][0]["policy"] = policy
    bodies[1] = (bodies[1][0], bodies[1][1], dumps(doc))
    with pytest.raises(errors.BadRecord, match="'policy'"):
        read_bytes(v1.write_sections(bodies, layout.required_flags))


def test_lone_surrogate_in_a_name_is_a_bad_record() -> None:
    """JSON may escape a lone surrogate ("\\ud800"); it is no tensor name."""
    layout = v1.read_layout(TINY)
    bodies = [(s.kind, s.flags, TINY[s.offset : s.offset + s.length]) for s in layout.sections]
    doc = json.loads(bodies[1][2])
    doc["tensors"][0]["name"] = "\ud800"
    bodies[1] = (bodies[1][0], bodies[1][1], dumps(doc))
    with pytest.raises(errors.BadRecord, match="'name'"):
        read_bytes(v1.write_sections(bodies, layout.required_flags))


FORMAT_MD = (Path(__file__).resolve().parent.parent / "docs" / "format.md").read_text()


def test_rice_code_example_of_the_spec() -> None:
    """docs/format.md §1.1: 5, 0, 9 with k = 2 is `100110` `010001`, bytes `99 10`."""
    assert "`100110` `010001`" in FORMAT_MD and "bytes `99 10`" in FORMAT_MD
    code = bitio.rice_encode([5, 0, 9], 2)
    assert "".join(map(str, code.tolist())) == "100110" + "010001"
    assert bitio.pack_bits(code) == bytes([0x99, 0x10])
    assert bitio.rice_length(np.array([5, 0, 9], dtype=np.uint64), 2) == 12
    values, used = bitio.rice_decode(code, 3, 2)
    assert values.tolist() == [5, 0, 9] and used == 12


def test_every_option_compress_records_is_documented() -> None:
    """The `options` table of docs/format.md §3.1 lists exactly what `compress` writes."""
    from xorc.config import CompressOptions

    section = FORMAT_MD.split("#### `options`", 1)[1].split("\n### ", 1)[0]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
    assert documented == {*CompressOptions().to_json(), "config_sha256"}
