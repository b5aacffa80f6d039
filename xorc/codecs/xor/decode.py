"""Reference decoder of codec `xor` (docs/codecs/xor.md).

Imports only the shared modules (`network`, `mask`, `patches`), never the solver or encoder.
Work is vectorised per plane over the kept weights: seeds -> XOR network -> patches -> mask ->
sign-magnitude reassembly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.common import from_sign_magnitude, n_elements, param_int, stream
from xorc.codecs.xor.mask import MASK_CODINGS, decode_mask, stream_bits
from xorc.codecs.xor.network import MAX_N_IN, MAX_N_OUT, network, network_crc32, xor_outputs
from xorc.codecs.xor.patches import decode_patches
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON

VARIANT = 1


@dataclass(frozen=True)
class XorParams:
    """The validated params of one `xor` tensor record (docs/codecs/xor.md §8)."""

    n_out: int
    m_seed: int
    m_crc32: int
    n_in: list[int]
    n_kept: int
    mask_coding: str
    mask_k: int
    mask_bits: int
    patches: list[int]
    patch_k: list[int]
    patch_bits: list[int]


def _int_list(params: Mapping[str, JSON], key: str, length: int, lo: int, hi: int) -> list[int]:
    value = params.get(key)
    if (
        not isinstance(value, list)
        or len(value) != length
        or any(type(v) is not int or not lo <= v <= hi for v in value)
    ):
        raise BadRecord(
            f"codec parameter {key!r} must be a list of {length} integers in [{lo}, {hi}], "
            f"got {value!r}"
        )
    return list(value)


def parse_params(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> XorParams:
    """Check every param against the shape and bit width.

    Raises:
        BadRecord: a param is missing, of the wrong type or out of range.
    """
    if type(bits) is not int or not 2 <= bits <= 8:
        raise BadRecord(f"bit width must be an integer in [2, 8], got {bits!r}")
    n = n_elements(shape)
    param_int(params, "variant", VARIANT, VARIANT)
    coding = params.get("mask_coding")
    if coding not in MASK_CODINGS:
        raise BadRecord(
            f"codec parameter 'mask_coding' must be one of {MASK_CODINGS}, got {coding!r}"
        )
    n_kept = param_int(params, "n_kept", 0, n)
    big = 1 << 62
    return XorParams(
        n_out=param_int(params, "n_out", 1, MAX_N_OUT),
        m_seed=param_int(params, "m_seed", 0, 2**32 - 1),
        m_crc32=param_int(params, "m_crc32", 0, 2**32 - 1),
        n_in=_int_list(params, "n_in", bits, 0, MAX_N_IN),
        n_kept=n_kept,
        mask_coding=str(coding),
        mask_k=param_int(params, "mask_k", 0, 32),
        mask_bits=param_int(params, "mask_bits", 0, big),
        patches=_int_list(params, "patches", bits, 0, n_kept),
        patch_k=_int_list(params, "patch_k", bits, 0, 32),
        patch_bits=_int_list(params, "patch_bits", bits, 0, big),
    )


def busy_slices(kept: NDArray[np.int64], n_out: int) -> tuple[int, NDArray[np.int64]]:
    """(number of slices holding a kept weight, index of each kept weight's slice among them)."""
    slice_of = kept // n_out
    first = np.ones(slice_of.size, dtype=bool)
    first[1:] = slice_of[1:] != slice_of[:-1]
    index = np.cumsum(first) - 1
    return int(first.sum()), index


def read_seeds(data: bytes, n_slices: int, n_in: list[int]) -> NDArray[np.uint64]:
    """The seed words, shape (planes, n_slices), of the busy slices, from the `seeds` stream."""
    per_slice = sum(n_in)
    bits = stream_bits(data, n_slices * per_slice, "seeds").reshape(n_slices, per_slice)
    seeds = np.zeros((len(n_in), n_slices), dtype=np.uint64)
    start = 0
    for i, width in enumerate(n_in):
        if width:
            block = np.ascontiguousarray(bits[:, start : start + width])
            seeds[i] = bitio.bits_to_fields(block, width, n_slices)
        start += width
    return seeds


def care_indices(kept: NDArray[np.int64], positions: NDArray[np.int64]) -> NDArray[np.int64]:
    """Ranks among the kept positions of patch positions, which must all be kept.

    Raises:
        CorruptStream: a patch hits a pruned position.
    """
    idx = np.searchsorted(kept, positions)
    if positions.size and (int(idx.max()) >= kept.size or not np.array_equal(kept[idx], positions)):
        raise CorruptStream("stream 'patches' patches a pruned position")
    return idx


def kept_codes(
    seeds: NDArray[np.uint64],
    seed_index: NDArray[np.int64],
    row_words: NDArray[np.uint64],
    flips: list[NDArray[np.int64]],
) -> NDArray[np.uint16]:
    """Sign-magnitude codes of the kept weights: XOR-network outputs, then patch flips.

    `seeds` is (planes, busy slices); kept weight c uses seed column `seed_index[c]` and M row
    word `row_words[c]`.
    """
    q = seeds.shape[0]
    codes = np.zeros(seed_index.size, dtype=np.uint16)
    for i in range(q):
        plane = xor_outputs(seeds[i][seed_index], row_words)
        plane[flips[i]] ^= np.uint8(1)
        codes |= plane.astype(np.uint16) << np.uint16(q - 1 - i)
    return codes


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of an `xor` tensor."""
    p = parse_params(shape, bits, params)
    n = n_elements(shape)
    rows = network(p.m_seed, p.n_out)
    if network_crc32(rows) != p.m_crc32:
        raise BadRecord("codec parameter 'm_crc32' does not match the XOR network of 'm_seed'")
    mask = decode_mask(stream(streams, "mask"), n, p.n_kept, p.mask_coding, p.mask_k, p.mask_bits)
    patched = decode_patches(stream(streams, "patches"), p.patches, p.patch_k, p.patch_bits, n)
    extra = set(streams) - {"mask", "seeds", "patches"}
    if extra:
        raise CorruptStream(f"unexpected stream(s) {sorted(extra)!r}")
    kept = np.flatnonzero(mask)
    n_busy, seed_index = busy_slices(kept, p.n_out)
    seeds = read_seeds(stream(streams, "seeds"), n_busy, p.n_in)
    flips = [care_indices(kept, pos) for pos in patched]
    codes = kept_codes(seeds, seed_index, rows[kept % p.n_out], flips)
    out = np.zeros(n, dtype=np.int16)
    out[kept] = from_sign_magnitude(codes, bits)
    return out.reshape(shape)
