"""The XOR network M of codec `xor` (docs/codecs/xor.md §3) and its evaluation.

Row r of M is the r-th output (from 0) of SplitMix64 seeded with `m_seed`; bit j of the row
word is the connection from seed bit j to output bit r. A plane of rate `n_in` uses columns
0 .. n_in-1 only, which its seed enforces by having no higher bits set.
"""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import NDArray

DEFAULT_M_SEED = 0x584F5243
"""The default seed of M: ASCII "XORC"."""

MAX_N_IN = 64
"""Seed bits per slice and plane are at most one 64-bit word."""

MAX_N_OUT = 4096
"""Largest slice length a decoder accepts."""

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, count: int) -> NDArray[np.uint64]:
    """The first `count` outputs of SplitMix64 started at `seed` (0 <= seed < 2**64)."""
    i = np.arange(1, count + 1, dtype=np.uint64)
    z = np.uint64(seed) + i * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def network(m_seed: int, n_out: int) -> NDArray[np.uint64]:
    """The `n_out` row words of M."""
    return splitmix64(m_seed, n_out)


def network_crc32(rows: NDArray[np.uint64]) -> int:
    """CRC-32 of the row words written as little-endian 8-byte integers, row 0 first."""
    return zlib.crc32(np.ascontiguousarray(rows, dtype="<u8").tobytes())


def xor_outputs(seeds: NDArray[np.uint64], rows: NDArray[np.uint64]) -> NDArray[np.uint8]:
    """Output bits `parity(seed AND row)`, element-wise (arrays broadcast)."""
    return (np.bitwise_count(seeds & rows) & np.uint8(1)).astype(np.uint8)
