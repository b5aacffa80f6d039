"""Weight codecs: each an encode/decode pair behind one small interface, described by one
`CodecSpec` and registered in `xorc.codecs.registry` (docs/adding-a-codec.md).

A codec lives in its own package `xorc/codecs/<name>/`: `options.py` (its frozen encoder
options), `schema.py` (the record's params checked into a frozen dataclass, shared by the
reference decoder and the datapath model), `decode.py`, `encode.py` and `spec.py` (its
`CodecSpec`). `decode.py` never imports `encode.py` (tests/test_layering.py). Codec ids are
pinned in docs/format.md ("Codec ids") and never reused.

Encoder: ``encode(q: QuantTensor, options) -> Encoded``, `options` being the codec's own frozen
options class (`xorc/codecs/<name>/options.py`)
Decoder: ``decode(shape, bits, params, streams) -> NDArray[np.int16]``; raises
`xorc.errors.CorruptStream` (or `BadRecord`) on anything inconsistent, never IndexError.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from xorc.tensor import JSON, Encoded, QuantTensor

if TYPE_CHECKING:
    from xorc.datapath.config import DatapathConfig
    from xorc.datapath.dram import DramReader
    from xorc.datapath.timing import Timing
    from xorc.format import Container, TensorRecord


class CodecId(IntEnum):
    """Codec ids stored in tensor records (docs/format.md, "Codec ids")."""

    RAW = 0
    XOR = 1
    DICTIONARY = 2
    EBPC = 3
    INSITU = 4


class Encoder(Protocol):
    def __call__(self, q: QuantTensor, options: Any) -> Encoded: ...


class Decoder(Protocol):
    def __call__(
        self,
        shape: tuple[int, ...],
        bits: int,
        params: Mapping[str, JSON],
        streams: Mapping[str, bytes],
    ) -> NDArray[np.int16]: ...


class ParamSchema(Protocol):
    """`schema.parse`: the record's params checked against shape and bits (BadRecord if not)."""

    def __call__(self, shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> Any: ...


class DatapathRun(Protocol):
    """The codec's pipeline on the datapath model (docs/datapath.md §3): fetches its streams
    through `dram`, returns the levels in the record's shape and the units' `Timing`."""

    def __call__(
        self,
        shape: tuple[int, ...],
        bits: int,
        params: Mapping[str, JSON],
        streams: Mapping[str, bytes],
        dram: DramReader,
        config: DatapathConfig,
    ) -> tuple[NDArray[np.int16], Timing]: ...


class AreaHook(Protocol):
    """Gate counts of the units the codec needs for `records`, the container's records of this
    codec (possibly none), as ``{unit name: {"ge": float, ...}}`` (docs/datapath.md §6)."""

    def __call__(
        self, records: Sequence[TensorRecord], container: Container, config: DatapathConfig
    ) -> dict[str, dict[str, JSON]]: ...


class NotesHook(Protocol):
    """Fragments of the `inspect` table's notes column from a record's stats (`details`); an
    empty list when the stats are not this codec's."""

    def __call__(self, details: Mapping[str, Any]) -> list[str]: ...


@dataclass(frozen=True)
class Hook:
    """A function named by module and attribute, imported on its first call.

    Spec modules name their decoder and datapath hooks this way, so that loading the registry
    loads neither (the datapath must not load the reference decoders, a decoder not the
    simulator) and no import cycle can form.
    """

    module: str
    name: str

    def load(self) -> Any:
        """The function itself (imports its module)."""
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


@dataclass(frozen=True)
class CodecSpec:
    """Everything the toolchain knows about one codec (docs/adding-a-codec.md).

    Attributes:
        id: the codec id stored in tensor records (`CodecId`).
        name: the record's `codec_name` (`CodecId` member name, lower case).
        doc: the spec document, a repository path, optionally with an anchor.
        options: the codec's frozen encoder options class (`<name>/options.py`).
        parse: its record schema (`<name>/schema.py`'s `parse`), shared by `decode` and
            `datapath`.
        decode: the reference decoder.
        datapath: its pipeline on the datapath model; None for a host-only codec.
        area: its units' gate counts for the area estimate; None when it adds none.
        notes: its fragments of the `inspect` notes column; None for none.
        max_weights_per_bit: the codec's maximum expansion, weights decoded per bit of its
            streams; a record declaring more (beyond `xorc.codecs.bounds.SLACK_WEIGHTS`) is
            refused before decoding (docs/format.md §5 step 7, the codec's spec).
    """

    id: int
    name: str
    doc: str
    options: type
    parse: ParamSchema
    decode: Decoder
    datapath: DatapathRun | None = None
    area: AreaHook | None = None
    notes: NotesHook | None = None
    max_weights_per_bit: int = 1
