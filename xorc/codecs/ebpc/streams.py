"""EBPC shared definitions: the format constants, the stream record and the bit transposes.

Imported by both the encoder (`core_encode`) and the decoder (`core_decode`); it imports
neither. Spec: docs/codecs/ebpc.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAX_ZERO_RUN = 16
"""R: longest zero run one ZNZ symbol covers (RTL `LOG_MAX_ZRLE_LEN` = 4)."""

ZNZ_COUNT_BITS = 4
"""Width of the run-length field of a ZNZ zero symbol (log2 R)."""

RTL_MAX_WORDS = 1 << 24
"""Most words one RTL transmission carries (its `num_words_i` holds n_words - 1 in 24 bits)."""

WORD_WIDTHS = (8, 16)
BLOCK_SIZES = (8, 16)


@dataclass(frozen=True)
class EbpcStreams:
    """One EBPC transmission: the two RTL output streams and what a decoder needs besides them.

    Attributes:
        word_width: W, bits per input word (8 or 16).
        block_size: N, non-zero words per BPC block (8 or 16; N <= W in the RTL format).
        n_words: number of input words (the RTL decoder's `num_words_i` + 1).
        znz: the ZNZ (zero/non-zero) stream, zero-padded to whole W-bit words, MSB-first,
            each word as big-endian bytes.
        bpc: the BPC (bit-plane) stream, same packing.
        znz_bitlen: exact length of the ZNZ stream in bits, before padding.
        bpc_bitlen: exact length of the BPC stream in bits, before padding.
        swap_zero_codes: non-RTL study variant: single-zero plane coded `001`, zero-plane runs
            `01`+count (the released evaluation script's `ours-04`). False = RTL codes.
    """

    word_width: int
    block_size: int
    n_words: int
    znz: bytes
    bpc: bytes
    znz_bitlen: int
    bpc_bitlen: int
    swap_zero_codes: bool = False

    @property
    def max_zero_run(self) -> int:
        return MAX_ZERO_RUN

    @property
    def rtl_compatible(self) -> bool:
        """True when the streams are exactly what the open-source EBPC RTL emits."""
        return (
            not self.swap_zero_codes
            and self.block_size <= self.word_width
            and 1 <= self.n_words <= RTL_MAX_WORDS
        )

    @property
    def compressed_bits(self) -> int:
        """ZNZ + BPC bits, unpadded (the paper's compressed size)."""
        return self.znz_bitlen + self.bpc_bitlen

    @property
    def padded_bits(self) -> int:
        """ZNZ + BPC bits as transmitted, each stream padded to whole W-bit words."""
        return 8 * (len(self.znz) + len(self.bpc))

    @property
    def ratio(self) -> float:
        """n_words * W / unpadded compressed bits (the paper's ratio); inf for empty input."""
        bits = self.compressed_bits
        return self.n_words * self.word_width / bits if bits else float("inf")

    @property
    def padded_ratio(self) -> float:
        """n_words * W / word-padded compressed bits."""
        bits = self.padded_bits
        return self.n_words * self.word_width / bits if bits else float("inf")


def padded_nbytes(bitlen: int, word_width: int) -> int:
    """Bytes of a stream of `bitlen` bits once padded to whole `word_width`-bit words."""
    return -(-bitlen // word_width) * word_width // 8


def format_error(word_width: object, block_size: object, allow_non_rtl_block: bool) -> str | None:
    """Why (W, N) is not a supported format, or None when it is."""
    if type(word_width) is not int or word_width not in WORD_WIDTHS:
        return f"word width must be 8 or 16, got {word_width!r}"
    if type(block_size) is not int or block_size not in BLOCK_SIZES:
        return f"block size must be 8 or 16, got {block_size!r}"
    if block_size > word_width and not allow_non_rtl_block:
        return (
            f"block size {block_size} > word width {word_width} is not an RTL format "
            "(pass allow_non_rtl_block=True for the study variant)"
        )
    return None


def run_count_bits(word_width: int) -> int:
    """Bits of the count field of a multi-zero-plane symbol: ceil(log2 W)."""
    return (word_width - 1).bit_length()


def position_bits(block_size: int) -> int:
    """Bits of the position field of the single-one and two-ones symbols: log2 N."""
    return (block_size - 1).bit_length()


# --- bit transposes between deltas and delta bit planes -----------------------------------------
#
# Rows are the block's N-1 deltas preceded by one zero row (row 0), so that in an N-bit plane word
# row r sits at bit N-1-r and the deltas d_0..d_{N-2} land at bits N-2..0, as the format wants.
# Each group of 8 rows and each byte of the rows is an 8x8 bit matrix, held in a uint64 whose
# little-endian byte c is row (group start + 7 - c); `_transpose8` turns that into a uint64 whose
# little-endian byte b is bit plane b of the group's rows (first row at bit 7).

_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28, _S56 = np.uint64(7), np.uint64(14), np.uint64(28), np.uint64(56)
_GATHER = np.uint64(sum(1 << (56 - 7 * c) for c in range(8)))  # bit 0 of byte c -> bit 56 + c


def _transpose8(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Transpose 8x8 bit matrices (Hacker's Delight, transpose8rS64): byte r from the top is
    row r, bit 7 of a byte is column 0."""
    t = (x ^ (x >> _S7)) & _M1
    x = x ^ t ^ (t << _S7)
    t = (x ^ (x >> _S14)) & _M2
    x = x ^ t ^ (t << _S14)
    t = (x ^ (x >> _S28)) & _M3
    return x ^ t ^ (t << _S28)


def _as_u64(b: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """[n, 8] bytes -> n little-endian uint64."""
    return np.ascontiguousarray(b).view("<u8").reshape(-1).astype(np.uint64, copy=False)


def plane_dtype(block_size: int) -> type[np.unsignedinteger]:
    """Smallest dtype holding an (N-1)-bit plane or DBX symbol."""
    return np.uint8 if block_size == 8 else np.uint16


def planes_from_deltas(
    d: NDArray[np.integer], word_width: int, block_size: int
) -> NDArray[np.unsignedinteger]:
    """Delta bit planes of each block.

    `d` is [blocks, N-1], each delta as an unsigned (W+1)-bit two's-complement value. Returns
    [blocks, W+1] (uint8 for N = 8, uint16 for N = 16): plane b holds bit b of d_0 at its MSB
    (bit N-2) down to bit b of d_{N-2} at bit 0.
    """
    nb, m = d.shape
    n, w = block_size, word_width
    rows = np.empty((nb, n), dtype=np.uint16 if w == 8 else np.uint32)
    rows[:, :m] = d[:, ::-1]  # reversed: column j holds row n-1-j; row 0 (zero) is column m
    rows[:, m] = 0
    groups = n // 8
    out = np.zeros((nb, w + 1), dtype=plane_dtype(n))
    for g in range(groups):
        grp = rows[:, n - 8 - 8 * g : n - 8 * g]  # columns c = 0..7 hold rows 8g+7-c
        up = 8 * (groups - 1 - g)  # row group 0 is the high byte of a 16-bit plane
        for k in range(w // 8):
            y = _transpose8(_as_u64((grp >> (8 * k)).astype(np.uint8)))
            out[:, 8 * k : 8 * k + 8] |= y.view(np.uint8).reshape(nb, 8).astype(out.dtype) << up
        top = ((_as_u64((grp >> w).astype(np.uint8)) * _GATHER) >> _S56).astype(out.dtype)
        out[:, w] |= top << up
    return out


def deltas_from_planes(
    p: NDArray[np.unsignedinteger], word_width: int, block_size: int
) -> NDArray[np.int32]:
    """Inverse of `planes_from_deltas`: [blocks, W+1] planes -> [blocks, N-1] unsigned deltas."""
    nb = p.shape[0]
    n, w = block_size, word_width
    m = n - 1
    rows = np.zeros((nb, n), dtype=np.int32)  # reversed row order, as in planes_from_deltas
    groups = n // 8
    for g in range(groups):
        up = 8 * (groups - 1 - g)
        grp = rows[:, n - 8 - 8 * g : n - 8 * g]
        for k in range(w // 8):
            x = _as_u64((p[:, 8 * k : 8 * k + 8] >> up).astype(np.uint8))
            grp |= _transpose8(x).view(np.uint8).reshape(nb, 8).astype(np.int32) << (8 * k)
        top = (p[:, w] >> up).astype(np.uint8)[:, None]
        grp |= np.unpackbits(top, axis=1, bitorder="little").astype(np.int32) << w
    return rows[:, m - 1 :: -1] if m else rows[:, :0]


def deltas_mod_from_planes(
    p: NDArray[np.unsignedinteger], word_width: int, block_size: int
) -> NDArray[np.unsignedinteger]:
    """The deltas modulo 2**W from planes 0..W-1 of [blocks, W+1] planes: [blocks, N-1] as
    uint8 (W = 8) or uint16 (W = 16). Enough to rebuild W-bit words, which wrap anyway."""
    nb = p.shape[0]
    n, w = block_size, word_width
    m = n - 1
    out_t = np.uint8 if w == 8 else np.uint16
    rows = np.zeros((nb, n), dtype=out_t)  # reversed row order, as in planes_from_deltas
    groups = n // 8
    for g in range(groups):
        up = 8 * (groups - 1 - g)
        grp = rows[:, n - 8 - 8 * g : n - 8 * g]
        for k in range(w // 8):
            x = _as_u64((p[:, 8 * k : 8 * k + 8] >> up).astype(np.uint8))
            y = _transpose8(x).view(np.uint8).reshape(nb, 8)
            if k:
                grp |= y.astype(out_t) << out_t(8 * k)
            else:
                grp |= y
    return rows[:, m - 1 :: -1]


def transpose8_le(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The 8x8 bit transpose used by the plane transforms, on uint64 whose little-endian byte b
    is plane b of rows (row 0 at bit 7): returns uint64 whose little-endian byte c is row 7-c
    (bit b = plane b)."""
    return _transpose8(x)
