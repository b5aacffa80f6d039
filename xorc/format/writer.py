"""Container version 1, writing: header, section table, sections and footer laid out as
docs/format.md §2 says, large sections streamed in chunks (§6)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from typing import BinaryIO

from xorc.format import records
from xorc.format.container import Container, dumps
from xorc.format.v1 import (
    BF16_SCALES,
    ENTRY,
    FLAG_REQUIRED,
    FOOTER_SIZE,
    FULL_RANGE,
    GROUP_SCALES,
    HEADER,
    INT_OFFSETS,
    MAGIC,
    POW2_SCALES,
    VERSION,
    Body,
    Kind,
    _align,
    _chunks,
    crc32_of,
)


def write(container: Container) -> bytes:
    """Serialize a container in memory (writers emit only the newest version)."""
    out = io.BytesIO()
    write_to(container, out)
    return out.getvalue()


def write_to(container: Container, out: BinaryIO) -> int:
    """Write a container to a file object, section by section: the PAYLOAD (which may be a
    memory map) is read twice in chunks (its CRC, then the copy), never held as one `bytes`;
    the footer's SHA-256 is taken as the bytes go out. Returns the bytes written. The layout is
    the one `write` produces (docs/format.md §2)."""
    bodies, flags = _bodies(container)
    return write_sections_to(bodies, out, flags)


def _bodies(container: Container) -> tuple[list[tuple[int, int, Body]], int]:
    bodies: list[tuple[int, int, Body]] = [
        (Kind.META, FLAG_REQUIRED, dumps(container.meta)),
        (Kind.TENSORS, FLAG_REQUIRED, dumps({"tensors": [t.to_json() for t in container.tensors]})),
        (Kind.GRAPH, FLAG_REQUIRED, container.graph),
        (Kind.PAYLOAD, FLAG_REQUIRED, container.payload),
    ]
    if container.fmap is not None:
        bodies.append((Kind.FMAP, 0, dumps(container.fmap)))
    bf16 = any(t.scale_dtype == "bfloat16" for t in container.tensors)
    offsets = any(t.offsets is not None for t in container.tensors)
    pow2 = any(t.scale_dtype == "pow2" for t in container.tensors)
    full = any(records.full_range(t) for t in container.tensors)
    groups = any(t.group_size is not None for t in container.tensors)
    flags = (
        (BF16_SCALES if bf16 else 0)
        | (INT_OFFSETS if offsets else 0)
        | (POW2_SCALES if pow2 else 0)
    )
    return bodies, flags | (FULL_RANGE if full else 0) | (GROUP_SCALES if groups else 0)


def write_sections(bodies: list[tuple[int, int, bytes]], required_flags: int = 0) -> bytes:
    """Lay out (kind, flags, bytes) sections with header, table and footer (docs/format.md §2)."""
    out = io.BytesIO()
    write_sections_to(list(bodies), out, required_flags)
    return out.getvalue()


def write_sections_to(
    bodies: list[tuple[int, int, Body]], out: BinaryIO, required_flags: int = 0
) -> int:
    """`write_sections` onto a file object, large bodies in chunks; returns the bytes written."""
    pos = HEADER.size + ENTRY.size * len(bodies)
    entries: list[bytes] = []
    starts: list[int] = []
    for kind, flags, body in bodies:
        start = _align(pos)
        entries.append(ENTRY.pack(kind, flags, start, len(body), crc32_of(body), 0))
        starts.append(start)
        pos = start + len(body)
    footer_at = _align(pos)
    table = b"".join(entries)
    file_size = footer_at + FOOTER_SIZE
    head = HEADER.pack(
        MAGIC,
        *VERSION,
        HEADER.size,
        required_flags,
        0,
        file_size,
        len(bodies),
        zlib.crc32(table),
        b"\0" * 20,
        0,
    )
    head = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    digest = hashlib.sha256()

    def emit(chunk: Body) -> None:
        digest.update(chunk)
        out.write(chunk)

    emit(head + table)
    pos = len(head) + len(table)
    for start, (_, _, body) in zip(starts, bodies, strict=True):
        emit(b"\0" * (start - pos))
        for chunk in _chunks(body, 0, len(body)):
            emit(chunk)
        pos = start + len(body)
    emit(b"\0" * (footer_at - pos))
    out.write(digest.digest())
    return file_size
