"""Architecture rules, checked: who may import what (README.md, "Where things live")."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "xorc"
ENCODER_MODULES = ("encode", "solve", "kmeans", "huffman_build", "core_encode", "weights_encode")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_onnx_io_imports_onnx() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "onnx_io.py"
        and any(n == "onnx" or n.startswith("onnx.") for n in imports_of(p))
    ]
    assert offenders == []


def test_decoding_loads_no_encoder() -> None:
    code = (
        "import json, sys\n"
        "import xorc.codecs.decoders, xorc.decode, xorc.format, xorc.report\n"
        "from xorc.codecs.registry import CODECS\n"
        "decoders = [spec.decode.load() for spec in CODECS.values()]  # hooks load lazily\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('xorc'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.rsplit(".", 1)[-1] in ENCODER_MODULES]
    assert bad == [], bad


def test_numba_is_optional_and_loaded_only_to_parse() -> None:
    """Only parse_jit imports numba, and only when a BPC stream is parsed: importing the
    package, the CLI or the EBPC decoder does not load it."""
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "parse_jit.py" and any(n.split(".")[0] == "numba" for n in imports_of(p))
    ]
    assert offenders == []
    code = (
        "import sys, xorc.api, xorc.cli, xorc.codecs.ebpc.core_decode\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    assert out.stdout.strip() == "False"


def test_inspect_does_not_load_onnxruntime() -> None:
    code = "import sys, xorc.api, xorc.cli\nprint('onnxruntime' in sys.modules)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    assert out.stdout.strip() == "False"
