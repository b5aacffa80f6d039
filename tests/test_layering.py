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
    onnx_io = PACKAGE / "onnx_io"
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if onnx_io not in p.parents
        and any(n == "onnx" or n.startswith("onnx.") for n in imports_of(p))
    ]
    assert offenders == []
    assert (onnx_io / "__init__.py").is_file()  # the package, not a stray onnx_io.py elsewhere


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
    """Only parse_jit (BPC parsing) and seqsolve_jit (the XOR variant-2 solver) import numba,
    and only when used: importing the package, the CLI, the EBPC decoder or the XOR encoder
    and decoder does not load it."""
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("parse_jit.py", "seqsolve_jit.py")
        and any(n.split(".")[0] == "numba" for n in imports_of(p))
    ]
    assert offenders == []
    code = (
        "import sys, xorc.api, xorc.cli, xorc.codecs.ebpc.core_decode\n"
        "import xorc.codecs.xor.encode, xorc.codecs.xor.decode\n"
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


def top_level_imports(path: Path) -> set[str]:
    """Modules imported when `path` is imported (not those imported inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_bit_exact_path_imports_no_onnx_io_at_load() -> None:
    """The reader, the decoders' driver and verify load onnx_io and runtime only when a model
    is rebuilt or run."""
    paths = [*(PACKAGE / "format").glob("*.py"), PACKAGE / "decode.py", PACKAGE / "verify.py"]
    heavy = {"onnx", "onnxruntime", "xorc.onnx_io", "xorc.runtime"}
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(n for n in top_level_imports(p) if n in heavy)
        for p in paths
    }
    assert {k: v for k, v in offenders.items() if v} == {}


BLOCK_ONNX = """
import importlib.abc, sys

class BlockOnnx(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"{name} is blocked by this test")
        return None

sys.meta_path.insert(0, BlockOnnx())
"""


def run_without_onnx(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter in which importing onnx or onnxruntime fails."""
    return subprocess.run(
        [sys.executable, "-c", BLOCK_ONNX + code],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )


def test_the_onnx_block_works() -> None:
    """The blocker of the next test really blocks (so that test can fail)."""
    proc = run_without_onnx("import xorc.onnx_io\n")
    assert proc.returncode != 0 and "blocked by this test" in proc.stderr


def test_bit_exact_verify_and_inspect_need_no_onnx(tiny_model: Path, tmp_path: Path) -> None:
    """`xorc verify BLOB` (reference decoders and the datapath simulator) and `xorc inspect`
    run with onnx and onnxruntime unimportable, for a blob of every codec."""
    from click.testing import CliRunner

    from xorc.cli import cli

    blobs = [PACKAGE.parent / "tests" / "golden" / "containers" / "tiny_raw.xorc"]
    for policy in ("all", "dictionary", "ebpc"):
        blobs.append(tmp_path / f"{policy}.xorc")
        args = ["compress", str(tiny_model), "-o", str(blobs[-1]), "--policy", policy]
        assert CliRunner().invoke(cli, args).exit_code == 0
    for blob in blobs:
        for command in ("verify", "inspect"):
            proc = run_without_onnx(
                f"sys.argv = ['xorc', {command!r}, {str(blob)!r}, '--json']\n"
                "from xorc.cli import main\nmain()\n"
            )
            assert proc.returncode == 0, (blob.name, command, proc.stderr)
            doc = json.loads(proc.stdout)
            if command == "verify":
                assert doc["bit_exact"] and doc["decoders"] == ["reference", "datapath"]
            else:
                assert doc["integrity_ok"] and doc["tensors"]
