"""Raw path: field unpacker (DIM Q-bit fields per cycle) and, when masked, zero insertion
(docs/format.md §4.1; docs/datapath.md §3.2)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import stream
from xorc.codecs.raw import schema
from xorc.datapath import fields
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.timing import Timing, write_rows
from xorc.datapath.units import mask, xor
from xorc.tensor import JSON


def run(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Mapping[str, bytes],
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """The levels of a `raw` tensor and the unpacker's (and mask unit's) cycles."""
    rec = schema.parse(shape, bits, params)
    n = rec.n
    keep = None
    n_kept = n
    if rec.masked:
        bus = dram.fetch("mask", stream(streams, "mask"))
        fields.sized_stream(bus, rec.mask_bytes, "mask")
        keep = mask.bitmap(bus, n)
        n_kept = int(np.count_nonzero(keep))
    bus = dram.fetch("values", stream(streams, "values"))
    fields.sized_stream(bus, rec.values_bytes(n_kept), "values")
    codes = fields.narrow_fields(bus, n_kept, bits)
    kept = xor.sign_magnitude_table(bits, rec.full_range)[codes]
    bounds = {"unpack": -(-n_kept // config.dim), "write": write_rows(n, config)}
    if keep is not None:
        bounds["mask"] = mask.bitmap_cycles(n, config.dim)
    return mask.insert_zeros(keep, kept, n).reshape(shape), Timing(bounds)
