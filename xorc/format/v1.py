"""Container version 1: its byte layout (docs/format.md §2, §3) and the reading order (§5);
the writer is `xorc.format.writer` (re-exported here).

`walk` is the one place that reads a blob: it calls one function per step of §5, in the
document's order (steps 1 to 4 in `read_layout`, then the CRCs, the footer, and the records of
`xorc.format.records`). `read` (verify, decompress) and `xorc.report.summarize` (inspect) are
both `walk`. Decoding the streams (step 7) is `xorc.decode`'s, on the returned container.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from xorc.errors import (
    BadMagic,
    BadSectionTable,
    FileDigestMismatch,
    HeaderChecksumMismatch,
    SectionChecksumMismatch,
    TrailingBytes,
    Truncated,
    UnsupportedVersion,
)
from xorc.format import records
from xorc.format.container import Container, TensorRecord
from xorc.tensor import JSON

MAGIC = b"\x89XORC\r\n\x1a"
VERSION = (1, 1)
HEADER = struct.Struct("<8sHHIIIQII20sI")  # docs/format.md §2.1
ENTRY = struct.Struct("<IIQQII")  # docs/format.md §2.2
FOOTER_SIZE = 32
SECTION_ALIGN = 64
MAX_SECTIONS = 64
FLAG_REQUIRED = 1  # section entry flag (§2.2)
BF16_SCALES = 1  # header required flag bit 0 (§2.4)
INT_OFFSETS = 2  # header required flag bit 1 (§2.4)
POW2_SCALES = 4  # header required flag bit 2 (§2.4)
FULL_RANGE = 8  # header required flag bit 3 (§2.4)
GROUP_SCALES = 16  # header required flag bit 4 (§2.4)
KNOWN_REQUIRED_FLAGS = BF16_SCALES | INT_OFFSETS | POW2_SCALES | FULL_RANGE | GROUP_SCALES
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


Body = bytes | memoryview
CHUNK = 1 << 22  # bytes per CRC / digest / copy step over a large section


def _chunks(data: Body, start: int, end: int) -> Iterator[memoryview]:
    """`data[start:end]` in CHUNK-sized views (no copy)."""
    view = memoryview(data)
    for at in range(start, end, CHUNK):
        yield view[at : min(end, at + CHUNK)]


def crc32_of(data: Body, start: int = 0, end: int | None = None) -> int:
    """CRC-32 of `data[start:end]`, chunk by chunk."""
    crc = 0
    for chunk in _chunks(data, start, len(data) if end is None else end):
        crc = zlib.crc32(chunk, crc)
    return crc


# --- reading: docs/format.md §5, one function per step, called in order by `walk` ------------


@dataclass(frozen=True)
class Reading:
    """What `walk` found: the layout, each section's CRC status (table order), the footer's, and
    the records; `container` is the whole blob, None after an inspection."""

    layout: Layout
    crc_ok: tuple[bool, ...]
    footer_ok: bool
    meta: dict[str, JSON]
    tensors: tuple[TensorRecord, ...]
    container: Container | None = None


def walk(data: bytes | memoryview, inspect: bool = False) -> Reading:
    """Read a blob in the order of docs/format.md §5; the first failure raises its error.

    With `inspect` (`xorc inspect`), a section other than META and TENSORS whose CRC does not
    match, and a footer that does not match, are recorded in the result instead of raised, and
    the sections that hold no records (GRAPH, PAYLOAD, FMAP) are not read: a blob whose payload
    is damaged can still be listed.
    """
    layout = read_layout(data)  # steps 1 to 4
    crc_ok = _check_section_crcs(data, layout, inspect)  # step 5
    footer_ok = _check_footer(data, layout, inspect)  # step 5
    meta, tensors = _read_records(data, layout)  # step 6: META, TENSORS
    if inspect:
        return Reading(layout, crc_ok, footer_ok, meta, tensors)
    container = _read_contents(data, layout, meta, tensors)  # step 6: PAYLOAD, FMAP, GRAPH
    return Reading(layout, crc_ok, footer_ok, meta, tensors, container)


def read(data: bytes | memoryview) -> Container:
    """Fully validate a blob (docs/format.md §5 steps 1 to 6) and return its container."""
    container = walk(data).container
    assert container is not None  # walk without `inspect` always reads the contents
    return container


def read_layout(data: bytes | memoryview) -> Layout:
    """Header, section table and layout (docs/format.md §5 steps 1 to 4), in order; nothing
    inside a section is looked at."""
    _check_magic_and_size(data)  # step 1
    header = _read_header(data)  # step 2
    _check_file_size(data, header.file_size)  # step 3
    sections = _read_table(data, header)  # step 4
    return Layout(header.version, header.file_size, sections, header.required_flags)


@dataclass(frozen=True)
class _Header:
    version: tuple[int, int]
    required_flags: int
    file_size: int
    section_count: int
    table_crc32: int


def _check_magic_and_size(data: bytes | memoryview) -> None:
    """Step 1: the magic, then room for a header and a footer."""
    if bytes(data[:8]) != MAGIC:
        raise BadMagic("not an xorc blob (magic bytes do not match)")
    if len(data) < HEADER.size + FOOTER_SIZE:
        raise Truncated(f"file is {len(data)} bytes, shorter than the {HEADER.size}-byte header")


def _read_header(data: bytes | memoryview) -> _Header:
    """Step 2: version, header CRC, then the fields version 1 fixes."""
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
    return _Header((major, minor), req_flags, file_size, count, table_crc)


def _check_file_size(data: bytes | memoryview, file_size: int) -> None:
    """Step 3: the header's `file_size` against the real length."""
    if file_size > len(data):
        raise Truncated(f"file is {len(data)} bytes, header says {file_size}")
    if file_size < len(data):
        raise TrailingBytes(f"file is {len(data)} bytes, header says {file_size}: trailing bytes")


