"""Byte layout of container version 1 (docs/format.md §2, §3, §5).

`write` lays out a `Container`; `read_layout` validates the header, the section table and the
layout (steps 1 to 4 of §5) without looking inside sections; `read` goes on to check every CRC,
the footer and the records (steps 5 and 6).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from xorc.errors import (
    BadMagic,
    BadRecord,
    BadSectionTable,
    FileDigestMismatch,
    HeaderChecksumMismatch,
    SectionChecksumMismatch,
    TrailingBytes,
    Truncated,
    UnsupportedVersion,
)
from xorc.format.container import Container, dumps, loads, parse_meta, parse_tensors

MAGIC = b"\x89XORC\r\n\x1a"
VERSION = (1, 1)
HEADER = struct.Struct("<8sHHIIIQII20sI")  # docs/format.md §2.1
ENTRY = struct.Struct("<IIQQII")  # docs/format.md §2.2
FOOTER_SIZE = 32
SECTION_ALIGN = 64
MAX_SECTIONS = 64
FLAG_REQUIRED = 1  # section entry flag (§2.2)
BF16_SCALES = 1  # header required flag bit 0 (§2.4)
KNOWN_REQUIRED_FLAGS = BF16_SCALES
assert HEADER.size == 64 and ENTRY.size == 32


class Kind(IntEnum):
    """Section kinds (docs/format.md §3)."""

    META = 1
    TENSORS = 2
    GRAPH = 3
    PAYLOAD = 4
    FMAP = 5


REQUIRED_KINDS = (Kind.META, Kind.TENSORS, Kind.GRAPH, Kind.PAYLOAD)
LENGTH_CAP = {
    Kind.META: 1 << 20,
    Kind.TENSORS: 256 << 20,
    Kind.GRAPH: 2 << 30,
    Kind.PAYLOAD: 1 << 40,
    Kind.FMAP: 16 << 20,
}


@dataclass(frozen=True)
class Section:
    """One validated section-table entry."""

    kind: int
    flags: int
    offset: int
    length: int
    crc32: int

    @property
    def name(self) -> str:
        return Kind(self.kind).name if self.kind in Kind._value2member_map_ else f"kind {self.kind}"


@dataclass(frozen=True)
class Layout:
    """Header fields and section table of a file whose layout is valid."""

    version: tuple[int, int]
    file_size: int
    sections: tuple[Section, ...]
    required_flags: int = 0

    def section(self, kind: Kind) -> Section | None:
        return next((s for s in self.sections if s.kind == kind), None)


def _align(x: int) -> int:
    return (x + SECTION_ALIGN - 1) // SECTION_ALIGN * SECTION_ALIGN


def write(container: Container) -> bytes:
    """Serialize a container (writers emit only the newest version)."""
    bodies: list[tuple[int, int, bytes]] = [
        (Kind.META, FLAG_REQUIRED, dumps(container.meta)),
        (Kind.TENSORS, FLAG_REQUIRED, dumps({"tensors": [t.to_json() for t in container.tensors]})),
        (Kind.GRAPH, FLAG_REQUIRED, container.graph),
        (Kind.PAYLOAD, FLAG_REQUIRED, container.payload),
    ]
    if container.fmap is not None:
        bodies.append((Kind.FMAP, 0, dumps(container.fmap)))
    bf16 = any(t.scale_dtype == "bfloat16" for t in container.tensors)
    return write_sections(bodies, BF16_SCALES if bf16 else 0)


def write_sections(bodies: list[tuple[int, int, bytes]], required_flags: int = 0) -> bytes:
    """Lay out (kind, flags, bytes) sections with header, table and footer (docs/format.md §2)."""
    pos = HEADER.size + ENTRY.size * len(bodies)
    entries: list[bytes] = []
    chunks: list[bytes] = []
    for kind, flags, body in bodies:
        start = _align(pos)
        chunks.append(b"\0" * (start - pos))
        chunks.append(body)
        entries.append(ENTRY.pack(kind, flags, start, len(body), zlib.crc32(body), 0))
        pos = start + len(body)
    footer_at = _align(pos)
    chunks.append(b"\0" * (footer_at - pos))
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
    body = head + table + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def read_layout(data: bytes | memoryview) -> Layout:
    """Validate header, section table and layout (docs/format.md §5 steps 1-4)."""
    size = len(data)
    if size < HEADER.size + FOOTER_SIZE:
        if bytes(data[:8]) != MAGIC[: min(8, size)] or size < 8:
            _check_magic(data)
        raise Truncated(f"file is {size} bytes, shorter than the {HEADER.size}-byte header")
    _check_magic(data)
    (_, major, minor, header_size, req_flags, _opt, file_size, count, table_crc, reserved,
     header_crc) = HEADER.unpack_from(data, 0)  # fmt: skip
    if major != VERSION[0]:
        raise UnsupportedVersion(
            f"container version {major}.{minor}; this reader knows {VERSION[0]}.x"
        )
    if zlib.crc32(data[:60]) != header_crc:
        raise HeaderChecksumMismatch("header CRC32 does not match (bytes 0-59 damaged)")
    if header_size != HEADER.size or req_flags & ~KNOWN_REQUIRED_FLAGS or any(reserved):
        raise BadSectionTable(
            f"header: header_size {header_size}, required_flags {req_flags:#x} or reserved bytes "
            "not as version 1 requires"
        )
    if file_size > size:
        raise Truncated(f"file is {size} bytes, header says {file_size}")
    if file_size < size:
        raise TrailingBytes(f"file is {size} bytes, header says {file_size}: trailing bytes")
    if not 1 <= count <= MAX_SECTIONS:
        raise BadSectionTable(f"header: section_count {count} not in [1, {MAX_SECTIONS}]")
    table_end = HEADER.size + ENTRY.size * count
    if table_end + FOOTER_SIZE > size:
        raise Truncated(f"section table of {count} entries runs past the end of the file")
    if zlib.crc32(data[HEADER.size : table_end]) != table_crc:
        raise HeaderChecksumMismatch("section table CRC32 does not match")
    sections = _read_table(data, count, table_end, file_size)
    return Layout((major, minor), file_size, sections, req_flags)


def _check_magic(data: bytes | memoryview) -> None:
    if bytes(data[:8]) != MAGIC:
        raise BadMagic("not an xorc blob (magic bytes do not match)")


def _read_table(
    data: bytes | memoryview, count: int, table_end: int, file_size: int
) -> tuple[Section, ...]:
    sections: list[Section] = []
    pos = table_end
    seen: set[int] = set()
    for i in range(count):
        kind, flags, offset, length, crc, reserved = ENTRY.unpack_from(data, HEADER.size + i * 32)
        where = f"section #{i} (kind {kind})"
        known = kind in Kind._value2member_map_
        if flags & ~FLAG_REQUIRED or reserved:
            raise BadSectionTable(f"{where}: reserved flags or bytes set")
        if not known and flags & FLAG_REQUIRED:
            raise BadSectionTable(f"{where}: unknown required section kind")
        if kind in seen:
            raise BadSectionTable(f"{where}: kind appears twice")
        seen.add(kind)
        if offset != _align(pos):
            raise BadSectionTable(f"{where}: offset {offset}, layout requires {_align(pos)}")
        if known and length > LENGTH_CAP[Kind(kind)]:
            raise BadSectionTable(f"{where}: length {length} over the cap {LENGTH_CAP[Kind(kind)]}")
        if offset + length + FOOTER_SIZE > file_size:
            raise Truncated(f"{where}: ends at {offset + length}, past the end of the file")
        if any(data[pos:offset]):
            raise BadSectionTable(f"{where}: padding before the section is not zero")
        sections.append(Section(kind, flags, offset, length, crc))
        pos = offset + length
    for kind in REQUIRED_KINDS:
        if kind not in seen:
            raise BadSectionTable(f"required section {kind.name} is missing")
    if _align(pos) + FOOTER_SIZE != file_size:
        raise BadSectionTable(
            f"footer must start at {_align(pos)}, file size implies {file_size - FOOTER_SIZE}"
        )
    if any(data[pos : file_size - FOOTER_SIZE]):
        raise BadSectionTable("padding before the footer is not zero")
    return tuple(sections)


def section_crc_ok(data: bytes | memoryview, section: Section) -> bool:
    """Whether a section's bytes match its CRC32."""
    return zlib.crc32(data[section.offset : section.offset + section.length]) == section.crc32


