"""XOR path: mask unit, XOR array, patch unit, reassembly (docs/codecs/xor.md; docs/datapath.md
§3.3-§3.5), and the area of those units (§6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import n_elements, stream
from xorc.codecs.xor import schema
from xorc.codecs.xor.network import network, network_crc32
from xorc.codecs.xor.schema import XorParams
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.gates import (
    GE_AND2,
    GE_DFF,
    GE_MUX2,
    GE_XOR2,
    Units,
    index_bits,
    parsed,
    rice_decoder_ge,
)
from xorc.datapath.timing import Timing, write_rows
from xorc.datapath.units import mask, patch, xor
from xorc.errors import CorruptStream
from xorc.format import Container, TensorRecord
from xorc.tensor import JSON


@lru_cache(maxsize=16)
def _array(m_seed: int, n_out: int) -> tuple[int, xor.XorArray]:
    rows = network(m_seed, n_out)
    return network_crc32(rows), xor.XorArray(rows)


def run(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Mapping[str, bytes],
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """The levels of an `xor` tensor and the cycles of its units."""
    rec = schema.parse(shape, bits, params)
    n = n_elements(shape)
    crc, array = _array(rec.m_seed, rec.n_out)
    rec.check_network(crc)
    keep, mask_cycles = mask.xor_mask(
        dram.fetch("mask", stream(streams, "mask")),
        n, rec.n_kept, rec.mask_coding, rec.mask_k, rec.mask_bits,
        config.rice_codes_per_cycle, config.dim,
    )  # fmt: skip
    adapt = rec.variant == schema.VARIANT_ADAPT  # patches count kept weights (§12.3)
    flips = patch.decode(
        dram.fetch("patches", stream(streams, "patches")),
        rec.patches,
        rec.patch_k,
        rec.patch_bits,
        rec.n_kept if adapt else n,
    )
    schema.check_streams(streams)
    if adapt:
        kept_at = np.flatnonzero(keep)
        flips = [kept_at[c] for c in flips]
    busy = xor.busy_slices(keep, rec.n_out)
    n_busy = int(np.count_nonzero(busy))
    seed_bus = dram.fetch("seeds", stream(streams, "seeds"))
    if adapt:
        care = xor.slice_care(keep, rec.n_out, busy)
        widths = [
            xor.adaptive_widths(care, r, w)
            for r, w in zip(rec.rate or [0] * bits, rec.n_in, strict=True)
        ]
        seeds = xor.read_adaptive_seeds(seed_bus, widths)
        seeds = xor.adaptive_registers(seeds, widths, rec.n_in, rec.stream_len)
    else:
        seeds = xor.read_seeds(seed_bus, n_busy, rec.n_in)
    for where in flips:
        if where.size and not keep[where].all():
            raise CorruptStream("stream 'patches' patches a pruned position")
    stages, invert = rec.plane_stages(), rec.plane_invert()
    if rec.variant == schema.VARIANT_SEQ:
        seeds = [
            xor.shift_register(s, w, st, rec.stream_len)
            for s, w, st in zip(seeds, rec.n_in, stages, strict=True)
        ]
    planes = [
        xor.plane_bytes(xor.scatter_slices(array.plane(s, w * st), busy), rec.n_out, n)
        for s, w, st in zip(seeds, rec.n_in, stages, strict=True)
    ]
    for plane, inv in zip(planes, invert, strict=True):
        if inv:
            np.bitwise_xor(plane, np.uint8(0xFF), out=plane)
    slice_flips = np.zeros(busy.size, dtype=np.int64)
    for plane, where in zip(planes, flips, strict=True):
        if where.size:
            xor.flip(plane, where)
            slice_flips += np.bincount(where // rec.n_out, minlength=busy.size)
    codes = xor.reassemble(planes, n)
    levels = np.where(keep, xor.sign_magnitude_table(bits)[codes], np.int16(0)).astype(np.int16)
    return levels.reshape(shape), _timing(rec, n, busy, slice_flips, mask_cycles, config)


def _timing(
    rec: XorParams,
    n: int,
    busy: NDArray[np.bool_],
    slice_flips: NDArray[np.int64],
    mask_cycles: int,
    config: DatapathConfig,
) -> Timing:
    """A busy slice takes Q / arrays XOR cycles and N_out / DIM row writes, whichever is longer;
    an empty slice only its (all-zero) row writes; the patch unit may stall the array."""
    n_busy = int(np.count_nonzero(busy))
    planes = len(rec.n_in)  # Q: one seed width per plane
    xor_cycles = -(-planes // config.xor_arrays)
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
        "write": write_rows(n, config),
    }
    extra: dict[str, JSON] = {
        "n_out": rec.n_out,
        "n_in": rec.n_in,
        "slices": int(busy.size),
        "busy_slices": n_busy,
    }
    if rec.variant == schema.VARIANT_SEQ:
        extra |= {"variant": rec.variant, "stages": rec.stages, "stream_len": rec.stream_len}
    if rec.variant == schema.VARIANT_ADAPT:
        extra |= {"variant": rec.variant, "rate": rec.rate, "stream_len": rec.stream_len}
    return Timing(bounds, 0, timing, extra)


# --- area -------------------------------------------------------------------------------------


def xor_network_gates(m_seed: int, n_out: int, n_in: int) -> int:
    """XOR2 gates of the network's output trees over seed columns 0 .. n_in - 1."""
    rows = network(m_seed, n_out)
    used = rows & np.uint64((1 << n_in) - 1 if n_in < 64 else 2**64 - 1)
    taps = np.bitwise_count(used).astype(np.int64)
    return int(np.maximum(taps - 1, 0).sum())


