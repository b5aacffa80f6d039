"""Dictionary path: codebook load, mask unit, index unpacker or Huffman decoder, lookup
(docs/codecs/dictionary.md; docs/datapath.md §3.6), and the area of those units (§6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import stream
from xorc.codecs.dictionary import schema
from xorc.codecs.dictionary.schema import DictionaryParams
from xorc.datapath import fields
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.gates import GE_DFF, GE_FULL_ADDER, GE_MUX2, Units, parsed
from xorc.datapath.timing import Timing, write_rows
from xorc.datapath.units import codebook, huffman, mask, rice
from xorc.errors import CorruptStream
from xorc.format import Container, TensorRecord
from xorc.tensor import JSON

Streams = Mapping[str, bytes]


def run(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Streams,
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """The levels of a `dictionary` tensor and the cycles of its units."""
    rec = schema.parse(tuple(shape), bits, params)
    rec.check_streams(streams)
    table = codebook.read_table(dram.fetch("codebook", stream(streams, "codebook")), rec)
    keep, mask_cycles = _zeros(rec, streams, dram, config)
    count = rec.n if keep is None else int(np.count_nonzero(keep))
    setup = -(-rec.groups * rec.entries * bits // config.dma_bus_bits)  # LUT fill, a bus word
    idx, table_cycles, index_cycles = _indices(rec, streams, dram, count, config)
    values = codebook.lookup(table, idx, rec, keep)
    flat = mask.insert_zeros(keep, values.astype(np.int16), rec.n)
    bounds = {
        "index": index_cycles,
        "lookup": -(-count // config.dim),
        "write": write_rows(rec.n, config),
    }
    if keep is not None:
        bounds["mask"] = mask_cycles
    return codebook.to_tensor_order(flat, rec), Timing(bounds, setup + table_cycles)


def _zeros(
    rec: DictionaryParams, streams: Streams, dram: DramReader, config: DatapathConfig
) -> tuple[NDArray[np.bool_] | None, int]:
    """The kept-weight mask of layouts `mask` and `runs` (None for the others) and its cycles."""
    if rec.zeros == "mask":
        bus = dram.fetch("mask", stream(streams, "mask"))
        fields.exact_stream(bus, rec.n, "mask")
        return mask.bitmap(bus, rec.n), mask.bitmap_cycles(rec.n, config.dim)
    if rec.zeros == "runs":
        bus = dram.fetch("runs", stream(streams, "runs"))
        keep = mask.runs(bus, rec.n, rec.nonzero, rec.rice_k)
        return keep, rice.cycles(rec.nonzero, config.rice_codes_per_cycle)
    return None, 0


def _indices(
    rec: DictionaryParams, streams: Streams, dram: DramReader, count: int, config: DatapathConfig
) -> tuple[NDArray[np.int64], int, int]:
    """`count` indices, each < K; the Huffman table's set-up cycles; the index cycles."""
    if rec.huffman:
        lbus = dram.fetch("code_lengths", stream(streams, "code_lengths"))
        fields.exact_stream(lbus, schema.LENGTH_BITS * rec.k, "code_lengths")
        lengths = fields.narrow_fields(lbus, rec.k, schema.LENGTH_BITS).astype(np.int64)
        huffman.check_lengths(lengths)
        idx = huffman.decode(dram.fetch("indices", stream(streams, "indices")), count, lengths)
        # canonical table: one code length per cycle
        return idx, rec.k, -(-count // config.huffman_codes_per_cycle)
    bus = dram.fetch("indices", stream(streams, "indices"))
    fields.exact_stream(bus, count * rec.index_bits, "indices")
    idx = fields.narrow_fields(bus, count, rec.index_bits).astype(np.int64)
    if count and int(idx.max()) >= rec.k:
        raise CorruptStream(f"stream 'indices' holds an index >= k = {rec.k}")
    return idx, 0, -(-count // config.dim)


def area(records: Sequence[TensorRecord], container: Container, config: DatapathConfig) -> Units:
    """The codebook LUT with DIM read ports and, when any record needs it, the Huffman decoder."""
    recs = parsed(records, schema.parse)
    if not recs:
        return {}
    k = max(p.k for _, p in recs)
    q = max(r.bits for r, _ in recs)
    units: Units = {
        "codebook_lut": {
            "ge": k * q * GE_DFF + config.dim * (k - 1) * q * GE_MUX2,
            "k": k,
            "formula": "K x Q flip-flops + DIM read ports of (K - 1) x Q MUX2",
        }
    }
    if any(p.huffman for _, p in recs):
        units["huffman_decoder"] = {
            "ge": 15 * 15 * 3.0 + 32 * GE_DFF + 32 * 5 * GE_MUX2 + 16 * (GE_DFF + GE_FULL_ADDER),
            "formula": (
                "per-length first-code comparators (15 x 15 bits), 32-bit window and "
                "shifter, count/offset registers"
            ),
        }
    return units
