"""Mask decoder and zero insertion (docs/datapath.md §3.5).

The mask unit turns the mask stream into one kept/pruned bit per weight, DIM bits per cycle from
a bitmap or one gap per Rice code; zero insertion then places the values of the kept weights
and writes 0 elsewhere (for XOR: ANDs the reassembled codes with the mask).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.datapath.units import rice
from xorc.errors import CorruptStream


def bitmap(bus: BusStream, n: int) -> NDArray[np.bool_]:
    """A plain n-bit bitmap (bit t = weight t is kept); the caller checks the stream length."""
    return fields.bits(bus, n).view(np.bool_)


def bitmap_cycles(n: int, dim: int) -> int:
    """DIM mask bits per cycle."""
    return -(-n // dim)


def xor_mask(
    bus: BusStream, n: int, n_kept: int, coding: str, k: int, nbits: int, rice_rate: int, dim: int
) -> tuple[NDArray[np.bool_], int]:
    """The flat mask of an `xor` tensor (docs/codecs/xor.md §5) and the mask unit's cycles.

    Raises:
        CorruptStream: the stream does not match the record.
    """
    if coding == "all":
        if n_kept != n or nbits != 0:
            raise CorruptStream("stream 'mask': coding 'all' needs n_kept = n and 0 bits")
        fields.exact_stream(bus, 0, "mask")
        return np.ones(n, dtype=bool), 0
    fields.exact_stream(bus, nbits, "mask")
    if coding == "bitmap":
        if nbits != n:
            raise CorruptStream(f"stream 'mask': a bitmap has {n} bits, record says {nbits}")
        mask = bitmap(bus, n)
        if int(np.count_nonzero(mask)) != n_kept:
            raise CorruptStream(
                f"stream 'mask' keeps {int(np.count_nonzero(mask))} weights, record says {n_kept}"
            )
        return mask, bitmap_cycles(n, dim)
    count = n_kept if coding == "rice-kept" else n - n_kept
    gaps = rice.decode_run(bus, 0, nbits, count, k, "mask")
    pos = rice.gaps_to_positions(gaps, n, "mask")
    if coding == "rice-kept":
        mask = np.zeros(n, dtype=bool)
        mask[pos] = True
    else:
        mask = np.ones(n, dtype=bool)
        mask[pos] = False
    return mask, rice.cycles(count, rice_rate)


def insert_zeros(
    mask: NDArray[np.bool_] | None, kept: NDArray[np.int16], n: int
) -> NDArray[np.int16]:
    """Levels of all n weights: the kept values in order at the mask's set bits, 0 elsewhere."""
    if mask is None:
        return kept
    out = np.zeros(n, dtype=np.int16)
    out[mask] = kept
    return out


def runs(bus: BusStream, n: int, nonzero: int, k: int) -> NDArray[np.bool_]:
    """The mask of dictionary layout `runs`: `nonzero` Rice-coded gaps between kept weights
    (one code per kept weight); the stream ends in the byte of the last code, pad bits zero.

    Raises:
        CorruptStream: the codes run out, the stream is too long, or a position is out of range.
    """
    gaps, used = rice.decode_prefix(bus, nonzero, k, "runs")
    fields.exact_stream(bus, used, "runs")
    keep = np.zeros(n, dtype=bool)
    keep[rice.gaps_to_positions(gaps, n, "runs")] = True
    return keep
