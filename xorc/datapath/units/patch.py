"""Patch (error-correction) unit: Rice decoder, patch FIFO, bit flips (docs/datapath.md §3.4).

Values: per plane, the sorted positions (C order) of the flipped bits (docs/codecs/xor.md §6);
a position counter gives each flip its slice (position div N_out) and offset (position mod N_out),
and the applier flips that bit of that plane's slice before the mask is applied. Every patched
position must be a kept weight.

Timing, per tensor, at slice granularity (closed form, no loop per slice):

* a_s = flips that fall in slice s (all planes); during the T_s cycles of slice s's period the
  applier can apply P flips per cycle;
* the FIFO backlog after slice s is o_s = min(D, max(0, o_(s-1) + a_s - P*T_s)), o_(-1) = 0;
* a backlog that would exceed D stalls the XOR array ceil(excess / P) cycles, where
  excess_s = max(0, o_(s-1) + a_s - P*T_s - D);
* the peak occupancy is max_s min(D, o_(s-1) + a_s) (all of a slice's flips counted as
  arriving at its start: an upper bound on the FIFO's high-water mark).

With D = 0 every flip must be applied within its own slice period: stalls = sum of
max(0, ceil(a_s / P) - T_s). The clamped recursion is evaluated as a prefix scan over slices of
the maps o -> clamp(o + x, lo, hi), which compose into maps of the same form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.datapath.units import rice


@dataclass(frozen=True)
class PatchTiming:
    """Counters of the patch unit for one tensor."""

    flips: int
    decode_cycles: int
    stall_cycles: int
    fifo_peak: int
    max_slice_flips: int


def decode(
    bus: BusStream, counts: list[int], ks: list[int], lengths: list[int], n: int
) -> list[NDArray[np.int64]]:
    """Per plane, the positions of the flipped bits (sorted, each < n).

    Raises:
        CorruptStream: the stream does not match the record.
    """
    fields.exact_stream(bus, sum(lengths), "patches")
    out = []
    offset = 0
    for count, k, length in zip(counts, ks, lengths, strict=True):
        gaps = rice.decode_run(bus, offset, length, count, k, "patches")
        out.append(rice.gaps_to_positions(gaps, n, "patches"))
        offset += length
    return out


def _clamp(x: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.minimum(np.maximum(x, lo), hi)


def backlog(
    arrivals: NDArray[np.int64], service: NDArray[np.int64] | int, depth: int
) -> NDArray[np.int64]:
    """o_s = min(depth, max(0, o_(s-1) + arrivals_s - service_s)) for every s, o_(-1) = 0."""
    x = arrivals.astype(np.int64) - service
    if x.size == 0:
        return x
    # Without the upper clamp this is Lindley's recursion: cumulative sum minus running minimum.
    total = np.cumsum(x)
    free = total - np.minimum(np.minimum.accumulate(total), 0)
    if int(free.max()) <= depth:
        return free
    # Otherwise: prefix-compose the maps f_s(o) = clamp(o + x_s, lo_s, hi_s) (Hillis-Steele).
    shift = x.copy()
    lo = np.zeros_like(x)
    hi = np.full_like(x, depth)
    d = 1
    while d < x.size:
        s2, l2, h2 = shift[d:], lo[d:], hi[d:]
        s1, l1, h1 = shift[:-d], lo[:-d], hi[:-d]
        new_lo = _clamp(l1 + s2, l2, h2)
        new_hi = _clamp(h1 + s2, l2, h2)
        new_shift = s1 + s2
        shift[d:], lo[d:], hi[d:] = new_shift, new_lo, new_hi
        d *= 2
    return _clamp(shift, lo, hi)


def timing(
    slice_flips: NDArray[np.int64],
    period: NDArray[np.int64] | int,
    per_cycle: int,
    depth: int,
    rice_rate: int,
) -> PatchTiming:
    """Stall cycles and FIFO peak for `slice_flips[s]` flips in slice s whose period is
    `period[s]` cycles (module docstring)."""
    flips = int(slice_flips.sum())
    if flips == 0:
        return PatchTiming(0, 0, 0, 0, 0)
    service = per_cycle * period
    after = backlog(slice_flips, service, depth)
    before = np.concatenate([[0], after[:-1]])
    excess = np.maximum(before + slice_flips - service - depth, 0)
    stalls = int((-(-excess // per_cycle)).sum())
    peak = int(np.minimum(before + slice_flips, depth).max())
    return PatchTiming(
        flips=flips,
        decode_cycles=rice.cycles(flips, rice_rate),
        stall_cycles=stalls,
        fifo_peak=peak,
        max_slice_flips=int(slice_flips.max()),
    )
