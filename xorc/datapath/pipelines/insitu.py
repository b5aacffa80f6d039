"""Insitu path: factor fetch, level-1 lanes, the MAC array as the level-2 generator,
requantization (docs/codecs/insitu.md §4; docs/datapath.md §3.9), and the generator's area (§6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import stream
from xorc.codecs.insitu import schema
from xorc.codecs.insitu.schema import InsituParams
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.gates import GE_AND2, GE_DFF, GE_FULL_ADDER, Units, parsed
from xorc.datapath.timing import Timing, write_rows
from xorc.datapath.units import generator
from xorc.format import Container, TensorRecord
from xorc.tensor import JSON


def run(
    shape: tuple[int, ...],
    bits: int,
    params: Mapping[str, JSON],
    streams: Mapping[str, bytes],
    dram: DramReader,
    config: DatapathConfig,
) -> tuple[NDArray[np.int16], Timing]:
    """The levels of an `insitu` tensor and the cycles of the generator."""
    rec = schema.parse(tuple(shape), bits, params)
    rec.check_streams(streams)
    basis = generator.read_signed(
        dram.fetch("basis", stream(streams, "basis")), rec.basis_shape, rec.qb
    )
    u = None
    if rec.bi:
        u = generator.read_signed(dram.fetch("u", stream(streams, "u")), rec.u_shape, rec.qu)
    v = generator.read_signed(dram.fetch("v", stream(streams, "v")), (rec.rows, rec.bo), rec.qv)
    mult = generator.read_unsigned(
        dram.fetch("multipliers", stream(streams, "multipliers")), rec.rows, rec.mbits
    )
    levels = generator.generate(rec, basis, u, v, mult, config.dim)
    rest = rec.shape[: rec.axis] + rec.shape[rec.axis + 1 :]
    out = np.ascontiguousarray(np.moveaxis(levels.reshape(rec.rows, *rest), 0, rec.axis))
    return out, _timing(rec, config)


def _timing(rec: InsituParams, config: DatapathConfig) -> Timing:
    macs = rec.macs
    lanes = config.dim * config.dim
    bounds = {
        "level1": -(-macs["level1"] // lanes),
        "generator": -(-macs["level2"] // lanes),
        "requant": -(-rec.n // config.dim),
        "write": write_rows(rec.n, config),
    }
    stored = sum(-(-b // 8) for b in rec.stream_bits().values())
    extra: dict[str, JSON] = {
        "bi": rec.bi,
        "bo": rec.bo,
        "generator_macs": macs["level1"] + macs["level2"],
        "level1_macs": macs["level1"],
        "level2_macs": macs["level2"],
        "generator_passes": generator.passes(rec, config.dim),
        "dram_bytes_saved": rec.n * config.input_bits // 8 - stored,
    }
    return Timing(bounds, 0, extra=extra)


def acc_width(rec: InsituParams) -> int:
    """Signed accumulator bits a record needs (section 4 step 2 for its own widths)."""
    peak = rec.bo * max(rec.bi, 1) * _top(rec.qv) * _top(rec.qb) * (_top(rec.qu) if rec.bi else 1)
    return int(peak).bit_length() + 1


def _top(q: int) -> int:
    return (1 << (q - 1)) - 1


def area(records: Sequence[TensorRecord], container: Container, config: DatapathConfig) -> Units:
    """Requantization lanes, level-1 lanes, the accumulator widening beyond the MAC array's.

    The level-2 products run on the MAC array itself (the weights are generated in place before
    the layer runs), so the generator adds: DIM requantization multipliers (acc x mbits array
    multipliers), DIM x Bi level-1 multiply-adds of qu x qb bits, and, where the blob needs
    wider accumulators than the array's, the extra flip-flops and adder bits of all DIM^2.
    """
    recs = parsed(records, schema.parse)
    if not recs:
        return {}
    acc = max(acc_width(p) for _, p in recs)
    mbits = max(p.mbits for _, p in recs)
    bi = max(p.bi for _, p in recs)
    qu = max((p.qu for _, p in recs), default=0)
    qb = max(p.qb for _, p in recs)
    requant = config.dim * (acc * mbits * GE_AND2 + (acc - 1) * mbits * GE_FULL_ADDER)
    lanes = config.dim * bi * (qu * qb * GE_AND2 + (qu + qb) * GE_FULL_ADDER + 21 * GE_DFF)
    extra_bits = max(acc - config.acc_bits, 0)
    widen = config.dim * config.dim * extra_bits * (GE_DFF + GE_FULL_ADDER)
    return {
        "insitu_generator": {
            "ge": requant + lanes + widen,
            "acc_bits": acc,
            "formula": (
                "DIM requant multipliers (acc x mbits AND2 + FA), DIM x Bi level-1 lanes "
                "(qu x qb multiplier, adder, 21-bit register), DIM^2 x (acc - acc_bits) "
                "accumulator bits (DFF + FA)"
            ),
        }
    }
