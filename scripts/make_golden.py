"""Regenerate tests/golden/containers/ and tests/golden/malformed/ (format version 1.1).

    python scripts/make_golden.py [--xor-v2 | --xor-v3]

The valid blob is made from tests/models.py's tiny_cnn with policy `raw`; each malformed blob is
that blob with one defect (the `xor_v2_*` ones: tiny_cnn with XOR variant 2, one defect of a
variant-2 record; `--xor-v2` rewrites only those; `xor_v3_*` likewise for variant 3 and
`--xor-v3`), listed in
tests/golden/malformed/manifest.json with the error class the reader must raise. Only rerun
on a deliberate format change (docs/format.md, "Version changes"), and review the diff.
`tiny_raw_v1_0.xorc` (and its levels) is a version 1.0 file kept from before 1.1, for the
compatibility test; this script does not touch it.
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import models  # noqa: E402

from xorc.config import CompressOptions  # noqa: E402
from xorc.format import Container, v1  # noqa: E402
from xorc.format.container import dumps  # noqa: E402
from xorc.pipeline import compress_model  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"


def fix_header(data: bytearray) -> bytearray:
    """Recompute table and header CRC (so that a deeper check is the one that fails)."""
    count = struct.unpack_from("<I", data, 32)[0]
    table = bytes(data[64 : 64 + 32 * count])
    struct.pack_into("<I", data, 36, zlib.crc32(table))
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))
    return data


def sections(blob: bytes) -> list[tuple[int, int, bytes]]:
    layout = v1.read_layout(blob)
    return [(s.kind, s.flags, blob[s.offset : s.offset + s.length]) for s in layout.sections]


def with_section(blob: bytes, kind: int, body: bytes, required_flags: int | None = None) -> bytes:
    """The blob with one section's body replaced (and the header's required flags, if given)."""
    flags = v1.read_layout(blob).required_flags if required_flags is None else required_flags
    bodies = [(k, f, body if k == kind else b) for k, f, b in sections(blob)]
    return v1.write_sections(bodies, flags)


def add_malformed(cases: dict[str, tuple[bytes, str]]) -> None:
    """Write malformed blobs into tests/golden/malformed and their errors into its manifest."""
    folder = GOLDEN / "malformed"
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, (data, error) in cases.items():
        (folder / f"{name}.xorc").write_bytes(data)
        manifest[f"{name}.xorc"] = error
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def with_tensors(blob: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    doc = json.loads(sections(blob)[1][2])
    edit(doc["tensors"])
    return with_section(blob, 2, dumps(doc))


def malformed(blob: bytes) -> dict[str, tuple[bytes, str]]:
    b = bytearray(blob)
    out: dict[str, tuple[bytes, str]] = {}

    def case(name: str, data: bytes | bytearray, error: str) -> None:
        out[name] = (bytes(data), error)

    case("empty", b"", "BadMagic")
    case("bad_magic", b"\x88" + blob[1:], "BadMagic")
    case("text_mode_crlf", blob[:5] + b"\n" + blob[7:], "BadMagic")
    case(
        "version_2",
        fix_header(bytearray(b[:8] + struct.pack("<H", 2) + b[10:])),
        "UnsupportedVersion",
    )
    bad = bytearray(b)
    bad[45] = 1
    case("header_crc", bad, "HeaderChecksumMismatch")
    case("reserved_set", fix_header(bytearray(bad)), "BadSectionTable")
    bad = bytearray(b)
    struct.pack_into("<I", bad, 16, 1 << 7)  # bits 0 to 3 are the known flags (§2.4)
    case("required_flag_unknown", fix_header(bad), "BadSectionTable")
    case("truncated_footer", blob[:-1], "Truncated")
    case("truncated_half", blob[: len(blob) // 2], "Truncated")
    case("trailing_byte", blob + b"\0", "TrailingBytes")
    bad = bytearray(b)
    bad[64 + 24] ^= 0xFF
    case("table_crc", bad, "HeaderChecksumMismatch")
    bad = bytearray(b)
    struct.pack_into("<Q", bad, 64 + 8, struct.unpack_from("<Q", b, 64 + 8)[0] + 64)
    case("section_offset_hole", fix_header(bad), "BadSectionTable")
    bad = bytearray(b)
    struct.pack_into("<I", bad, 64 + 32, 1)
    case("duplicate_kind", fix_header(bad), "BadSectionTable")
    bad = bytearray(b)
    struct.pack_into("<II", bad, 64 + 32, 99, 1)
    case("unknown_required_kind", fix_header(bad), "BadSectionTable")
    bad = bytearray(b)
    struct.pack_into("<Q", bad, 64 + 16, 2**63)
    case("section_length_huge", fix_header(bad), "BadSectionTable")
    bad = bytearray(b)
    struct.pack_into("<I", bad, 20, 99)  # 99 sections: the table would run past the file
    struct.pack_into("<I", bad, 32, 60)
    case("section_count_large", fix_header(bad), "BadSectionTable")
    struct.pack_into("<I", bad, 32, 0)
    case("section_count_zero", fix_header(bad), "BadSectionTable")
    layout = v1.read_layout(blob)
    payload = layout.sections[3]
    bad = bytearray(b)
    bad[payload.offset + 5] ^= 0x10
    case("payload_bit_flip", bad, "SectionChecksumMismatch")
    bad = bytearray(b)
    bad[-3] ^= 1
    case("footer_flip", bad, "FileDigestMismatch")
    bad = bytearray(b)
    pad_at = layout.sections[0].offset - 1
    bad[pad_at] = 7
    case("nonzero_padding", fix_header(bad), "BadSectionTable")
    case("meta_not_json", with_section(blob, 1, b"{not json"), "BadRecord")
    case("meta_nan", with_section(blob, 1, b'{"format":NaN}'), "BadRecord")
    case(
        "meta_duplicate_key", with_section(blob, 1, b'{"format":"xorc","format":"x"}'), "BadRecord"
    )
    case("tensors_not_object", with_section(blob, 2, b"[1,2]"), "BadRecord")

    def edit(field: str, value: object, index: int = 0):  # type: ignore[no-untyped-def]
        def apply(tensors: list[dict]) -> None:
            tensors[index][field] = value

        return apply

    record_cases = {
        "record_negative_dim": edit("shape", [-1, 1, 3, 3]),
        "record_rank_9": edit("shape", [1] * 9),
        "record_n_weights_mismatch": edit("n_weights", 7),
        "record_bits_9": edit("bits", 9),
        "record_axis_out_of_range": edit("axis", 4),
        "record_bad_digest": edit("digest", "xyz"),
        "record_bad_dtype": edit("dtype", "complex64"),
        "record_name_empty": edit("name", ""),
        "record_params_not_object": edit("params", [1]),
        "record_huge_shape": edit("shape", [2**31 - 1, 2**31 - 1, 2]),
    }
    for name, fn in record_cases.items():
        case(name, with_tensors(blob, fn), "BadRecord")

    def dup_name(tensors: list[dict]) -> None:
        tensors[1]["name"] = tensors[0]["name"]

    case("record_duplicate_name", with_tensors(blob, dup_name), "BadRecord")

    def shift_stream(tensors: list[dict]) -> None:
        tensors[0]["streams"][1]["offset"] += 8

    case("record_stream_offset", with_tensors(blob, shift_stream), "BadRecord")

    def scales_length(tensors: list[dict]) -> None:
        tensors[0]["streams"][0]["length"] = 4

    case("record_scales_length", with_tensors(blob, scales_length), "BadRecord")
    case("record_unknown_codec", with_tensors(blob, edit("codec", 77)), "BadRecord")
    case(
        "record_scale_dtype_float64",
        with_tensors(blob, edit("scale_dtype", "float64")),
        "BadRecord",
    )
    # bfloat16 scales read as float32: the scales stream is half the length float32 needs
    case(
        "record_scale_dtype_mismatch",
        with_tensors(blob, edit("scale_dtype", "float32")),
        "BadRecord",
    )
    tensors_body = sections(blob)[1][2]
    case("bf16_scales_flag_clear", with_section(blob, 2, tensors_body, 0), "BadRecord")

    def short_stream(tensors: list[dict]) -> None:
        last = tensors[-1]["streams"][-1]
        last["length"] -= 1

    case("stream_short_nonzero_padding", with_tensors(blob, short_stream), "BadRecord")
    case(
        "codec_params_inconsistent",
        with_tensors(blob, edit("params", {"masked": False})),
        "CorruptStream",
    )
    case("codec_param_wrong_type", with_tensors(blob, edit("params", {"masked": 1})), "BadRecord")
    return out


V2_OPTIONS = CompressOptions(policy="all", xor_variant=2, sparsity=0.75, bits=4)
"""tiny_cnn with these options: three XOR variant-2 records (docs/codecs/xor.md §11)."""


def malformed_xor_v2(blob: bytes) -> dict[str, tuple[bytes, str]]:
    """Defects of the variant-2 keys of record 1 (`w2`: 4 planes, stages 2, stream_len 12)."""

    def edit(change):  # type: ignore[no-untyped-def]
        def apply(tensors: list[dict]) -> None:
            change(tensors[1]["params"])

        return apply

    changes = {
        "stages_zero": lambda p: p["stages"].__setitem__(0, 0),
        "window_over_64": lambda p: p["stages"].__setitem__(0, 3),  # 3 x 31 bits
        "invert_2": lambda p: p["invert"].__setitem__(1, 2),
        "stream_len_zero": lambda p: p.__setitem__("stream_len", 0),
        "stream_len_huge": lambda p: p.__setitem__("stream_len", 2**40),
        "stages_short": lambda p: p["stages"].pop(),
        "no_stream_len": lambda p: p.pop("stream_len"),
        "variant_3": lambda p: p.__setitem__("variant", 3),
    }
    out = {f"xor_v2_{k}": (with_tensors(blob, edit(c)), "BadRecord") for k, c in changes.items()}
    # a plane without seeds: the seeds stream is longer than the record says
    no_seeds = edit(lambda p: p["n_in"].__setitem__(0, 0))
    out["xor_v2_seeds_length"] = (with_tensors(blob, no_seeds), "CorruptStream")
    return out


V3_OPTIONS = CompressOptions(policy="all", xor_variant=3, sparsity=0.75, bits=4)
"""tiny_cnn with these options: XOR variant-3 records (docs/codecs/xor.md §12)."""


def malformed_xor_v3(blob: bytes) -> dict[str, tuple[bytes, str]]:
    """Defects of the variant-3 keys of record 1 (`w2`)."""

    def edit(change):  # type: ignore[no-untyped-def]
        def apply(tensors: list[dict]) -> None:
            change(tensors[1]["params"])

        return apply

    changes = {
        "rate_without_register": lambda p: p["n_in"].__setitem__(0, 0),
        "register_without_rate": lambda p: p["rate"].__setitem__(0, 0),
        "rate_huge": lambda p: p["rate"].__setitem__(0, 16385),
        "rate_short": lambda p: p["rate"].pop(),
        "no_rate": lambda p: p.pop("rate"),
        "stages_instead_of_rate": lambda p: p.__setitem__("stages", p.pop("rate")),
        "stream_len_zero": lambda p: p.__setitem__("stream_len", 0),
    }
    out = {f"xor_v3_{k}": (with_tensors(blob, edit(c)), "BadRecord") for k, c in changes.items()}
    # a lower rate: the seeds stream is longer than the mask-derived widths say
    lower = edit(lambda p: p["rate"].__setitem__(0, max(1, p["rate"][0] // 2)))
    out["xor_v3_seeds_length"] = (with_tensors(blob, lower), "CorruptStream")
    return out


def compress_tiny(options: CompressOptions) -> Container:
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "tiny.onnx"
        onnx.save(models.tiny_cnn(), model_path)
        return compress_model(model_path, options)


def write_xor_only(variant: int) -> None:
    """`--xor-v2` / `--xor-v3`: (re)write only the xor_v<variant>_* malformed blobs and their
    manifest entries."""
    mdir = GOLDEN / "malformed"
    manifest = json.loads((mdir / "manifest.json").read_text())
    for old in mdir.glob(f"xor_v{variant}_*.xorc"):
        old.unlink()
        manifest.pop(old.name, None)
    make, options = (
        (malformed_xor_v2, V2_OPTIONS) if variant == 2 else (malformed_xor_v3, V3_OPTIONS)
    )
    for name, (data, error) in make(v1.write(compress_tiny(options))).items():
        (mdir / f"{name}.xorc").write_bytes(data)
        manifest[f"{name}.xorc"] = error
    (mdir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote the xor_v{variant} malformed blobs; manifest has {len(manifest)} entries")


def main() -> None:
    if sys.argv[1:] in (["--xor-v2"], ["--xor-v3"]):
        write_xor_only(int(sys.argv[1][-1]))
        return
    container = compress_tiny(CompressOptions(policy="raw"))
    blob = v1.write(container)
    (GOLDEN / "containers").mkdir(parents=True, exist_ok=True)
    (GOLDEN / "containers" / "tiny_raw.xorc").write_bytes(blob)
    levels = {}
    for t in container.tensors:
        from xorc.decode import decode_levels

        levels[t.name] = decode_levels(container, t).ravel().tolist()
    (GOLDEN / "containers" / "tiny_raw.levels.json").write_text(json.dumps(levels) + "\n")
    mdir = GOLDEN / "malformed"
    mdir.mkdir(parents=True, exist_ok=True)
    for old in mdir.glob("*.xorc"):
        old.unlink()
    manifest = {}
    cases = {
        **malformed(blob),
        **malformed_xor_v2(v1.write(compress_tiny(V2_OPTIONS))),
        **malformed_xor_v3(v1.write(compress_tiny(V3_OPTIONS))),
    }
    for name, (data, error) in sorted(cases.items()):
        (mdir / f"{name}.xorc").write_bytes(data)
        manifest[f"{name}.xorc"] = error
    (mdir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(manifest)} malformed blobs and tiny_raw.xorc ({len(blob)} bytes)")


if __name__ == "__main__":
    main()
