"""EBPC path: the EBPC decompressor, one RTL transmission after the other (docs/codecs/ebpc.md
§7; shared/notes/ebpc.md §4; docs/datapath.md §3.7), and its published area (§6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import n_elements, stream
from xorc.codecs.ebpc import schema
from xorc.datapath import fields
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.gates import Units
from xorc.datapath.timing import Timing, write_rows
from xorc.datapath.units import ebpc
from xorc.format import Container, TensorRecord
from xorc.tensor import JSON

PUBLISHED_GE = {
    8: {"decompressor": 3007, "compressor": 2833},
    16: {"decompressor": 5546, "compressor": 4778},
}
"""JETCAS 2019 Table II, block size 8 (decompressor total; footnote: without inverse zero-RLE)."""


def run(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Mapping[str, bytes],
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """The levels of an `ebpc` tensor and the decompressor's cycles."""
    rec = schema.parse(shape, bits, params)
    w, b = rec.word_width, rec.block_size
    znz = dram.fetch("znz", stream(streams, "znz"))
    fields.sized_stream(znz, rec.znz_bytes, "znz")
    bpc = dram.fetch("bpc", stream(streams, "bpc"))
    fields.sized_stream(bpc, rec.bpc_bytes, "bpc")
    parts = []
    bounds = {"ebpc_bpc": 0, "ebpc_out": 0}
    blocks = nonzero = 0
    zo = bo = 0
    for words, zbits, bbits in zip(rec.n_words, rec.znz_bitlen, rec.bpc_bitlen, strict=True):
        zpart = znz.part(zo, rec.padded(zbits))
        bpart = bpc.part(bo, rec.padded(bbits))
        ebpc.check_padding(zpart, zbits, "znz")
        ebpc.check_padding(bpart, bbits, "bpc")
        values, t = ebpc.decode(w, b, words, zpart, zbits, bpart, bbits)
        parts.append(values)
        for key, cycles in ebpc.cycles(t, w, b, config.ebpc_words_per_cycle).items():
            bounds[key] += cycles
        blocks, nonzero = blocks + t.blocks, nonzero + t.nonzero
        zo, bo = zo + rec.padded(zbits), bo + rec.padded(bbits)
    levels = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    schema.check_levels(levels, bits)
    bounds["write"] = write_rows(n_elements(shape), config)
    info: dict[str, JSON] = {
        "transmissions": len(rec.n_words),
        "blocks": blocks,
        "nonzero": nonzero,
    }
    return levels.reshape(shape), Timing(bounds, 0, None, info)


def area(records: Sequence[TensorRecord], container: Container, config: DatapathConfig) -> Units:
    """One published decompressor per word width the records use; with a feature-map section,
    the published W = 8 compressor and decompressor for the feature maps."""
    units: Units = {}
    widths = set()
    for r in records:
        w = r.params.get("word_width", 8)
        widths.add(w if w in PUBLISHED_GE else 8)
    for w in sorted(widths):
        units[f"ebpc_decompressor_w{w}"] = {
            "ge": PUBLISHED_GE[w]["decompressor"],
            "formula": "published (JETCAS 2019 Table II, UMC 65 nm, block 8)",
        }
    if container.fmap is not None:
        units["ebpc_fmap_codec_w8"] = {
            "ge": PUBLISHED_GE[8]["decompressor"] + PUBLISHED_GE[8]["compressor"],
            "formula": "published compressor + decompressor for feature maps (W = 8)",
        }
    return units
