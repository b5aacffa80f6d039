"""Weight codecs: each an encode/decode pair behind one small interface.

A codec lives in its own package `xorc/codecs/<name>/` with an `encode.py` and a `decode.py`;
`decode.py` never imports `encode.py` (tests/test_layering.py). Codec ids are pinned in
docs/format.md ("Codec ids") and never reused.

Encoder: ``encode(q: QuantTensor, options) -> Encoded``, `options` being the codec's own frozen
options class (`xorc/codecs/<name>/options.py`)
Decoder: ``decode(shape, bits, params, streams) -> NDArray[np.int16]``; raises
`xorc.errors.CorruptStream` (or `BadRecord`) on anything inconsistent, never IndexError.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from xorc.tensor import JSON, Encoded, QuantTensor


class CodecId(IntEnum):
    """Codec ids stored in tensor records (docs/format.md, "Codec ids")."""

    RAW = 0
    XOR = 1
    DICTIONARY = 2
    EBPC = 3


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
