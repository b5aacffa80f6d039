"""XOR array and plane reassembly (docs/datapath.md §3.3, docs/codecs/xor.md §3-§4, §7).

XOR array: the fixed network M (N_out rows of 64 seed connections) maps an N_in-bit seed to an
N_out-bit slice of one bit-plane, y = M x over GF(2): output bit r is the XOR of the seed bits
its row selects. Equivalently y is the XOR of the columns of M that the seed's set bits select,
which is how this model evaluates it: the 64 columns are grouped by 8 into byte tables (the XOR
of any subset of 8 columns), so a slice costs ceil(N_in / 8) table reads of N_out bits instead of
N_out parities. One slice of one plane per cycle per array instance.

Reassembly: a Q x N_out transpose buffer turns Q plane slices into N_out Q-bit sign-magnitude
codes (modelled as 8 x 8 bit-matrix transposes), then the mask zeroes pruned weights.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.common import from_sign_magnitude
from xorc.datapath import fields
from xorc.datapath.bitops import transpose_bytes
from xorc.datapath.dram import BusStream


def busy_slices(keep: NDArray[np.bool_], n_out: int) -> NDArray[np.bool_]:
    """Which slices hold at least one kept weight (only those store seeds, docs/codecs/xor.md §4);
    in hardware a popcount of each slice's mask bits, counted into the seed index."""
    n = keep.size
    n_slices = -(-n // n_out)
    padded = np.zeros(n_slices * n_out, dtype=bool)
    padded[:n] = keep
    return padded.reshape(n_slices, n_out).any(axis=1)


def scatter_slices(y: NDArray[np.uint64], busy: NDArray[np.bool_]) -> NDArray[np.uint64]:
    """Output slices of every slice: the busy slices' XOR outputs, zeros for empty slices."""
    if bool(busy.all()):
        return y
    out = np.zeros((busy.size, y.shape[1]), dtype=np.uint64)
    out[busy] = y
    return out


def read_seeds(bus: BusStream, n_slices: int, n_in: list[int]) -> list[NDArray[np.uint64]]:
    """Per plane, the seed word of every busy slice (docs/codecs/xor.md §4): the stream is
    fixed-rate, busy slice m starts at bit m * sum(n_in), plane i's field after the earlier
    planes' fields.

    Raises:
        CorruptStream: wrong length or nonzero pad bits.
    """
    per_slice = sum(n_in)
    fields.exact_stream(bus, n_slices * per_slice, "seeds")
    win = fields.windows(bus)
    base = np.arange(n_slices, dtype=np.int64) * per_slice
    out = []
    offset = 0
    for width in n_in:
        out.append(fields.peek(win, base + offset, width))
        offset += width
    return out


def shift_register(
    seeds: NDArray[np.uint64], n_in: int, stages: int, stream_len: int
) -> NDArray[np.uint64]:
    """Variant 2 (docs/codecs/xor.md §11.1): the register of one plane after each busy slice's
    shift, R <- ((R << n_in) | x) & (2^(stages n_in) - 1), reset to 0 at every stream start.

    Modelled over a (streams, stream_len) grid of busy slices: stage k of the register holds the
    seed k slices back in the same stream row."""
    if stages <= 1 or n_in == 0 or seeds.size == 0:
        return seeds
    b = seeds.size
    t = max(1, min(stream_len, b))
    grid = np.zeros(-(-b // t) * t, dtype=np.uint64)
    grid[:b] = seeds
    grid = grid.reshape(-1, t)
    reg = grid.copy()
    for k in range(1, min(stages, t)):
        reg[:, k:] |= grid[:, :-k] << np.uint64(k * n_in)
    return reg.reshape(-1)[:b]


def slice_care(keep: NDArray[np.bool_], n_out: int, busy: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Variant 3: kept weights of each busy slice (the popcount of its mask bits)."""
    n_slices = busy.size
    padded = np.zeros(n_slices * n_out, dtype=bool)
    padded[: keep.size] = keep
    return padded.reshape(n_slices, n_out).sum(axis=1, dtype=np.int64)[busy]


def adaptive_widths(care: NDArray[np.int64], rate: int, reg: int) -> NDArray[np.int64]:
    """Variant 3 (docs/codecs/xor.md §12.1): field width min(W, (c * rate + 128) >> 8) of each
    busy slice, in hardware a small multiplier on the slice's popcount."""
    return np.minimum(reg, (care * rate + 128) >> 8)  # type: ignore[no-any-return]


def read_adaptive_seeds(
    bus: BusStream, widths: list[NDArray[np.int64]]
) -> list[NDArray[np.uint64]]:
    """Variant 3 (§12.2): per plane, the field of every busy slice; fields are slice-major, so a
    field starts at the running sum of the widths before it.

    Raises:
        CorruptStream: wrong length or nonzero pad bits.
    """
    grid = np.stack(widths, axis=1) if widths else np.zeros((0, 0), np.int64)  # (B, P)
    flat = grid.ravel()
    fields.exact_stream(bus, int(flat.sum()), "seeds")
    win = fields.windows(bus)
    start = np.cumsum(flat) - flat
    values = np.zeros(flat.size, dtype=np.uint64)
    for width in np.unique(flat[flat > 0]):
        sel = np.flatnonzero(flat == width)
        values[sel] = fields.peek(win, start[sel], int(width))
    out = values.reshape(grid.shape)
    return [np.ascontiguousarray(out[:, i]) for i in range(grid.shape[1])]


def adaptive_registers(
    seeds: list[NDArray[np.uint64]],
    widths: list[NDArray[np.int64]],
    regs: list[int],
    stream_len: int,
) -> list[NDArray[np.uint64]]:
    """Variant 3 (§12.1): each plane's W-bit register after each busy slice's shift,
    R <- ((R << w) | x) & (2^W - 1), reset at every stream start. All streams of all planes
    step together, one busy slice per step."""
    b = seeds[0].size if seeds else 0
    if b == 0:
        return [np.zeros(b, dtype=np.uint64) for _ in seeds]
    t = max(1, min(stream_len, b))
    rows = -(-b // t)
    x = np.zeros((len(seeds), rows * t), dtype=np.uint64)
    w = np.zeros((len(seeds), rows * t), dtype=np.int64)
    x[:, :b], w[:, :b] = np.stack(seeds), np.stack(widths)
    # (steps, planes x streams), so that each step reads contiguous rows
    x = np.ascontiguousarray(x.reshape(-1, t).T)
    w = np.ascontiguousarray(w.reshape(-1, t).T)
    keep = np.repeat(np.array([(1 << r) - 1 for r in regs], dtype=np.uint64), rows)
    shift = np.minimum(w, 63).astype(np.uint64)
    gate = np.where(w >= 64, np.uint64(0), keep[None, :])  # a shift by >= 64 clears R
    out = np.zeros_like(x)
    r = np.zeros(x.shape[1], dtype=np.uint64)
    for step in range(t):
        np.left_shift(r, shift[step], out=r)
        np.bitwise_and(r, gate[step], out=r)
        np.bitwise_or(r, x[step], out=r)
        out[step] = r
    out = out.T
    flat = out.reshape(len(seeds), rows * t)
    return [np.ascontiguousarray(flat[i, :b]) for i in range(len(seeds))]


class XorArray:
    """The XOR network of one (m_seed, n_out): byte tables of the XOR of column subsets."""

    def __init__(self, rows: NDArray[np.uint64]) -> None:
        self.n_out = int(rows.size)
        self.words = -(-self.n_out // 64)
        # column j of M as an n_out-bit vector (bit r = M[r, j]), LSB-first uint64 words
        col_bits = (
            (rows[None, :] >> np.arange(64, dtype=np.uint64)[:, None]) & np.uint64(1)
        ).astype(np.uint8)
        cols = bitio.to_words(col_bits).reshape(8, 8, self.words)
        v = np.arange(256)
        tables = np.zeros((8, 256, self.words), dtype=np.uint64)
        for j in range(8):
            sel = ((v >> j) & 1).astype(bool)
            tables[:, sel, :] ^= cols[:, j, None, :]
        self.tables = tables

    def plane(self, seeds: NDArray[np.uint64], n_in: int) -> NDArray[np.uint64]:
        """The output slices of one plane: (len(seeds), ceil(n_out / 64)) LSB-first words."""
        y = np.zeros((seeds.size, self.words), dtype=np.uint64)
        for b in range(-(-n_in // 8)):
            byte = ((seeds >> np.uint64(8 * b)) & np.uint64(0xFF)).astype(np.intp)
            y ^= self.tables[b][byte]
        return y


def plane_bytes(y: NDArray[np.uint64], n_out: int, n: int) -> NDArray[np.uint8]:
    """Concatenate the slices of one plane into ceil(n / 8) bytes; bit t of byte j is the plane
    bit of weight 8j + t (LSB-first: the `xorc.bits` word layout, viewed as bytes)."""
    n_slices, words = y.shape
    if n_out % 8 == 0:
        raw = np.ascontiguousarray(y, dtype="<u8").view(np.uint8).reshape(n_slices, 8 * words)
        flat = raw[:, : n_out // 8].reshape(-1)
    else:
        row = bitio.from_words(y, n_out).reshape(-1)
        flat = bitio.to_words(row).astype("<u8").view(np.uint8)
    nb = -(-n // 8)
    if flat.size >= nb:
        return np.ascontiguousarray(flat[:nb])
    out = np.zeros(nb, dtype=np.uint8)
    out[: flat.size] = flat
    return out


def flip(plane: NDArray[np.uint8], positions: NDArray[np.int64]) -> None:
    """Flip the plane bits at `positions` (ascending, each at most once)."""
    if positions.size:
        byte = positions >> 3
        bit = np.left_shift(1, positions & 7).astype(np.uint8)
        first = np.flatnonzero(np.diff(byte, prepend=-1))
        plane[byte[first]] ^= np.bitwise_or.reduceat(bit, first)


def reassemble(planes: list[NDArray[np.uint8]], n: int) -> NDArray[np.uint8]:
    """The Q-bit codes of n weights from Q plane bit vectors (plane 0 = code bit Q-1).

    Byte r of each 64-bit group holds plane Q-1-r, so the transposed group holds, in byte t,
    the code of weight 8j + t with plane i at bit Q-1-i.
    """
    q = len(planes)
    nb = -(-n // 8)
    group = np.zeros((nb, 8), dtype=np.uint8)
    for i, p in enumerate(planes):
        group[:, q - 1 - i] = p
    return transpose_bytes(group).reshape(-1)[:n]


def sign_magnitude_table(bits: int, full_range: bool = False) -> NDArray[np.int16]:
    """Level of every Q-bit sign-magnitude code (negative zero is 0, or -2**(Q-1) with
    `full_range`: codec raw, docs/format.md §4.1)."""
    return from_sign_magnitude(np.arange(1 << bits), bits, full_range)
