"""Encoder options of codec `insitu` (docs/codecs/insitu.md §6)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TOLERANCE = 0.01
"""Relative output error a layer may take without a search (§6.4)."""


@dataclass(frozen=True)
class InsituOptions:
    """Knobs of the insitu encoder.

    Attributes:
        tolerance: the relative output error each layer may take (§6.1, §6.4); the smallest
            candidate within it is chosen, else the layer falls back to `raw`.
        config: a forced (Bi, Bo, qb, qu, qv) instead of the search over candidates (ranks are
            capped to the layer's shape; Bi = 0: level 2 only); None searches.
    """

    tolerance: float = DEFAULT_TOLERANCE
    config: tuple[int, int, int, int, int] | None = None
