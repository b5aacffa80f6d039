"""The PAYLOAD section written as it is made: each tensor's streams appended to an unnamed
temporary file, laid out as `container.layout_payload` lays them out (docs/format.md §3.4), and
memory-mapped when done, so the blob writer copies it without holding it in memory."""

from __future__ import annotations

import mmap
import os
import tempfile

from xorc.format.container import StreamRef, align


class PayloadFile:
    """Streams appended tensor by tensor; `view()` maps the result read-only."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (kept open; unlinked: nothing left on a crash)
        self.length = 0

    def add(self, streams: list[tuple[str, bytes]]) -> tuple[StreamRef, ...]:
        """Append one tensor's streams (each padded to 8 bytes); returns their references."""
        refs = []
        for name, data in streams:
            refs.append(StreamRef(name, self.length, len(data)))
            pad = align(len(data), 8) - len(data)
            self.file.write(data)
            self.file.write(b"\0" * pad)
            self.length += len(data) + pad
        return tuple(refs)

    def view(self) -> memoryview | bytes:
        """The payload, memory-mapped (empty: b"")."""
        self.file.flush()
        if self.length == 0:
            return b""
        return memoryview(mmap.mmap(self.file.fileno(), self.length, access=mmap.ACCESS_READ))
