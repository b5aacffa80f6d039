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

_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28 = np.uint64(7), np.uint64(14), np.uint64(28)


def _transpose8(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Transpose 8x8 bit matrices: byte r from the top is row r, bit 7 of a byte is column 0."""
    t = (x ^ (x >> _S7)) & _M1
    x = x ^ t ^ (t << _S7)
    t = (x ^ (x >> _S14)) & _M2
    x = x ^ t ^ (t << _S14)
    t = (x ^ (x >> _S28)) & _M3
    return x ^ t ^ (t << _S28)


def planes_from_deltas(d: NDArray[np.integer], word_width: int, block_size: int) -> NDArray[np.int32]:
    """Delta bit planes of each block.

    `d` is [blocks, N-1], each delta as an unsigned (W+1)-bit two's-complement value. Returns
    [blocks, W+1]: plane b holds bit b of d_0 at its MSB (bit N-2) down to bit b of d_{N-2} at
    bit 0.
    """
    nb, m = d.shape
    n = block_size
    nbytes = (word_width + 8) // 8  # bytes holding W+1 bits
    groups = n // 8
    rows = np.zeros((nb, n), dtype="<u4")
    rows[:, :m] = d
    # [nb, N, 4] little-endian bytes -> [nb, nbytes, groups, 8]: one 8x8 matrix per byte slice
    # and row group, row r of the group as byte r from the top of a big-endian uint64
    slices = rows.view(np.uint8).reshape(nb, n, 4)[:, :, :nbytes]
    mats = np.ascontiguousarray(slices.transpose(0, 2, 1)).reshape(nb, nbytes, groups, 8)
    y = _transpose8(mats.view(">u8")[..., 0].astype(np.uint64))
    # byte j (little-endian) of the result = plane 8k+j of row group g, row 0 at bit 7
    planes = y.astype("<u8").view(np.uint8).reshape(nb, nbytes, groups, 8)
    planes = np.ascontiguousarray(planes.transpose(0, 1, 3, 2)).reshape(nb, 8 * nbytes, groups)
    word = planes[..., 0].astype(np.int32) if groups == 1 else planes.view(">u2")[..., 0].astype(np.int32)
    return word[:, : word_width + 1] >> 1


def deltas_from_planes(p: NDArray[np.integer], word_width: int, block_size: int) -> NDArray[np.int32]:
    """Inverse of `planes_from_deltas`: [blocks, W+1] planes -> [blocks, N-1] unsigned deltas."""
    nb = p.shape[0]
    n = block_size
    nbytes = (word_width + 8) // 8
    groups = n // 8
    word = np.zeros((nb, 8 * nbytes), dtype=">u2" if groups == 2 else np.uint8)
    word[:, : word_width + 1] = p << 1
    planes = word.view(np.uint8).reshape(nb, nbytes, 8, groups)
    mats = np.ascontiguousarray(planes.transpose(0, 1, 3, 2))  # [nb, nbytes, groups, 8]
    y = _transpose8(mats.view("<u8")[..., 0].astype(np.uint64))
    rows = y.astype(">u8").view(np.uint8).reshape(nb, nbytes, n)  # row r of byte slice k
    out = rows[:, 0, :].astype(np.int32)
    for k in range(1, nbytes):
        out |= rows[:, k, :].astype(np.int32) << (8 * k)
    return out[:, : n - 1]
