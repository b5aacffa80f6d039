"""Golden and malformed blobs of issue 19 (pow2 scales, aligned pruning; docs/format.md §3.4,
§3.6): `tests/golden/containers/tiny_crossbar_packed.xorc` (structure `coded` "present") with
its levels, and the malformed cases, added to `tests/golden/malformed/manifest.json`. The first
vector, `tiny_crossbar.xorc` (written before `coded`: the codec codes the whole tensor), is kept
as it is, so old blobs keep decoding; its malformed cases are derived from it again. Run from
the repository root:

    PYTHONPATH=$PWD python scripts/make_crossbar_golden.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from make_golden import dumps, sections, with_section, with_tensors
from models import tiny_cnn

from xorc import api
from xorc.config import CompressOptions
from xorc.decode import decode_levels
from xorc.format import read_bytes, read_file, v1

GOLDEN = Path("tests/golden")
OPTIONS = CompressOptions(
    policy="raw", sparsity=0.5, prune_structure="crossbar", crossbar="crossbar-64-slc",
    scale_dtype="pow2", bias_correction=False,
)  # fmt: skip


def golden() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny_cnn.onnx"
        onnx.save(tiny_cnn(), model)
        api.compress(model, Path(tmp) / "b.xorc", OPTIONS, None, None, None)
        return read_file(Path(tmp) / "b.xorc")


def cases(blob: bytes) -> dict[str, tuple[bytes, str]]:
    doc = json.loads(sections(blob)[1][2])
    i = next(k for k, t in enumerate(doc["tensors"]) if "structure" in t)

    def edit(fn):  # type: ignore[no-untyped-def]
        return lambda tensors: fn(tensors[i])

    def drop_presence(t: dict) -> None:
        t["streams"] = [s for s in t["streams"] if s["name"] != "presence"]

    out = {
        "pow2_scales_flag_clear": (with_section(blob, 2, sections(blob)[1][2], 0), "BadRecord"),
        "structure_bad_kind": (
            with_tensors(blob, edit(lambda t: t["structure"].update(kind="row"))),
            "BadRecord",
        ),
        "structure_kernel_not_dividing": (
            with_tensors(blob, edit(lambda t: t["structure"].update(kernel=5))),
            "BadRecord",
        ),
        "presence_without_structure": (
            with_tensors(blob, edit(lambda t: t.pop("structure"))),
            "BadRecord",
        ),
    }
    doc2 = json.loads(sections(blob)[1][2])
    drop_presence(doc2["tensors"][i])
    stripped = with_section(blob, 2, dumps(doc2))
    out["structure_without_presence"] = (stripped, "BadRecord")
    container = read_bytes(blob)
    rec = container.tensors[i]
    ref = next(s for s in rec.streams if s.name == "presence")
    payload = bytearray(container.payload)
    payload[ref.offset] = 0  # every unit absent, though the levels hold nonzeros
    out["presence_marks_nonzero_absent"] = (with_section(blob, 4, bytes(payload)), "CorruptStream")
    return out


def packed_cases(blob: bytes) -> dict[str, tuple[bytes, str]]:
    """Malformed blobs of `coded` "present": a bad value, and bitmaps that disagree with the
    coded vector (every unit present, none present: P is no longer the vector's length)."""
    doc = json.loads(sections(blob)[1][2])
    i = next(k for k, t in enumerate(doc["tensors"]) if t.get("structure", {}).get("coded"))
    container = read_bytes(blob)
    ref = next(s for s in container.tensors[i].streams if s.name == "presence")
    out = {
        "packed_coded_bad_value": (
            with_tensors(blob, lambda ts: ts[i]["structure"].update(coded="some")),
            "BadRecord",
        )
    }
    for name, byte in (("packed_presence_all", 0xFF), ("packed_presence_none", 0x00)):
        payload = bytearray(container.payload)
        payload[ref.offset] = byte
        out[name] = (with_section(blob, 4, bytes(payload)), "CorruptStream")
    return out


def main() -> None:
    old = (GOLDEN / "containers" / "tiny_crossbar.xorc").read_bytes()
    blob = golden()
    (GOLDEN / "containers" / "tiny_crossbar_packed.xorc").write_bytes(blob)
    container = read_bytes(blob)
    assert any(
        t.structure is not None and t.structure.coded == "present" for t in container.tensors
    )
    levels = {t.name: decode_levels(container, t).ravel().tolist() for t in container.tensors}
    out = GOLDEN / "containers" / "tiny_crossbar_packed.levels.json"
    out.write_text(json.dumps(levels) + "\n")
    manifest_path = GOLDEN / "malformed" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    made = {**cases(old), **packed_cases(blob)}
    for name, (data, error) in made.items():
        (GOLDEN / "malformed" / f"{name}.xorc").write_bytes(data)
        manifest[f"{name}.xorc"] = error
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    assert v1.read_layout(blob).required_flags & v1.POW2_SCALES
    print(f"wrote tiny_crossbar_packed.xorc ({len(blob)} bytes) and {len(made)} malformed blobs")


if __name__ == "__main__":
    main()
