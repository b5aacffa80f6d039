"""DRAM reader: fetches a tensor's streams over the DMA bus, one bus word per beat.

Model (docs/datapath.md §3.1): each stream is one DMA transfer that starts on a bus-word
boundary, split into `dma_max_bytes` requests; the bus delivers whole beats of `dma_bus_bits`,
so a stream of L bytes costs ceil(L / bus_bytes) beats and that many bus words of DRAM traffic.
The units read their fields from the delivered bus words; bytes past the stream's length inside
the last beat are zero (the DMA engine masks them), and units know the exact length from the
record, as the hardware's DMA descriptor does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from xorc.datapath.config import DatapathConfig

GUARD_BYTES = 16
"""Zero bytes after the last beat, so window reads near the end need no bounds checks."""


@dataclass(frozen=True)
class BusStream:
    """One stream as delivered by the DMA: bus words and the exact byte length."""

    name: str
    nbytes: int
    words: NDArray[np.uint8]
    """(beats, bus_bytes) uint8, zero past `nbytes`."""
    requests: int

    @property
    def beats(self) -> int:
        return int(self.words.shape[0])

    @property
    def bus_bytes(self) -> int:
        """Bytes moved on the bus: whole beats."""
        return int(self.words.size)

    @property
    def buffer(self) -> NDArray[np.uint8]:
        """The delivered bytes, beat after beat, then GUARD_BYTES zeros (a fresh array)."""
        out = np.zeros(self.words.size + GUARD_BYTES, dtype=np.uint8)
        out[: self.words.size] = self.words.ravel()
        return out

    def part(self, offset: int, nbytes: int) -> BusStream:
        """Bytes offset .. offset + nbytes - 1 as a stream of their own (a unit consuming a
        transmission inside a stream; not a new DRAM read)."""
        width = self.words.shape[1] if self.words.ndim == 2 and self.words.shape[1] else 1
        beats = -(-nbytes // width)
        words = np.zeros(beats * width, dtype=np.uint8)
        words[:nbytes] = self.words.reshape(-1)[offset : offset + nbytes]
        return BusStream(self.name, nbytes, words.reshape(beats, width), 0)

    def data(self) -> bytes:
        """The stream's own bytes (the first `nbytes` of the beats)."""
        return self.words.ravel()[: self.nbytes].tobytes()


@dataclass
class DramReader:
    """Fetches streams and counts the traffic. Counters live here, apart from the values."""

    config: DatapathConfig
    streams: list[BusStream] = field(default_factory=list)

    def fetch(self, name: str, data: bytes) -> BusStream:
        """Deliver `data` as bus words."""
        width = self.config.bus_bytes
        beats = -(-len(data) // width)
        words = np.zeros(beats * width, dtype=np.uint8)
        words[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        requests = -(-len(data) // self.config.dma_max_bytes)
        bus = BusStream(name, len(data), words.reshape(beats, width), requests)
        self.streams.append(bus)
        return bus

    def account(self, name: str, nbytes: int) -> None:
        """Count a stream that is read but whose content no unit needs here (the scales)."""
        width = self.config.bus_bytes
        beats = -(-nbytes // width)
        requests = -(-nbytes // self.config.dma_max_bytes)
        self.streams.append(BusStream(name, nbytes, np.zeros((beats, width), np.uint8), requests))

    @property
    def stream_bytes(self) -> int:
        return sum(s.nbytes for s in self.streams)

    @property
    def beats(self) -> int:
        return sum(s.beats for s in self.streams)

    @property
    def bus_bytes(self) -> int:
        return self.beats * self.config.bus_bytes

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.streams)

    def bus_cycles(self) -> int:
        """Cycles the bus needs to deliver every beat at the sustained DRAM bandwidth."""
        per_cycle = self.config.dram_bytes_per_cycle
        return int(np.ceil(self.bus_bytes / per_cycle)) if self.bus_bytes else 0
