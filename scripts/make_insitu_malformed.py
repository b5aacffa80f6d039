"""Regenerate tests/golden/malformed/insitu/: hostile records of codec `insitu`.

    PYTHONPATH=$PWD python scripts/make_insitu_malformed.py

The valid blob is tests/models.py's tiny_cnn compressed with policy `insitu` and the forced
setting 1,2,4,4,4 (every weight generated: the conv and both matrices at level 2); each
malformed blob is that blob with one insitu record edited past the checksums, listed in
`manifest.json` with the error class the reader must raise (docs/codecs/insitu.md §2-§5).
Only rerun on a deliberate format change, and review the diff.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import models  # noqa: E402
from make_golden import with_tensors  # noqa: E402

from xorc.config import CompressOptions  # noqa: E402
from xorc.format import v1  # noqa: E402
from xorc.pipeline import compress_model  # noqa: E402

OUT = ROOT / "tests" / "golden" / "malformed" / "insitu"


def _params(index: int, **changes: object):  # type: ignore[no-untyped-def]
    def apply(tensors: list[dict]) -> None:
        tensors[index]["params"] = {**tensors[index]["params"], **changes}

    return apply


def _grow(tensors: list[dict]) -> None:
    """A record declaring far more weights than its streams may expand to (64 per bit)."""
    t = tensors[2]
    t["shape"] = [t["shape"][0], 4096 * 1024]
    t["n_weights"] = t["shape"][0] * t["shape"][1]


def cases(blob: bytes) -> dict[str, tuple[bytes, str]]:
    edits = {
        "insitu_bo_zero": (_params(0, bo=0), "BadRecord"),
        "insitu_bo_above_rank": (_params(2, bo=11), "BadRecord"),
        "insitu_bi_on_matrix": (_params(2, bi=1, qu=4), "BadRecord"),
        "insitu_qu_without_level1": (_params(2, qu=4), "BadRecord"),
        "insitu_shift_63": (_params(0, shift=63), "BadRecord"),
        "insitu_mbits_bool": (_params(0, mbits=True), "BadRecord"),
        "insitu_unknown_param": (_params(0, scale=1), "BadRecord"),
        "insitu_bo_short_streams": (_params(2, bo=1), "CorruptStream"),
        "insitu_qv_wider": (_params(2, qv=8), "CorruptStream"),
        "insitu_expansion": (_grow, "CorruptStream"),
    }
    return {name: (with_tensors(blob, fn), err) for name, (fn, err) in edits.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "tiny.onnx"
        onnx.save(models.tiny_cnn(), model_path)
        options = CompressOptions(policy="insitu", insitu_config="1,2,4,4,4")
        container = compress_model(model_path, options)
    assert {t.codec_name for t in container.tensors} == {"insitu"}
    blob = v1.write(container)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tiny_insitu.xorc").write_bytes(blob)
    manifest = {}
    for name, (data, error) in sorted(cases(blob).items()):
        (OUT / f"{name}.xorc").write_bytes(data)
        manifest[f"{name}.xorc"] = error
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(manifest)} malformed insitu blobs")


if __name__ == "__main__":
    main()