def area(records: Sequence[TensorRecord], container: Container, config: DatapathConfig) -> Units:
    """XOR networks (exact from M), seed registers, transpose buffer, patch unit, mask decoder."""
    recs = parsed(records, schema.parse)
    if not recs:
        return {}
    n_out = max(p.n_out for _, p in recs)
    n_in = max(max(w * s for w, s in zip(p.n_in, p.plane_stages(), strict=True)) for _, p in recs)
    q = max(r.bits for r, _ in recs)
    seeds = sorted({p.m_seed for _, p in recs})
    arrays = config.xor_arrays
    gates = sum(xor_network_gates(s, n_out, n_in) for s in seeds)
    gates_full = sum(xor_network_gates(s, n_out, config.xor_max_n_in) for s in seeds)
    units: Units = {
        "xor_network": {
            "ge": arrays * gates * GE_XOR2,
            "xor2": arrays * gates,
            "n_out": n_out,
            "n_in": n_in,
            "networks": len(seeds) * arrays,
            "xor2_at_config_n_in": arrays * gates_full,
            "rule_of_thumb_xor2": arrays * len(seeds) * n_out * (n_in // 2 - 1),
            "formula": "sum over rows of (taps in the first n_in columns - 1), exact from M",
        },
        "xor_seed_and_gating": {
            "ge": arrays * n_in * (GE_DFF + GE_AND2),
            "formula": "n_in seed flip-flops + n_in AND2 tie-offs (rate prefixes) per array",
        },
        "transpose_buffer": {
            "ge": q * n_out * GE_DFF,
            "bits": q * n_out,
            "formula": "Q x n_out flip-flops (plane slices to weight rows)",
        },
    }
    if any(p.variant == schema.VARIANT_SEQ for _, p in recs):
        units["xor_shift_registers"] = _shift_registers(recs, arrays)
    if any(p.variant == schema.VARIANT_ADAPT for _, p in recs):
        units["xor_adaptive_registers"] = _adaptive_registers(recs, arrays)
    n_max = max(int(np.prod(r.shape, dtype=np.int64)) for r, _ in recs)
    units["patch_unit"] = _patch_unit(q, n_out, n_max, config)
    if any(p.mask_coding.startswith("rice") for _, p in recs):
        units["mask_rice_decoder"] = {"ge": rice_decoder_ge(2), "formula": "one Rice decoder"}
    return units


def _shift_registers(recs: list[tuple[TensorRecord, XorParams]], arrays: int) -> dict[str, JSON]:
    """Variant 2: per plane the (stages - 1) x n_in history bits of its register (planes share an
    array in turn, so each keeps its own), a load mux per bit, and per array a 64-bit barrel
    shifter (shift by n_in, 6 levels), window gating and the output inverters."""
    history = max(
        sum((s - 1) * w for w, s in zip(p.n_in, p.plane_stages(), strict=True)) for _, p in recs
    )
    n_out = max(p.n_out for _, p in recs)
    per_array = 64 * 6 * GE_MUX2 + 64 * GE_AND2 + n_out * GE_XOR2
    return {
        "ge": history * (GE_DFF + GE_MUX2) + arrays * per_array,
        "register_bits": history,
        "formula": (
            "sum over planes of (stages - 1) x n_in flip-flops, each with a load mux; per array a "
            "64-bit 6-level barrel shifter (MUX2), 64 AND2 window gates and n_out XOR2 inverters"
        ),
    }


def _adaptive_registers(recs: list[tuple[TensorRecord, XorParams]], arrays: int) -> dict[str, JSON]:
    """Variant 3: per plane a W-bit register (planes share an array in turn, so each keeps its
    own) with a load mux per bit; per array a 64-bit 7-level barrel shifter (shift 0 .. 64),
    the width unit (an 11 x 15-bit multiplier on the slice popcount, about 165 full adders of
    ~7 GE), window gating and the output inverters."""
    reg = max(
        sum(w for w, p_rate in zip(p.n_in, p.rate or [], strict=True) if p_rate)
        for _, p in recs
        if p.variant == schema.VARIANT_ADAPT
    )
    n_out = max(p.n_out for _, p in recs)
    per_array = 64 * 7 * GE_MUX2 + 165 * 7 + 64 * GE_AND2 + n_out * GE_XOR2
    return {
        "ge": reg * (GE_DFF + GE_MUX2) + arrays * per_array,
        "register_bits": reg,
        "formula": (
            "sum over planes of W flip-flops, each with a load mux; per array a 64-bit 7-level "
            "barrel shifter (MUX2), a popcount x rate width multiplier (~165 full adders x 7 GE), "
            "64 AND2 window gates and n_out XOR2 inverters"
        ),
    }


def _patch_unit(q: int, n_out: int, n_max: int, config: DatapathConfig) -> dict[str, JSON]:
    pos_bits = index_bits(n_max)
    depth, per = config.patch_fifo_depth, config.patch_per_cycle
    fifo = depth * (index_bits(q) + pos_bits) * GE_DFF
    applier = (
        per * (n_out * GE_AND2 + (pos_bits - index_bits(n_out)) * (GE_XOR2 + GE_AND2))
        + n_out * GE_XOR2
    )
    return {
        "ge": fifo + applier + rice_decoder_ge(2 * q),
        "fifo_entries": depth,
        "entry_bits": index_bits(q) + pos_bits,
        "formula": (
            "FIFO depth x (plane + position bits) flip-flops; per flip port a one-hot offset "
            "decoder (n_out AND2) and a slice comparator; n_out XOR2 flippers; Rice decoder with "
            "2 pointers per plane"
        ),
    }
