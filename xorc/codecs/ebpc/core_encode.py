"""EBPC encoder: values -> the RTL's ZNZ and BPC streams (docs/codecs/ebpc.md).

Everything is vectorised over whole arrays: the ZNZ symbols over zero runs, the BPC symbols
over a [blocks, W+1] plane matrix; the only Python loops are over a fixed number of code kinds.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xorc import bits as bitio
from xorc.codecs.ebpc.streams import (
    MAX_ZERO_RUN,
    RTL_MAX_WORDS,
    EbpcStreams,
    format_error,
    padded_nbytes,
    planes_from_deltas,
    position_bits,
    run_count_bits,
)


def _as_words(values: ArrayLike, word_width: int) -> NDArray[np.int32]:
    """Validate and flatten the input words (signed W-bit two's complement)."""
    v = np.asarray(values)
    if v.dtype == np.bool_ or not np.issubdtype(v.dtype, np.integer):
        if v.size == 0:
            return np.zeros(0, dtype=np.int32)
        raise ValueError(f"EBPC input must be integers, got dtype {v.dtype}")
    flat = v.ravel()
    if flat.size:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < -(1 << (word_width - 1)) or hi >= 1 << (word_width - 1):
            raise ValueError(
                f"EBPC input spans {lo}..{hi}, outside signed {word_width}-bit "
                f"[{-(1 << (word_width - 1))}, {(1 << (word_width - 1)) - 1}]"
            )
    return flat.astype(np.int32, copy=False)


def znz_fields(nonzero: NDArray[np.bool_]) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """ZNZ symbols as (value, width) fields: `1` per non-zero word; per chunk of a zero run of
    at most R words, `0` + (length - 1) in 4 bits, i.e. a 5-bit field holding length - 1."""
    n = nonzero.size
    idx = np.flatnonzero(nonzero)
    bounds = np.empty(idx.size + 2, dtype=np.int64)
    bounds[0] = -1
    bounds[1:-1] = idx
    bounds[-1] = n
    gaps = np.diff(bounds) - 1  # zeros before each non-zero word, then the trailing run
    chunks = (gaps + MAX_ZERO_RUN - 1) // MAX_ZERO_RUN
    counts = chunks.copy()
    counts[:-1] += 1
    total = int(counts.sum())
    first = np.cumsum(counts) - counts
    vals = np.full(total, MAX_ZERO_RUN - 1, dtype=np.uint64)
    widths = np.full(total, 5, dtype=np.int64)
    rem = gaps % MAX_ZERO_RUN
    part = rem > 0
    vals[(first + chunks - 1)[part]] = (rem[part] - 1).astype(np.uint64)
    ones = (first + chunks)[:-1]
    vals[ones] = 1
    widths[ones] = 1
    return vals, widths


def bpc_fields(
    nz_values: NDArray[np.int32], word_width: int, block_size: int, swap_zero_codes: bool = False
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """BPC symbols of the non-zero words as (value, width) fields in stream order.

    Per block (the last one zero-padded to N words): the base (W bits), then one code per DBX
    symbol, LSB plane first; planes inside a multi-zero run have width 0.
    """
    w, n = word_width, block_size
    m = n - 1
    full = (1 << m) - 1
    cb, pb = run_count_bits(w), position_bits(n)
    nnz = nz_values.size
    nb = -(-nnz // n)
    blocks = np.zeros(nb * n, dtype=np.int32)
    blocks[:nnz] = nz_values
    blocks = blocks.reshape(nb, n)
    base = blocks[:, 0] & ((1 << w) - 1)
    deltas = (blocks[:, 1:] - blocks[:, :-1]) & ((1 << (w + 1)) - 1)  # exactly W+1 bits
    p = planes_from_deltas(deltas, w, n)
    s = p.copy()
    s[:, 1:] ^= p[:, :-1]  # DBX: S_0 = P_0, S_b = P_b ^ P_{b-1}

    # rule g (uncompressed) by default, then the higher-priority rules overwrite it
    vals = (s | (1 << m)).astype(np.int64)
    widths = np.full(s.shape, n, dtype=np.int64)
    pc = np.bitwise_count(s)
    hb = _HIGH_BIT[m][s]  # index of the highest one (0 = LSB); -1 for S = 0
    idx = (m - 1) - hb  # position of the first one, counted MSB-first
    single = pc == 1
    vals[single] = (3 << pb) | idx[single]
    widths[single] = 5 + pb
    pair = (pc == 2) & ((s & (s >> 1)) != 0)
    vals[pair] = (2 << pb) | idx[pair]
    widths[pair] = 5 + pb
    plane_zero = (p == 0) & (s != 0)
    vals[plane_zero] = 1
    widths[plane_zero] = 5
    ones = s == full
    vals[ones] = 0
    widths[ones] = 5

    zero = s == 0
    edge = np.zeros((nb, 1), dtype=bool)
    starts = zero & ~np.concatenate([edge, zero[:, :-1]], axis=1)
    ends = zero & ~np.concatenate([zero[:, 1:], edge], axis=1)
    run_len = np.flatnonzero(ends) - np.flatnonzero(starts) + 1
    widths[zero] = 0
    start_flat = np.flatnonzero(starts)
    single_zero = run_len == 1
    multi = ~single_zero
    vflat, wflat = vals.reshape(-1), widths.reshape(-1)
    if swap_zero_codes:
        vflat[start_flat[single_zero]], wflat[start_flat[single_zero]] = 1, 3
        vflat[start_flat[multi]] = (1 << cb) | (run_len[multi] - 2)
        wflat[start_flat[multi]] = 2 + cb
    else:
        vflat[start_flat[single_zero]], wflat[start_flat[single_zero]] = 1, 2
        vflat[start_flat[multi]] = (1 << cb) | (run_len[multi] - 2)
        wflat[start_flat[multi]] = 3 + cb

    out_v = np.empty((nb, w + 2), dtype=np.uint64)
    out_w = np.empty((nb, w + 2), dtype=np.int64)
    out_v[:, 0] = base
    out_w[:, 0] = w
    out_v[:, 1:] = vals
    out_w[:, 1:] = widths
    return out_v.reshape(-1), out_w.reshape(-1)


def _high_bit_table(m: int) -> NDArray[np.int64]:
    table = np.full(1 << m, -1, dtype=np.int64)
    for b in range(m):
        table[1 << b : 1 << (b + 1)] = b
    return table


_HIGH_BIT = {7: _high_bit_table(7), 15: _high_bit_table(15)}


def _pack(vals: NDArray[np.uint64], widths: NDArray[np.int64], word_width: int) -> tuple[bytes, int]:
    data, nbits = bitio.pack_fields_fast(vals, widths)
    return data + bytes(padded_nbytes(nbits, word_width) - len(data)), nbits


def encode_values(
    values: ArrayLike,
    word_width: int = 8,
    block_size: int = 8,
    *,
    allow_non_rtl_block: bool = False,
    swap_zero_codes: bool = False,
) -> EbpcStreams:
    """EBPC-compress a stream of signed W-bit words into the RTL's two streams.

    Args:
        values: integers in [-2**(W-1), 2**(W-1) - 1], flattened in C order.
        word_width: W, 8 or 16.
        block_size: N, 8 or 16; the RTL requires N <= W.
        allow_non_rtl_block: study variant, permits N = 16 with W = 8 (not an RTL format).
        swap_zero_codes: study variant, the evaluation script's swapped zero-plane codes.

    Raises:
        ValueError: unsupported W/N or values outside the signed W-bit range.
    """
    problem = format_error(word_width, block_size, allow_non_rtl_block)
    if problem:
        raise ValueError(problem)
    words = _as_words(values, word_width)
    nonzero = words != 0
    znz, znz_bits = _pack(*znz_fields(nonzero), word_width)
    bpc, bpc_bits = _pack(
        *bpc_fields(words[nonzero], word_width, block_size, swap_zero_codes), word_width
    )
    return EbpcStreams(
        word_width=word_width,
        block_size=block_size,
        n_words=int(words.size),
        znz=znz,
        bpc=bpc,
        znz_bitlen=znz_bits,
        bpc_bitlen=bpc_bits,
        swap_zero_codes=swap_zero_codes,
    )


def encode_transmissions(
    values: ArrayLike,
    word_width: int = 8,
    block_size: int = 8,
    max_words: int = RTL_MAX_WORDS,
) -> list[EbpcStreams]:
    """Split a long stream into consecutive RTL transmissions of at most `max_words` words
    (the RTL limit 2**24 by default) and encode each independently (RTL format only)."""
    words = _as_words(values, word_width)
    if not 1 <= max_words <= RTL_MAX_WORDS:
        raise ValueError(f"max_words must be in [1, {RTL_MAX_WORDS}], got {max_words}")
    if words.size == 0:
        return [encode_values(words, word_width, block_size)]
    return [
        encode_values(words[i : i + max_words], word_width, block_size)
        for i in range(0, words.size, max_words)
    ]
