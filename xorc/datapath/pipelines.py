"""The decompressor configured for each codec: which units run, fed by which streams
(docs/datapath.md §3). Each pipeline returns the decoded levels and, apart from them, its timing:
the cycles each unit needs for the whole tensor on its own (`bounds`), the serial set-up cycles
before streaming starts, and the patch unit's counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import stream
from xorc.codecs.dictionary import schema as dictionary_schema
from xorc.codecs.ebpc import schema as ebpc_schema
from xorc.codecs.raw import schema as raw_schema
from xorc.codecs.xor import schema as xor_schema
from xorc.codecs.xor.network import network, network_crc32
from xorc.datapath import fields
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.units import codebook, ebpc, huffman, mask, patch, rice, xor
from xorc.datapath.units.patch import PatchTiming
from xorc.errors import CorruptStream
from xorc.tensor import JSON

Streams = Mapping[str, bytes]


@dataclass(frozen=True)
class Timing:
    """Cycle counts of one tensor's decode, kept apart from the values."""

    bounds: dict[str, int]
    setup: int = 0
    patch: PatchTiming | None = None
    extra: dict[str, JSON] = field(default_factory=dict)


def _rows(n: int, config: DatapathConfig) -> int:
    """Scratchpad row writes: DIM weights per row, `sp_write_rows` rows per cycle."""
    return -(-n // (config.dim * config.sp_write_rows))


# --- raw ------------------------------------------------------------------------------------


def run_raw(
    n: int,
    bits: int,
    params: Mapping[str, JSON],
    streams: Streams,
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """Raw path: field unpacker (DIM Q-bit fields per cycle) and, when masked, zero insertion
    (docs/format.md §4.1)."""
    rec = raw_schema.parse((n,), bits, params)
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
    kept = xor.sign_magnitude_table(bits)[codes]
    bounds = {"unpack": -(-n_kept // config.dim), "write": _rows(n, config)}
    if keep is not None:
        bounds["mask"] = mask.bitmap_cycles(n, config.dim)
    return mask.insert_zeros(keep, kept, n), Timing(bounds)


# --- xor ------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _array(m_seed: int, n_out: int) -> tuple[int, xor.XorArray]:
    rows = network(m_seed, n_out)
    return network_crc32(rows), xor.XorArray(rows)


def run_xor(
    shape: tuple[int, ...],
    n: int,
    bits: int,
    params: Mapping[str, JSON],
    streams: Streams,
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """Mask unit, XOR array, patch unit, reassembly (docs/codecs/xor.md)."""
    rec = xor_schema.parse(shape, bits, params)
    crc, array = _array(rec.m_seed, rec.n_out)
    rec.check_network(crc)
    keep, mask_cycles = mask.xor_mask(
        dram.fetch("mask", stream(streams, "mask")),
        n, rec.n_kept, rec.mask_coding, rec.mask_k, rec.mask_bits,
        config.rice_codes_per_cycle, config.dim,
    )  # fmt: skip
    flips = patch.decode(
        dram.fetch("patches", stream(streams, "patches")),
        rec.patches,
        rec.patch_k,
        rec.patch_bits,
        n,
    )
    xor_schema.check_streams(streams)
    n_slices = -(-n // rec.n_out)
    busy = xor.busy_slices(keep, rec.n_out)
    n_busy = int(np.count_nonzero(busy))
    seeds = xor.read_seeds(dram.fetch("seeds", stream(streams, "seeds")), n_busy, rec.n_in)
    for where in flips:
        if where.size and not keep[where].all():
            raise CorruptStream("stream 'patches' patches a pruned position")

    planes = [
        xor.plane_bytes(xor.scatter_slices(array.plane(s, w), busy), rec.n_out, n)
        for s, w in zip(seeds, rec.n_in, strict=True)
    ]
    slice_flips = np.zeros(n_slices, dtype=np.int64)
    for plane, where in zip(planes, flips, strict=True):
        if where.size:
            xor.flip(plane, where)
            slice_flips += np.bincount(where // rec.n_out, minlength=n_slices)
    codes = xor.reassemble(planes, n)
    levels = np.where(keep, xor.sign_magnitude_table(bits)[codes], np.int16(0)).astype(np.int16)

    # a busy slice takes Q / arrays XOR cycles and N_out / DIM row writes, whichever is longer;
    # an empty slice only its (all-zero) row writes
    xor_cycles = -(-bits // config.xor_arrays)
    write_cycles = -(-rec.n_out // (config.dim * config.sp_write_rows))
    period = np.where(busy, max(xor_cycles, write_cycles), write_cycles)
    timing = patch.timing(
        slice_flips,
        period,
        config.patch_per_cycle,
        config.patch_fifo_depth,
        config.rice_codes_per_cycle,
    )
    bounds = {
        "mask": mask_cycles,
        "xor_array": n_busy * xor_cycles,
        "patch_decode": timing.decode_cycles,
        "xor_patch": int(period.sum()) + timing.stall_cycles,
        "write": _rows(n, config),
    }
    extra_info: dict[str, JSON] = {
        "n_out": rec.n_out,
        "n_in": rec.n_in,
        "slices": n_slices,
        "busy_slices": n_busy,
    }
    return levels, Timing(bounds, 0, timing, extra_info)


# --- dictionary -----------------------------------------------------------------------------


def run_dictionary(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Streams,
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """Codebook load, mask unit, index unpacker or Huffman decoder, lookup
    (docs/codecs/dictionary.md)."""
    rec = dictionary_schema.parse(tuple(shape), bits, params)
    rec.check_streams(streams)
    table = codebook.read_table(dram.fetch("codebook", stream(streams, "codebook")), rec)
    keep = None
    mask_cycles = 0
    if rec.zeros == "mask":
        bus = dram.fetch("mask", stream(streams, "mask"))
        fields.exact_stream(bus, rec.n, "mask")
        keep = mask.bitmap(bus, rec.n)
        mask_cycles = mask.bitmap_cycles(rec.n, config.dim)
    elif rec.zeros == "runs":
        keep = mask.runs(
            dram.fetch("runs", stream(streams, "runs")), rec.n, rec.nonzero, rec.rice_k
        )
        mask_cycles = rice.cycles(rec.nonzero, config.rice_codes_per_cycle)
    count = rec.n if keep is None else int(np.count_nonzero(keep))
    setup = -(
        -rec.groups * rec.entries * bits // config.dma_bus_bits
    )  # LUT fill, a bus word per cycle
    if rec.huffman:
        lbus = dram.fetch("code_lengths", stream(streams, "code_lengths"))
        fields.exact_stream(lbus, 4 * rec.k, "code_lengths")
        lengths = fields.narrow_fields(lbus, rec.k, 4).astype(np.int64)
        huffman.check_lengths(lengths)
        idx = huffman.decode(dram.fetch("indices", stream(streams, "indices")), count, lengths)
        setup += rec.k  # canonical table: one code length per cycle
        index_cycles = -(-count // config.huffman_codes_per_cycle)
    else:
        bus = dram.fetch("indices", stream(streams, "indices"))
        fields.exact_stream(bus, count * rec.index_bits, "indices")
        idx = fields.narrow_fields(bus, count, rec.index_bits).astype(np.int64)
        if count and int(idx.max()) >= rec.k:
            raise CorruptStream(f"stream 'indices' holds an index >= k = {rec.k}")
        index_cycles = -(-count // config.dim)
    values = codebook.lookup(table, idx, rec, keep)
    flat = mask.insert_zeros(keep, values.astype(np.int16), rec.n)
    bounds = {
        "index": index_cycles,
        "lookup": -(-count // config.dim),
        "write": _rows(rec.n, config),
    }
    if keep is not None:
        bounds["mask"] = mask_cycles
    return codebook.to_tensor_order(flat, rec), Timing(bounds, setup)


# --- ebpc -----------------------------------------------------------------------------------


def run_ebpc(
    n: int,
    bits: int,
    params: Mapping[str, JSON],
    streams: Streams,
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """EBPC decompressor, one RTL transmission after the other (shared/notes/ebpc.md §4)."""
    rec = ebpc_schema.parse((n,), bits, params)
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
    levels = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    ebpc_schema.check_levels(levels, bits)
    bounds["write"] = _rows(n, config)
    info: dict[str, JSON] = {
        "transmissions": len(rec.n_words),
        "blocks": blocks,
        "nonzero": nonzero,
    }
    return levels.astype(np.int16), Timing(bounds, 0, None, info)
