"""Hostile models and data files: each gets its exit code (5 for a model, 2 for data), one line
naming the file and the tensor or input, and no file written (README.md, "Exit codes")."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from models import tiny_cnn, tiny_inputs
from onnx import numpy_helper

from xorc.cli import cli


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stderr


def one_line(err: str, *words: str) -> None:
    assert err.startswith("xorc: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "Warning" not in err, err
    for w in words:
        assert w in err, err


def with_weight(name: str, array: np.ndarray) -> onnx.ModelProto:
    model = tiny_cnn()
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name))
    return model


def compress_fails(tmp_path: Path, model: onnx.ModelProto, code: int, *words: str) -> None:
    src = tmp_path / "m" / "model.onnx"
    src.parent.mkdir(exist_ok=True)
    if not src.exists():
        onnx.save(model, src)
    out = tmp_path / "out.xorc"
    got, err = run("compress", src, "-o", out, "--policy", "raw")
    assert got == code, err
    one_line(err, *words)
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def _external(tmp_path: Path) -> onnx.ModelProto:
    """tiny_cnn with every initializer in m/data/w.bin."""
    folder = tmp_path / "m"
    (folder / "data").mkdir(parents=True)
    model = tiny_cnn()
    onnx.save(
        model,
        folder / "model.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="data/w.bin",
        size_threshold=0,
    )
    return onnx.load(folder / "model.onnx", load_external_data=False)


def _set_entry(model: onnx.ModelProto, key: str, value: str) -> onnx.ModelProto:
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == key:
                entry.value = value
    return model


def test_external_data_in_a_symlinked_directory_outside_is_refused(tmp_path: Path) -> None:
    model = _external(tmp_path)
    outside = tmp_path / "outside"
    (tmp_path / "m" / "data").rename(outside)
    os.symlink(outside, tmp_path / "m" / "data")  # m/data -> ../outside
    onnx.save(model, tmp_path / "m" / "model.onnx")
    compress_fails(tmp_path, model, 5, "model.onnx", "outside the model's folder")


def test_external_data_in_a_symlinked_directory_inside_is_read(tmp_path: Path) -> None:
    model = _external(tmp_path)
    (tmp_path / "m" / "data").rename(tmp_path / "m" / "real")
    os.symlink("real", tmp_path / "m" / "data")
    onnx.save(model, tmp_path / "m" / "model.onnx")
    got, err = run("compress", tmp_path / "m" / "model.onnx", "-o", tmp_path / "o.xorc")
    assert got == 0, err


def test_external_data_length_beyond_the_file_is_refused_unread(tmp_path: Path) -> None:
    model = _set_entry(_external(tmp_path), "length", str(6 << 30))
    onnx.save(model, tmp_path / "m" / "model.onnx")
    compress_fails(tmp_path, model, 5, "w1", "outside")


def test_small_tensor_in_a_huge_sparse_file_reads_only_its_range(tmp_path: Path) -> None:
    model = _external(tmp_path)
    with open(tmp_path / "m" / "data" / "w.bin", "r+b") as f:
        f.truncate(3 << 30)  # sparse: no disk space, and never read whole
    onnx.save(model, tmp_path / "m" / "model.onnx")
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got, err = run("compress", tmp_path / "m" / "model.onnx", "-o", tmp_path / "o.xorc")
    assert got == 0, err
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1 << 20  # KB: 1 GB


def test_zero_size_weight(tmp_path: Path) -> None:
    """A weight with no elements is not compressed: it travels unchanged in the graph."""
    model = tiny_cnn()
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((16, 0), np.float32), "e"))
    node = onnx.helper.make_node("MatMul", ["f0", "e"], ["g0"], name="empty_mm")
    model.graph.node.append(node)
    src, out = tmp_path / "z.onnx", tmp_path / "z.xorc"
    onnx.save(model, src)
    got, err = run("compress", src, "-o", out, "--policy", "raw")
    assert got == 0, err
    got, err = run("verify", out)
    assert got == 0, err


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weight_is_refused_by_name(tmp_path: Path, bad: float) -> None:
    w = tiny_cnn().graph.initializer[1]
    array = numpy_helper.to_array(w).copy()
    array[3, 4] = bad
    compress_fails(tmp_path, with_weight(w.name, array), 5, w.name, "NaN or infinite")


def test_negative_dimension_is_refused(tmp_path: Path) -> None:
    model = tiny_cnn()
    model.graph.initializer[1].dims[0] = -1
    compress_fails(tmp_path, model, 5, "w2")


def test_duplicate_initializer_names_exit_5(tmp_path: Path) -> None:
    model = tiny_cnn()
    model.graph.initializer.append(model.graph.initializer[1])
    compress_fails(tmp_path, model, 5, "w2", "twice")


def test_hard_link_to_the_input_as_output_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    onnx.save(tiny_cnn(), src)
    os.link(src, tmp_path / "link.xorc")
    before = src.read_bytes()
    got, err = run("compress", src, "-o", tmp_path / "link.xorc")
    assert got == 2, err
    one_line(err, "link.xorc")
    assert src.read_bytes() == before


# --- .npz data -----------------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _plain_npy(p: Path) -> None:
    p.write_bytes(_npy(tiny_inputs()))


def _pickle_member(p: Path) -> None:
    _zip(p, {"x.npy": _npy(tiny_inputs()), "labels.npy": pickle.dumps([1, 2, 3])})


def _object_array(p: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    _zip(p, {"x.npy": buf.getvalue()})


def _huge_header(p: Path) -> None:
    header = _npy(np.zeros((2, 1, 8, 8), np.float32))
    _zip(p, {"x.npy": header.replace(b"(2, 1, 8, 8)", b"(1000000000000, 1, 8, 8)")})


def _long_header(p: Path) -> None:
    head = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), " + b" " * 200_000 + b"}\n"
    _zip(p, {"x.npy": b"\x93NUMPY\x02\x00" + len(head).to_bytes(4, "little") + head})


def _not_npy_member(p: Path) -> None:
    _zip(p, {"x.npy": _npy(tiny_inputs()), "notes.txt": b"hello"})


def _bool_input(p: Path) -> None:
    np.savez(p, x=tiny_inputs() > 0)


def _wrong_shape(p: Path) -> None:
    np.savez(p, x=np.zeros((40, 1, 9, 8), np.float32))


DATA_CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "plain_npy": (_plain_npy, ("plain .npy",)),
    "pickle_member": (_pickle_member, ("labels.npy",)),
    "object_array": (_object_array, ("x.npy", "pickle")),
    "huge_header": (_huge_header, ("x.npy", "1000000000000")),
    "long_header": (_long_header, ("x.npy",)),
    "not_npy_member": (_not_npy_member, ("notes.txt",)),
    "bool_input": (_bool_input, ("'x'", "bool")),
    "wrong_shape": (_wrong_shape, ("'x'", "[40, 1, 9, 8]", "8, 8]")),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_hostile_data_file_is_a_data_error(tiny_model: Path, tmp_path: Path, case: str) -> None:
    make, words = DATA_CASES[case]
    data = tmp_path / "data.npz"
    make(data)
    blob = tmp_path / "t.xorc"
    assert run("compress", tiny_model, "-o", blob, "--policy", "raw")[0] == 0
    got, err = run("verify", blob, "--model", tiny_model, "--accuracy", "--data", data)
    assert got == 2, err
    one_line(err, "data.npz", *words)
    out = tmp_path / "c.xorc"
    got, err = run("compress", tiny_model, "-o", out, "--calib", data, "--policy", "raw")
    assert got == 2, err
    assert not out.exists()


def test_stale_temporary_files_are_removed(tiny_model: Path, tmp_path: Path) -> None:
    """A writer killed during the rename leaves `.OUT.PID.*.tmp`; the next write removes those
    of processes that no longer run, and leaves a live writer's alone."""
    out = tmp_path / "o.xorc"
    dead = tmp_path / ".o.xorc.4194999.abcd1234.tmp"  # above the largest Linux pid
    live = tmp_path / f".o.xorc.{os.getppid()}.efgh5678.tmp"
    other = tmp_path / ".p.xorc.4194999.abcd1234.tmp"
    for p in (dead, live, other):
        p.write_bytes(b"partial")
    got, err = run("compress", tiny_model, "-o", out, "--policy", "raw")
    assert got == 0, err
    assert not dead.exists() and live.exists() and other.exists()
    assert [p.name for p in tmp_path.glob(".o.xorc.*.tmp")] == [live.name]
