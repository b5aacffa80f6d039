"""Encoder options of codec `raw` (docs/format.md, "Codec raw"): it has none."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RawOptions:
    """The raw encoder takes no knobs; the class exists so every codec has one options type."""
