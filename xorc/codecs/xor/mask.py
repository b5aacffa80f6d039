"""The mask stream of codec `xor` (docs/codecs/xor.md §5): which weights are kept.

Codings: "all" (every weight kept, no bits), "bitmap" (one bit per weight, C order) and
"rice-kept" / "rice-pruned" (Rice-coded gaps between the kept, or the pruned, positions).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.bounds import check_rice
from xorc.codecs.xor.schema import MASK_CODINGS as MASK_CODINGS
from xorc.errors import CorruptStream


def positions_to_gaps(positions: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Gaps of ascending positions: g_0 = p_0, g_i = p_i - p_(i-1) - 1."""
    return np.diff(positions, prepend=-1).astype(np.uint64) - np.uint64(1)


def gaps_to_positions(gaps: NDArray[np.uint64], limit: int, what: str) -> NDArray[np.int64]:
    """Inverse of `positions_to_gaps`; every position must be < `limit`.

    Raises:
        CorruptStream: a position is out of range (`what` names the stream).
    """
    if gaps.size == 0:
        return np.zeros(0, dtype=np.int64)
    if int(gaps.max()) >= limit:
        raise CorruptStream(f"stream {what!r}: a gap exceeds the {limit} positions")
    positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if int(positions[-1]) >= limit:
        raise CorruptStream(f"stream {what!r}: position {int(positions[-1])} >= {limit}")
    return positions


def best_k(gaps: NDArray[np.uint64]) -> tuple[int, int]:
    """(Rice k, bit length) minimising the length (convex in k: local search from log2 mean)."""
    if gaps.size == 0:
        return 0, 0
    mean = float(gaps.mean())
    k = max(0, min(32, int(np.log2(mean)) if mean >= 1 else 0))
    length = bitio.rice_length(gaps, k)
    for step in (-1, 1):
        while 0 <= k + step <= 32:
            trial = bitio.rice_length(gaps, k + step)
            if trial >= length:
                break
            k, length = k + step, trial
    return k, length


def encode_mask(mask: NDArray[np.bool_]) -> tuple[str, int, int, bytes]:
    """The smallest coding of a flat mask: (coding, rice k, bit length, bytes)."""
    flat = mask.ravel()
    n = flat.size
    kept = np.flatnonzero(flat)
    if kept.size == n:
        return "all", 0, 0, b""
    options: list[tuple[int, str, int]] = [(n, "bitmap", 0)]
    for coding, pos in (("rice-kept", kept), ("rice-pruned", np.flatnonzero(~flat))):
        k, length = best_k(positions_to_gaps(pos))
        options.append((length, coding, k))
    nbits, coding, k = min(options, key=lambda o: o[0])
    if coding == "bitmap":
        return coding, 0, n, bitio.pack_bits(flat)
    pos = kept if coding == "rice-kept" else np.flatnonzero(~flat)
    return coding, k, nbits, bitio.pack_bits(bitio.rice_encode(positions_to_gaps(pos), k))


def stream_bits(data: bytes, nbits: int, what: str) -> NDArray[np.uint8]:
    """The first `nbits` bits of a stream that must be exactly ceil(nbits / 8) bytes long
    with zero pad bits.

    Raises:
        CorruptStream: wrong length or nonzero pad bits.
    """
    if len(data) != (nbits + 7) // 8:
        raise CorruptStream(f"stream {what!r} is {len(data)} bytes, expected {(nbits + 7) // 8}")
    allbits = bitio.unpack_bits(data, 8 * len(data))
    if allbits[nbits:].any():
        raise CorruptStream(f"stream {what!r} has nonzero pad bits")
    return allbits[:nbits]


def rice_values(bits: NDArray[np.uint8], count: int, k: int, what: str) -> NDArray[np.uint64]:
    """Exactly `count` Rice values that use every bit of `bits`.

    Raises:
        CorruptStream: the bits run out, or are left over.
    """
    check_rice(count, k, bits.size, what)
    try:
        values, used = bitio.rice_decode(bits, count, k)
    except ValueError as exc:
        raise CorruptStream(f"stream {what!r}: {exc}") from None
    if used != bits.size:
        raise CorruptStream(f"stream {what!r}: {bits.size - used} bits left over")
    return values


def decode_mask(
    data: bytes, n: int, n_kept: int, coding: str, k: int, nbits: int
) -> NDArray[np.bool_]:
    """The flat mask (True = kept) of `n` weights.

    Raises:
        CorruptStream: the stream does not match the record.
    """
    if coding == "all":
        if n_kept != n or nbits != 0:
            raise CorruptStream("stream 'mask': coding 'all' needs n_kept = n and 0 bits")
        stream_bits(data, 0, "mask")
        return np.ones(n, dtype=bool)
    bits = stream_bits(data, nbits, "mask")
    if coding == "bitmap":
        if nbits != n:
            raise CorruptStream(f"stream 'mask': a bitmap has {n} bits, record says {nbits}")
        mask = bits.astype(bool)
    else:
        count = n_kept if coding == "rice-kept" else n - n_kept
        pos = gaps_to_positions(rice_values(bits, count, k, "mask"), n, "mask")
        mask = np.zeros(n, dtype=bool)
        mask[pos] = True
        if coding == "rice-pruned":
            mask = ~mask
    if int(mask.sum()) != n_kept:
        raise CorruptStream(f"stream 'mask' keeps {int(mask.sum())} weights, record says {n_kept}")
    return mask
