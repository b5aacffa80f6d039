"""Reference decoder of codec `xor` (docs/codecs/xor.md; variant 2: §11; variant 3: §12).

Imports only the shared modules (`schema`, `network`, `mask`, `patches`), never the solver or
encoder. The record's params are checked by `schema.parse`, which the datapath model shares.
Work is vectorised per plane over the kept weights: seeds -> XOR network -> patches -> mask ->
sign-magnitude reassembly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.common import from_sign_magnitude, n_elements, stream
from xorc.codecs.xor import adaptive, schema
from xorc.codecs.xor.mask import decode_mask, stream_bits
from xorc.codecs.xor.network import network, network_crc32, xor_outputs
from xorc.codecs.xor.patches import decode_patches
from xorc.codecs.xor.schema import VARIANT as VARIANT
from xorc.errors import CorruptStream
from xorc.tensor import JSON


def busy_slices(kept: NDArray[np.int64], n_out: int) -> tuple[int, NDArray[np.int64]]:
    """(number of slices holding a kept weight, index of each kept weight's slice among them)."""
    slice_of = kept // n_out
    first = np.ones(slice_of.size, dtype=bool)
    first[1:] = slice_of[1:] != slice_of[:-1]
    index = np.cumsum(first) - 1
    return int(first.sum()), index


def busy_ids(kept: NDArray[np.int64], n_out: int) -> NDArray[np.int64]:
    """The sorted ids of the slices holding a kept weight (`kept` sorted): np.unique without
    the sort."""
    slice_of = kept // n_out
    first = np.ones(slice_of.size, dtype=bool)
    first[1:] = slice_of[1:] != slice_of[:-1]
    return slice_of[first]  # type: ignore[no-any-return]


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


def seed_windows(
    seeds: NDArray[np.uint64], n_in: list[int], stages: list[int], stream_len: int
) -> NDArray[np.uint64]:
    """Variant 2 (docs/codecs/xor.md §11.1): the register contents (planes, busy slices) after
    each busy slice's shift: bits k n .. (k+1) n - 1 hold the seed of busy slice m - k, or 0
    where m - k precedes the first busy slice of m's stream."""
    out = seeds.copy()
    n_busy = seeds.shape[1]
    u = np.arange(n_busy, dtype=np.int64) % max(stream_len, 1)
    for i, (width, depth) in enumerate(zip(n_in, stages, strict=True)):
        for k in range(1, depth if width else 1):
            live = np.flatnonzero(u >= k)
            out[i, live] |= seeds[i, live - k] << np.uint64(k * width)
    return out


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
    invert: list[int] | None = None,
) -> NDArray[np.uint16]:
    """Sign-magnitude codes of the kept weights: XOR-network outputs (inverted where `invert`
    says), then patch flips.

    `seeds` is (planes, busy slices) (variant 2: the register windows); kept weight c uses seed
    column `seed_index[c]` and M row word `row_words[c]`.
    """
    q = seeds.shape[0]
    codes = np.zeros(seed_index.size, dtype=np.uint16)
    for i in range(q):
        plane = xor_outputs(seeds[i][seed_index], row_words)
        if invert is not None and invert[i]:
            plane ^= np.uint8(1)
        plane[flips[i]] ^= np.uint8(1)
        codes |= plane.astype(np.uint16) << np.uint16(q - 1 - i)
    return codes


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of an `xor` tensor."""
    p = schema.parse(shape, bits, params)
    n = n_elements(shape)
    rows = network(p.m_seed, p.n_out)
    p.check_network(network_crc32(rows))
    mask = decode_mask(stream(streams, "mask"), n, p.n_kept, p.mask_coding, p.mask_k, p.mask_bits)
    adapt = p.variant == schema.VARIANT_ADAPT  # patches are care indices (§12.3)
    span = p.n_kept if adapt else n
    patched = decode_patches(stream(streams, "patches"), p.patches, p.patch_k, p.patch_bits, span)
    schema.check_streams(streams)
    kept = np.flatnonzero(mask)
    n_busy, seed_index = busy_slices(kept, p.n_out)
    if adapt:
        care = np.bincount(seed_index, minlength=n_busy).astype(np.int64)
        widths = adaptive.field_widths(care, p.rate or [], p.n_in)
        fields = adaptive.read_fields(stream(streams, "seeds"), widths)
        seeds = adaptive.register_windows(fields, widths, p.n_in, p.stream_len)
    else:
        seeds = read_seeds(stream(streams, "seeds"), n_busy, p.n_in)
    if p.variant == schema.VARIANT_SEQ:
        seeds = seed_windows(seeds, p.n_in, p.plane_stages(), p.stream_len)
    flips = patched if adapt else [care_indices(kept, pos) for pos in patched]
    codes = kept_codes(seeds, seed_index, rows[kept % p.n_out], flips, p.plane_invert())
    out = np.zeros(n, dtype=np.int16)
    out[kept] = from_sign_magnitude(codes, bits)
    return out.reshape(shape)
