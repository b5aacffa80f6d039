"""What a codec's pipeline reports besides the levels: its units' cycle counts (docs/datapath.md
§4). `sim.py` combines them with the DRAM reader's into the tensor's counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xorc.datapath.config import DatapathConfig
from xorc.datapath.units.patch import PatchTiming
from xorc.tensor import JSON


@dataclass(frozen=True)
class Timing:
    """Cycle counts of one tensor's decode, kept apart from the values.

    Attributes:
        bounds: cycles each unit needs for the whole tensor on its own (`write` included).
        setup: serial set-up cycles before streaming starts (codebook load, Huffman table).
        patch: the patch unit's counters (XOR only).
        extra: codec facts reported as the counters' `details`.
    """

    bounds: dict[str, int]
    setup: int = 0
    patch: PatchTiming | None = None
    extra: dict[str, JSON] = field(default_factory=dict)


def write_rows(n: int, config: DatapathConfig) -> int:
    """Scratchpad row writes of n weights: DIM weights per row, `sp_write_rows` rows per cycle."""
    return -(-n // (config.dim * config.sp_write_rows))