def _read_table(data: bytes | memoryview, header: _Header) -> tuple[Section, ...]:
    """Step 4: section count, the table's extent and CRC, every entry, then the footer's place."""
    count, file_size = header.section_count, header.file_size
    if not 1 <= count <= MAX_SECTIONS:
        raise BadSectionTable(f"header: section_count {count} not in [1, {MAX_SECTIONS}]")
    table_end = HEADER.size + ENTRY.size * count
    if table_end + FOOTER_SIZE > file_size:
        raise Truncated(f"section table of {count} entries runs past the end of the file")
    if zlib.crc32(data[HEADER.size : table_end]) != header.table_crc32:
        raise HeaderChecksumMismatch("section table CRC32 does not match")
    sections: list[Section] = []
    pos = table_end
    for i in range(count):
        section = _read_entry(data, i, pos, file_size, {s.kind for s in sections})
        sections.append(section)
        pos = section.offset + section.length
    seen = {s.kind for s in sections}
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


def _read_entry(
    data: bytes | memoryview, i: int, pos: int, file_size: int, seen: set[int]
) -> Section:
    """Entry `i` of the table, the previous section (or the table) ending at `pos`."""
    kind, flags, offset, length, crc, reserved = ENTRY.unpack_from(data, HEADER.size + i * 32)
    where = f"section #{i} (kind {kind})"
    known = kind in Kind._value2member_map_
    if flags & ~FLAG_REQUIRED or reserved:
        raise BadSectionTable(f"{where}: reserved flags or bytes set")
    if not known and flags & FLAG_REQUIRED:
        raise BadSectionTable(f"{where}: unknown required section kind")
    if kind in seen:
        raise BadSectionTable(f"{where}: kind appears twice")
    if offset != _align(pos):
        raise BadSectionTable(f"{where}: offset {offset}, layout requires {_align(pos)}")
    if known and length > LENGTH_CAP[Kind(kind)]:
        raise BadSectionTable(f"{where}: length {length} over the cap {LENGTH_CAP[Kind(kind)]}")
    if offset + length + FOOTER_SIZE > file_size:
        raise Truncated(f"{where}: ends at {offset + length}, past the end of the file")
    if any(data[pos:offset]):
        raise BadSectionTable(f"{where}: padding before the section is not zero")
    return Section(kind, flags, offset, length, crc)


