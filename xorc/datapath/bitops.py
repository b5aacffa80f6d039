"""Bit-matrix helpers shared by the unit models (plane-to-word transposes)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)


def transpose8(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Transpose 8 x 8 bit matrices held in uint64 words: bit 8r + c <-> bit 8c + r (viewed as
    little-endian bytes: bit c of byte r <-> bit r of byte c)."""
    t = (x ^ (x >> np.uint64(7))) & _M1
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & _M2
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & _M3
    return x ^ t ^ (t << np.uint64(28))


def transpose_bytes(rows: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """(n, 8) bytes -> (n, 8) bytes with bit r of out[:, c] = bit c of rows[:, r]."""
    words = np.ascontiguousarray(rows, dtype=np.uint8).view("<u8").reshape(-1)
    return transpose8(words).astype("<u8").view(np.uint8).reshape(-1, 8)
