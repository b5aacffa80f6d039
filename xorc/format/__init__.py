"""Reading and writing blobs: magic and version first, then the version's own module.

Writers emit only the newest version (`v1`). See docs/format.md.
"""

from __future__ import annotations

import errno
import glob
import mmap
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from xorc.errors import OutOfSpace, UsageError
from xorc.format import v1
from xorc.format.container import Container, StreamRef, TensorRecord, levels_digest

__all__ = [
    "Container",
    "StreamRef",
    "TensorRecord",
    "atomic_output",
    "levels_digest",
    "map_file",
    "read_blob",
    "read_bytes",
    "write_blob",
]


def read_bytes(data: bytes) -> Container:
    """Validate and parse a blob held in memory."""
    return v1.read(data)


def read_blob(path: str | os.PathLike[str]) -> Container:
    """Validate and parse the blob at `path` (memory-mapped: streams are read when decoded)."""
    return v1.read(map_file(path))


def map_file(path: str | os.PathLike[str]) -> memoryview | bytes:
    """The file's bytes, memory-mapped read-only (an empty file: empty bytes), with a usage
    error naming it when it cannot be read. Pages are read as they are touched."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file, with a usage error naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def write_blob(container: Container, path: str | os.PathLike[str]) -> int:
    """Write a blob atomically (temporary file in the same folder, then rename).

    Returns the number of bytes written.
    """
    with atomic_output(path) as (f, _):
        return v1.write_to(container, f)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove `.NAME.PID.*.tmp` files next to `target` left by a writer that was killed (its
    process no longer runs); returns them. Another live writer's file is left alone."""
    removed = []
    try:
        candidates = list((target.parent or Path(".")).glob(f".{glob.escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        pid = tmp.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename; never a half-written file."""
    with atomic_output(path) as (f, _):
        f.write(data)


def write_error(path: str | os.PathLike[str], exc: OSError) -> UsageError:
    """The one-line error of a failed write: OutOfSpace for a full disk (or quota)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutOfSpace(f"{path}: cannot write: no space left on device; nothing was written")
    return UsageError(f"{path}: cannot write ({exc.strerror or exc})")


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary file next to `path` (and its path), renamed onto `path` when the block ends;
    removed when it raises (a full disk: OutOfSpace), so no partial output is ever left."""
    target = Path(path)
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent or "."
        )
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
