"""Reading an untrusted `.npz` data file: every member's header checked before its array is read.

`np.load` would unpickle object arrays unless told not to, size an array by whatever shape its
header declares, and return a plain array for an `.npy` file given where an `.npz` is expected.
`read_arrays` opens the zip itself, reads each member's `.npy` header with a bounded header
size, refuses object (pickle) dtypes, checks that the declared shape and dtype match the bytes
the member really holds, and only then reads the array (`allow_pickle=False`). Every failure is
a `DataError` (exit code 2) naming the file and the member.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from xorc.errors import DataError

MAX_HEADER_BYTES = 10_000
"""Longest `.npy` header accepted (numpy's own default limit)."""

MAX_ARRAY_BYTES = 4 << 30
"""Largest array, uncompressed, that a data file may hold."""

NPY_MAGIC = b"\x93NUMPY"


def _line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    return " ".join(str(exc).split())[:200]


def _header(fp: IO[bytes], label: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an `.npy` stream, its header bounded and checked."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(fp, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{label}: not an .npy array ({_line(exc)})") from None
    if dtype.hasobject:
        raise DataError(f"{label}: holds Python objects (a pickle); only plain arrays are read")
    return tuple(shape), dtype


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> NDArray[np.generic]:
    label = f"{path}: member {info.filename!r}"
    if not info.filename.endswith(".npy"):
        raise DataError(f"{label} is not an .npy array")
    if info.file_size > MAX_ARRAY_BYTES:
        raise DataError(f"{label} is {info.file_size} bytes, over the {MAX_ARRAY_BYTES} limit")
    with zf.open(info) as fp:
        shape, dtype = _header(fp, label)
        header_end = fp.tell()
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if need != info.file_size - header_end:
            raise DataError(
                f"{label}: header declares shape {list(shape)} of {dtype} ({need} bytes), "
                f"the member holds {info.file_size - header_end}"
            )
    with zf.open(info) as fp:
        try:
            return np.lib.format.read_array(fp, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{label}: cannot read ({_line(exc)})") from None


def read_arrays(path: str | Path) -> dict[str, NDArray[np.generic]]:
    """The arrays of an `.npz` file, keyed by name (the member name without `.npy`).

    Raises:
        DataError: unreadable, not a zip (a plain `.npy` is named as such), a member that is not
            a plain `.npy` array, or whose header does not match its bytes.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head == NPY_MAGIC:
        raise DataError(f"{path}: is a plain .npy file; data must be an .npz (numpy.savez)")
    try:
        with zipfile.ZipFile(path) as zf:
            return {
                info.filename[: -len(".npy")]: _member(zf, info, str(path))
                for info in zf.infolist()
                if not info.is_dir()
            }
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, zlib.error,
            NotImplementedError) as exc:  # fmt: skip
        raise DataError(f"{path}: cannot read as .npz ({_line(exc)})") from None
