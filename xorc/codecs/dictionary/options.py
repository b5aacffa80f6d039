"""Encoder options of codec `dictionary` (docs/codecs/dictionary.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DictionaryOptions:
    """Knobs of the dictionary encoder.

    Attributes:
        dict_size: number of codebook entries K (None: automatic, entropy-constrained).
        dict_group: output channels per codebook (None: one codebook per tensor).
    """

    dict_size: int | None = None
    dict_group: int | None = None
