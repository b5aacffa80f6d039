"""Length-limited Huffman code lengths (package-merge) and Huffman encoding of index arrays.

Spec: docs/codecs/dictionary.md, section 5. Encoder side only; the decoder never imports it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.dictionary.huffman import MAX_LEN, canonical_codes


def code_lengths(freqs: NDArray[np.integer], max_len: int = MAX_LEN) -> NDArray[np.int64]:
    """Optimal prefix-code lengths of at most `max_len` bits for symbol frequencies.

    Package-merge (Larmore and Hirschberg): items are the symbols sorted by (frequency, symbol);
    each of the max_len - 1 rounds pairs neighbouring items into packages and merges them with
    the symbols again (stable, so symbols precede packages of equal weight); a symbol's length is
    the number of the first 2n - 2 final items that contain it. Unused symbols get 0, a single
    used symbol gets 1. Each item carries its per-symbol counts as a row, so a round is a few
    whole-array operations.

    Raises:
        ValueError: more used symbols than 2**max_len.
    """
    f = np.asarray(freqs, dtype=np.int64)
    lengths = np.zeros(f.size, dtype=np.int64)
    used = np.flatnonzero(f > 0)
    n = used.size
    if n == 0:
        return lengths
    if n == 1:
        lengths[used[0]] = 1
        return lengths
    if n > 1 << max_len:
        raise ValueError(f"{n} symbols do not fit codes of {max_len} bits")
    order = used[np.lexsort((used, f[used]))]
    leaf_w = f[order]
    leaf_c = np.eye(n, dtype=np.int64)
    item_w, item_c = leaf_w, leaf_c
    for _ in range(max_len - 1):
        pairs = item_w.size // 2
        pack_w = item_w[0 : 2 * pairs : 2] + item_w[1 : 2 * pairs : 2]
        pack_c = item_c[0 : 2 * pairs : 2] + item_c[1 : 2 * pairs : 2]
        w = np.concatenate([leaf_w, pack_w])
        c = np.concatenate([leaf_c, pack_c])
        keep = np.argsort(w, kind="stable")
        item_w, item_c = w[keep], c[keep]
    lengths[order] = item_c[: 2 * n - 2].sum(axis=0)
    return lengths


def huffman_bits(freqs: NDArray[np.integer], lengths: NDArray[np.integer]) -> int:
    """Total code bits for these frequencies and lengths."""
    return int((np.asarray(freqs, dtype=np.int64) * np.asarray(lengths, dtype=np.int64)).sum())


def encode_symbols(symbols: NDArray[np.integer], lengths: NDArray[np.integer]) -> tuple[bytes, int]:
    """The concatenated canonical codes of `symbols` (MSB-first) and their exact bit length."""
    codes = canonical_codes(lengths)
    sym = np.asarray(symbols, dtype=np.int64)
    return bitio.pack_fields(codes[sym], np.asarray(lengths, dtype=np.int64)[sym])