RECORD_KINDS = (Kind.META, Kind.TENSORS)  # inspect needs these intact


def _check_section_crcs(
    data: bytes | memoryview, layout: Layout, inspect: bool
) -> tuple[bool, ...]:
    """Step 5: every section's CRC32, in table order."""
    crc_ok: list[bool] = []
    for s in layout.sections:
        ok = crc32_of(data, s.offset, s.offset + s.length) == s.crc32
        if not ok and (not inspect or s.kind in RECORD_KINDS):
            raise SectionChecksumMismatch(f"section {s.name}: CRC32 does not match")
        crc_ok.append(ok)
    return tuple(crc_ok)


def _check_footer(data: bytes | memoryview, layout: Layout, inspect: bool) -> bool:
    """Step 5: the SHA-256 of everything before the footer."""
    end = layout.file_size - FOOTER_SIZE
    digest = hashlib.sha256()
    for chunk in _chunks(data, 0, end):
        digest.update(chunk)
    ok = digest.digest() == bytes(data[end:])
    if not ok and not inspect:
        raise FileDigestMismatch("footer SHA-256 does not match the file")
    return ok


def _section(layout: Layout, kind: Kind) -> Section:
    section = layout.section(kind)
    if section is None:  # read_layout guarantees required kinds; keep the type checker honest
        raise BadSectionTable(f"required section {kind.name} is missing")
    return section


def _body(data: bytes | memoryview, section: Section) -> bytes:
    return bytes(data[section.offset : section.offset + section.length])


def _view(data: bytes | memoryview, section: Section) -> memoryview:
    """A section without a copy (the PAYLOAD of a memory-mapped blob stays on disk)."""
    return memoryview(data)[section.offset : section.offset + section.length]


def _read_records(
    data: bytes | memoryview, layout: Layout
) -> tuple[dict[str, JSON], tuple[TensorRecord, ...]]:
    """Step 6, first part: META, then the tensor records and their stream layout."""
    meta = records.parse_meta(records.loads(_body(data, _section(layout, Kind.META)), "META"))
    doc = records.loads(_body(data, _section(layout, Kind.TENSORS)), "TENSORS")
    payload_length = _section(layout, Kind.PAYLOAD).length
    bf16 = bool(layout.required_flags & BF16_SCALES)
    offsets = bool(layout.required_flags & INT_OFFSETS)
    pow2 = bool(layout.required_flags & POW2_SCALES)
    full = bool(layout.required_flags & FULL_RANGE)
    groups = bool(layout.required_flags & GROUP_SCALES)
    return meta, records.parse_tensors(doc, payload_length, bf16, offsets, pow2, full, groups)


def _read_contents(
    data: bytes | memoryview,
    layout: Layout,
    meta: dict[str, JSON],
    tensors: tuple[TensorRecord, ...],
) -> Container:
    """Step 6, second part: PAYLOAD padding between streams, FMAP's JSON, the GRAPH bytes."""
    payload = _view(data, _section(layout, Kind.PAYLOAD))
    records.check_stream_padding(payload, tensors)
    fmap_section = layout.section(Kind.FMAP)
    fmap = None if fmap_section is None else records.loads(_body(data, fmap_section), "FMAP")
    return Container(meta, tensors, _body(data, _section(layout, Kind.GRAPH)), payload, fmap)


# The writer lives in its own module; `v1.write` and friends stay its public names.
from xorc.format.writer import write, write_sections, write_sections_to, write_to  # noqa: E402

__all__ = ["write", "write_sections", "write_sections_to", "write_to"]
