"""Encoder options of codec `ebpc` as a weight codec (docs/codecs/ebpc.md, "Container record")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EbpcOptions:
    """Knobs of the EBPC weight encoder.

    Attributes:
        word_width: EBPC word width W (8 or 16).
        block_size: EBPC block size N (8 or 16, N <= W).
    """

    word_width: int = 8
    block_size: int = 8
