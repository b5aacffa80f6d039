"""Feature-map traffic of a blob's FMAP section on the datapath (docs/format.md §3.5;
docs/datapath.md §5): each activation tensor written once and read once through the EBPC codec,
against the same without compression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from xorc.datapath.config import DatapathConfig
from xorc.errors import BadRecord
from xorc.tensor import JSON

MAX_BITS = 2**63
"""Largest bit count an FMAP layer may state (NaN, infinity and larger are refused)."""


def ratio(a: float, b: float) -> float | None:
    """a / b to 4 digits, None when b is 0."""
    return round(a / b, 4) if b else None


@dataclass(frozen=True)
class FmapLayer:
    """Feature-map traffic of one activation tensor (docs/format.md §3.5)."""

    name: str
    bits: int
    raw_bytes: float
    compressed_bytes: float
    raw_dram_bytes: int
    compressed_dram_bytes: int
    ebpc_cycles: int

    def to_json(self) -> dict[str, JSON]:
        return {
            "name": self.name,
            "bits": self.bits,
            "raw_bytes": self.raw_bytes,
            "compressed_bytes": self.compressed_bytes,
            "ratio": ratio(self.raw_bytes, self.compressed_bytes),
            "raw_dram_bytes": self.raw_dram_bytes,
            "compressed_dram_bytes": self.compressed_dram_bytes,
            "ebpc_cycles": self.ebpc_cycles,
        }


def fmap_layers(fmap: Mapping[str, JSON], config: DatapathConfig) -> tuple[FmapLayer, ...]:
    """Traffic per activation tensor and inference: written once by its layer and read once by
    the next, both through the EBPC codec (one word per cycle), against the same without
    compression. Bit counts summed over the section's `n_inputs` calibration inputs (as
    `xorc.fmap` writes them) are divided by it."""
    layers = fmap.get("layers")
    if not isinstance(layers, list):
        raise BadRecord("section FMAP: 'layers' must be a list")
    inputs = fmap.get("n_inputs", 1)
    if type(inputs) is not int or not 1 <= inputs <= 2**31:
        raise BadRecord(f"section FMAP: 'n_inputs' must be a positive integer, got {inputs!r}")
    out = []
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise BadRecord(f"section FMAP: layer #{i} must be an object")
        name = entry.get("name")
        bits = entry.get("bits")
        raw = entry.get("raw_bits")
        comp = entry.get("compressed_bits")
        if not isinstance(name, str) or type(bits) is not int or not 1 <= bits <= 32:
            raise BadRecord(f"section FMAP: layer #{i} needs a string 'name' and an integer 'bits'")
        for key, value in (("raw_bits", raw), ("compressed_bits", comp)):
            if type(value) not in (int, float) or not 0 <= value <= MAX_BITS:
                raise BadRecord(
                    f"section FMAP: layer {name!r}: {key!r} must be a number in [0, {MAX_BITS}]"
                )
        raw_bytes = float(raw) / 8 / inputs  # type: ignore[arg-type]
        comp_bytes = float(comp) / 8 / inputs  # type: ignore[arg-type]
        width = config.bus_bytes

        def beats(b: float, width: int = width) -> int:
            return int(np.ceil(b / width)) * width

        words = int(np.ceil(float(raw) / inputs / bits))  # type: ignore[arg-type]
        out.append(
            FmapLayer(
                name=name,
                bits=bits,
                raw_bytes=raw_bytes,
                compressed_bytes=comp_bytes,
                raw_dram_bytes=2 * beats(raw_bytes),
                compressed_dram_bytes=2 * beats(comp_bytes),
                ebpc_cycles=-(-words // config.ebpc_words_per_cycle),
            )
        )
    return tuple(out)
