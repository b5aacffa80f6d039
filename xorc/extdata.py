"""External-data files of an ONNX model, resolved and read without trusting the model.

A location must be relative, without `..`, and resolve (`os.path.realpath`, so through every
symlinked directory and file) to a regular file inside the model's folder; the offset and
length are checked against the file's size before anything is read, and only that range is
read. `xorc.onnx_io` uses it; nothing here imports onnx.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from xorc.errors import ExternalDataError

CHUNK = 1 << 20


def resolve(base: Path, location: str, where: str) -> Path:
    """The real path of external data `location` of a model in folder `base`.

    Raises:
        ExternalDataError: absolute, `..`, a drive or NUL, a symlinked file, a path resolving
            outside `base`, or no such regular file (`where` names the model and tensor).
    """
    rel = PurePosixPath(location.replace("\\", "/"))
    if (
        not location
        or rel.is_absolute()
        or ".." in rel.parts
        or ":" in location
        or "\0" in location
    ):
        raise ExternalDataError(f"{where} has an unsafe external data path {location!r}")
    root = os.path.realpath(base)
    given = Path(root, *rel.parts)
    real = os.path.realpath(given)
    if os.path.commonpath([root, real]) != root:
        raise ExternalDataError(
            f"{where}: external data {location!r} resolves outside the model's folder"
        )
    if given.is_symlink() or not os.path.isfile(real):
        raise ExternalDataError(f"{where}: external data file {location!r} not found")
    return Path(real)


def file_digest(path: Path, digest: hashlib._Hash) -> int:
    """Feed the whole file to `digest` in chunks (bounded memory); returns its size."""
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size


def read_range(path: Path, offset: str | None, length: str | None, where: str) -> bytes:
    """Bytes `offset` .. `offset + length` of the file (the rest of it without a length),
    checked against its size before reading (`check_range`)."""
    start, count = check_range(path, offset, length, where)
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(count)


def check_range(path: Path, offset: str | None, length: str | None, where: str) -> tuple[int, int]:
    """The (start, count) of `offset` .. `offset + length` (the rest of the file without a
    length), checked against the file's size; nothing is read.

    Raises:
        ExternalDataError: an offset or length that is not a non-negative integer, or a range
            beyond the end of the file.
    """
    size = os.path.getsize(path)
    try:
        start = int(offset) if offset not in (None, "") else 0
        count = int(length) if length not in (None, "") else size - start
    except ValueError:
        raise ExternalDataError(f"{where}: bad external data offset/length") from None
    if start < 0 or count < 0 or start + count > size:
        raise ExternalDataError(
            f"{where}: external data range {start}+{count} outside {path.name!r} ({size} bytes)"
        )
    return start, count
