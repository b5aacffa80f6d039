"""EBPC decoder, ZNZ stream: zero-run symbols found by a 16-bit-chunk automaton, no loop per
symbol (docs/codecs/ebpc.md, "Decoding"; the method is in `core_decode`'s docstring)."""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.streams import (
    ZNZ_COUNT_BITS,
)
from xorc.errors import CorruptStream

# --- ZNZ ----------------------------------------------------------------------------------------

_ZNZ_PHASES = 5  # a symbol is 1 or 5 bits, so the first boundary in a chunk is at bit 0..4
_ZNZ_RESOLVE_ROUNDS = 64  # longer runs of ambiguous chunks go to `chain_maps`


@cache
def _znz_tables() -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
    """For every 16-bit chunk of the ZNZ stream and each offset e (0..4) of its first symbol
    boundary: EXIT[chunk, e], the offset of the first boundary in the next chunk, and
    ZERO[chunk, e], the bits of the chunk (MSB = first bit) that start a zero-run symbol."""
    chunk = np.arange(1 << 16, dtype=np.int64)[:, None]
    pos = np.broadcast_to(np.arange(_ZNZ_PHASES)[None, :], (chunk.size, _ZNZ_PHASES)).copy()
    zero = np.zeros(pos.shape, dtype=np.int64)
    for _ in range(16):
        live = pos < 16
        at = np.clip(15 - pos, 0, 15)
        bit = (chunk >> at) & 1
        zero |= np.where(live & (bit == 0), 1 << at, 0)
        pos = np.where(live, pos + np.where(bit == 1, 1, 5), pos)
    return (pos - 16).astype(np.uint8), zero.astype(np.uint16)


@cache
def _znz_constant() -> NDArray[np.intp]:
    """For every 16-bit chunk: its exit offset if it is the same for all entry offsets (the
    parses from all offsets have merged inside the chunk), else -1."""
    exit_map, _ = _znz_tables()
    same = (exit_map == exit_map[:, :1]).all(axis=1)
    return np.where(same, exit_map[:, 0].astype(np.intp), -1)


def _znz_entries(chunks: NDArray[np.intp]) -> NDArray[np.intp]:
    """Offset of the first symbol boundary in each chunk (the first chunk starts at 0).

    Most chunks send every entry offset to the same exit, which fixes the next chunk's entry
    without knowing their own; the few others are resolved along the short runs they form, and
    the general composition (`chain_maps`) takes over if those runs are long."""
    exit_map, _ = _znz_tables()
    entry = np.empty(chunks.size, dtype=np.intp)
    entry[0] = 0
    entry[1:] = _znz_constant()[chunks[:-1]]
    todo = np.flatnonzero(entry < 0)
    for _ in range(_ZNZ_RESOLVE_ROUNDS):
        if not todo.size:
            return entry
        prev = entry[todo - 1]
        ready = prev >= 0
        entry[todo[ready]] = exit_map[chunks[todo[ready] - 1], prev[ready]]
        todo = todo[~ready]
    if not todo.size:
        return entry
    return chain_maps(exit_map[chunks], 0)


def chain_maps(maps: NDArray[np.integer], start: int, group: int = 16) -> NDArray[np.intp]:
    """Entry state of each step of a chain of finite maps.

    `maps[k, s]` is the state after step k when step k is entered in state s. Returns `entry`
    with entry[0] = start and entry[k+1] = maps[k, entry[k]], computed by composing the maps
    in groups of `group` (work O(n * states); Python loops O(group * log n)).
    """
    n, states = maps.shape
    if n <= group:
        out = np.empty(n, dtype=np.intp)
        s = start
        for k in range(n):
            out[k] = s
            s = int(maps[k, s])
        return out
    ng = -(-n // group)
    padded = np.empty((ng * group, states), dtype=np.intp)
    padded[:n] = maps
    padded[n:] = np.arange(states)  # identity maps
    flat = padded.reshape(-1)
    row = (np.arange(ng, dtype=np.intp) * (group * states))[:, None]
    composed = padded[0::group].copy()
    for j in range(1, group):
        composed = flat[row + j * states + composed]
    entry_g = chain_maps(composed, start, group)
    out = np.empty((ng, group), dtype=np.intp)
    cur = entry_g
    row1 = row[:, 0]
    for j in range(group):
        out[:, j] = cur
        cur = flat[row1 + j * states + cur]
    return out.reshape(-1)[:n]


def decode_znz(
    data: bytes, bitlen: int, n_words: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Run structure of the words, from the ZNZ stream: `ones[i]` non-zero words, then
    `zeros[i]` zero words (one zero-run chunk), for i = 0..k-1, then `ones[k]` non-zero words.

    Between two zero-run symbols every bit is a one-bit `1` symbol, so only the zero-run
    symbols need to be found: a chunk automaton locates them.

    Raises:
        CorruptStream: the stream does not hold exactly `n_words` words in `bitlen` bits.
    """
    if n_words == 0 or bitlen == 0:
        if n_words or bitlen:
            raise CorruptStream(f"znz stream has {bitlen} bits for {n_words} words")
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, zero_map = _znz_tables()
    nbytes = (bitlen + 7) >> 3
    buf = np.zeros(nbytes + (nbytes & 1), dtype=np.uint8)
    buf[:nbytes] = np.frombuffer(data, dtype=np.uint8, count=nbytes)
    chunks = buf.view(">u2").astype(np.intp)
    entry = _znz_entries(chunks)
    zmask = zero_map[chunks, entry].astype(">u2").view(np.uint8)
    z = np.flatnonzero(np.unpackbits(zmask, count=bitlen).view(bool))
    if z.size and int(z[-1]) + 1 + ZNZ_COUNT_BITS > bitlen:
        raise CorruptStream(f"znz stream ends inside a zero-run symbol (znz_bitlen {bitlen})")
    zeros = bitio.peek_units(bitio.unit_windows(buf, bitlen), z + 1, ZNZ_COUNT_BITS) + 1
    ones = np.empty(z.size + 1, dtype=np.int64)
    ones[0] = z[0] if z.size else bitlen
    ones[1:-1] = np.diff(z) - (1 + ZNZ_COUNT_BITS)
    if z.size:
        ones[-1] = bitlen - int(z[-1]) - (1 + ZNZ_COUNT_BITS)
    total = int(ones.sum() + zeros.sum())
    if total != n_words:
        raise CorruptStream(f"znz stream holds {total} words, n_words is {n_words}")
    return ones, zeros


def place_nonzeros(
    ones: NDArray[np.int64], zeros: NDArray[np.int64], values: NDArray[np.integer], n_words: int
) -> NDArray[np.integer]:
    """The words: the non-zero `values` spread over the run structure of `decode_znz` (through
    a one-byte-per-word mask, no index array)."""
    out = np.zeros(n_words, dtype=values.dtype)
    if values.size == n_words:
        out[:] = values
        return out
    lengths = np.empty(ones.size + zeros.size, dtype=np.int64)
    lengths[0::2], lengths[1::2] = ones, zeros
    is_one = np.zeros(lengths.size, dtype=bool)
    is_one[0::2] = True
    out[np.repeat(is_one, lengths)] = values
    return out
