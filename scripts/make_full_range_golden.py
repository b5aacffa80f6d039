"""Golden and malformed blobs of the full 8-bit range (docs/format.md §4.1 raw `full_range`,
§2.4 `FULL_RANGE`): `tests/golden/containers/tiny_full_range.xorc`, a uint8 QDQ Conv weight
whose channels use all 256 values on every axis, with its levels and its stored integers, and
the malformed cases, added to `tests/golden/malformed/manifest.json`. Run from the repository
root:

    PYTHONPATH=$PWD python scripts/make_full_range_golden.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from make_golden import add_malformed, sections, with_section, with_tensors
from weight_models import qdq_uint8_conv

from xorc import api
from xorc.config import CompressOptions
from xorc.decode import decode_levels
from xorc.format import read_bytes, read_file, v1
from xorc.prequant import decode

GOLDEN = Path("tests/golden")


def golden() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "qdq.onnx"
        onnx.save(qdq_uint8_conv(full_range=True)[0], model)
        api.compress(model, Path(tmp) / "b.xorc", CompressOptions(policy="raw"), None, None, None)
        return read_file(Path(tmp) / "b.xorc")


def cases(blob: bytes) -> dict[str, tuple[bytes, str]]:
    def edit(fn):  # type: ignore[no-untyped-def]
        return lambda tensors: fn(tensors[0])

    flags = v1.read_layout(blob).required_flags & ~v1.FULL_RANGE
    return {
        "full_range_flag_clear": (with_section(blob, 2, sections(blob)[1][2], flags), "BadRecord"),
        "full_range_without_offsets": (
            with_tensors(blob, edit(lambda t: t.pop("offsets"))),
            "BadRecord",
        ),
        "full_range_not_bool": (
            with_tensors(blob, edit(lambda t: t["params"].update(full_range=1))),
            "BadRecord",
        ),
    }


def main() -> None:
    blob = golden()
    (GOLDEN / "containers" / "tiny_full_range.xorc").write_bytes(blob)
    container = read_bytes(blob)
    (rec,) = container.tensors
    levels = decode_levels(container, rec)
    stored = decode(levels, container.scales(rec), rec.offsets, rec.axis, rec.dtype)
    doc = {"levels": levels.ravel().tolist(), "integers": stored.ravel().tolist()}
    (GOLDEN / "containers" / "tiny_full_range.levels.json").write_text(json.dumps(doc) + "\n")
    add_malformed(cases(blob))
    assert v1.read_layout(blob).required_flags & v1.FULL_RANGE and levels.min() == -128
    print(f"wrote tiny_full_range.xorc ({len(blob)} bytes) and {len(cases(blob))} malformed blobs")


if __name__ == "__main__":
    main()
