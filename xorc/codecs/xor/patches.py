"""The patch stream of codec `xor` (docs/codecs/xor.md §6).

Per plane, the sorted positions (C order) of the flipped bits, as Rice-coded gaps; the planes' runs
are concatenated in plane order (sign first) without alignment.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.xor.mask import (
    best_k,
    gaps_to_positions,
    positions_to_gaps,
    rice_values,
    stream_bits,
)


def patch_run_length(indices: NDArray[np.int64]) -> tuple[int, int]:
    """(best Rice k, bit length) of one plane's patch run."""
    return best_k(positions_to_gaps(indices))


def encode_patches(
    indices: list[NDArray[np.int64]],
) -> tuple[bytes, list[int], list[int], list[int]]:
    """Pack per-plane sorted positions: (stream, counts, rice ks, run bit lengths)."""
    runs, counts, ks, lengths = [], [], [], []
    for idx in indices:
        gaps = positions_to_gaps(np.asarray(idx, dtype=np.int64))
        k, _ = best_k(gaps)
        run = bitio.rice_encode(gaps, k)
        runs.append(run)
        counts.append(int(gaps.size))
        ks.append(k)
        lengths.append(int(run.size))
    allbits = np.concatenate(runs) if runs else np.zeros(0, dtype=np.uint8)
    return bitio.pack_bits(allbits), counts, ks, lengths


def decode_patches(
    data: bytes, counts: list[int], ks: list[int], lengths: list[int], n: int
) -> list[NDArray[np.int64]]:
    """Per-plane positions of the patches (each < n).

    Raises:
        CorruptStream: the stream does not match the record.
    """
    bits = stream_bits(data, sum(lengths), "patches")
    out = []
    start = 0
    for count, k, length in zip(counts, ks, lengths, strict=True):
        run = bits[start : start + length]
        start += length
        out.append(gaps_to_positions(rice_values(run, count, k, "patches"), n, "patches"))
    return out