def footer_ok(data: bytes | memoryview, layout: Layout) -> bool:
    """Whether the whole-file SHA-256 in the footer matches."""
    end = layout.file_size - FOOTER_SIZE
    return hashlib.sha256(data[:end]).digest() == bytes(data[end:])


def section_bytes(data: bytes | memoryview, section: Section, check: bool = True) -> bytes:
    """A section's bytes, CRC-checked unless `check` is false."""
    if check and not section_crc_ok(data, section):
        raise SectionChecksumMismatch(f"section {section.name}: CRC32 does not match")
    return bytes(data[section.offset : section.offset + section.length])


def read_records(data: bytes | memoryview, layout: Layout) -> tuple[dict, tuple]:
    """META and the tensor records, CRC-checked and validated, without reading payload bytes."""
    meta = parse_meta(loads(section_bytes(data, _need(layout, Kind.META)), "META"))
    payload = _need(layout, Kind.PAYLOAD)
    doc = loads(section_bytes(data, _need(layout, Kind.TENSORS)), "TENSORS")
    return meta, parse_tensors(doc, payload.length, bool(layout.required_flags & BF16_SCALES))


def read(data: bytes | memoryview) -> Container:
    """Fully validate a blob and return its container (docs/format.md §5 steps 1-6)."""
    layout = read_layout(data)
    for section in layout.sections:
        if not section_crc_ok(data, section):
            raise SectionChecksumMismatch(f"section {section.name}: CRC32 does not match")
    if not footer_ok(data, layout):
        raise FileDigestMismatch("footer SHA-256 does not match the file")
    meta, tensors = read_records(data, layout)
    payload = section_bytes(data, _need(layout, Kind.PAYLOAD), check=False)
    _check_stream_padding(payload, tensors)
    fmap_section = layout.section(Kind.FMAP)
    fmap = loads(section_bytes(data, fmap_section, False), "FMAP") if fmap_section else None
    graph = section_bytes(data, _need(layout, Kind.GRAPH), check=False)
    return Container(meta, tensors, graph, payload, fmap)


def _need(layout: Layout, kind: Kind) -> Section:
    section = layout.section(kind)
    if section is None:  # read_layout guarantees required kinds; keep the type checker honest
        raise BadSectionTable(f"required section {kind.name} is missing")
    return section


def _check_stream_padding(payload: bytes, tensors: tuple) -> None:
    buf = np.frombuffer(payload, dtype=np.uint8)
    covered = np.zeros(buf.size, dtype=bool)
    for t in tensors:
        for s in t.streams:
            covered[s.offset : s.offset + s.length] = True
    if buf[~covered].any():
        raise BadRecord("section PAYLOAD: padding between streams is not zero")
