"""Decoder of codec `dictionary` (docs/codecs/dictionary.md, sections 1 to 6).

The record's params are checked by `schema.parse`, which the datapath model shares. Never
imports the encoder (`encode.py`, `kmeans.py`, `huffman_build.py`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.bounds import check_fits, check_rice
from xorc.codecs.common import from_sign_magnitude, stream
from xorc.codecs.dictionary import huffman
from xorc.codecs.dictionary.schema import LENGTH_BITS, DictionaryParams, parse
from xorc.codecs.dictionary.schema import MAX_K as MAX_K
from xorc.codecs.dictionary.schema import MAX_RICE_K as MAX_RICE_K
from xorc.errors import CorruptStream
from xorc.tensor import JSON


def _sized(streams: Mapping[str, bytes], name: str, nbits: int) -> bytes:
    """A stream that must be exactly ceil(nbits / 8) bytes with zero pad bits."""
    data = stream(streams, name, (nbits + 7) // 8)
    _check_pad(data, nbits, name)
    return data


def _check_pad(data: bytes, nbits: int, name: str) -> None:
    if nbits % 8 and data[-1] & ((1 << (8 - nbits % 8)) - 1):
        raise CorruptStream(f"stream {name!r} has nonzero pad bits")


def _fields(streams: Mapping[str, bytes], name: str, count: int, width: int) -> NDArray[np.int64]:
    """`count` consecutive `width`-bit fields filling a stream exactly."""
    data = _sized(streams, name, count * width)
    if width == 0:
        return np.zeros(count, dtype=np.int64)
    starts = width * np.arange(count, dtype=np.int64)
    return bitio.bit_windows(data, width, starts).astype(np.int64)


def read_codebooks(lay: DictionaryParams, streams: Mapping[str, bytes]) -> NDArray[np.int16]:
    """The G x K lookup table: stored entries, with the implicit zero first for `entry`."""
    codes = _fields(streams, "codebook", lay.groups * lay.entries, lay.bits)
    if (codes & ((1 << (lay.bits - 1)) - 1) == 0).any():
        raise CorruptStream("stream 'codebook' holds a zero entry")
    entries = from_sign_magnitude(codes, lay.bits).reshape(lay.groups, lay.entries)
    if lay.zeros == "entry":
        entries = np.concatenate([np.zeros((lay.groups, 1), dtype=np.int16), entries], axis=1)
    return entries


def read_indices(
    lay: DictionaryParams, streams: Mapping[str, bytes], count: int
) -> NDArray[np.int64]:
    """The `count` indices, fixed width or Huffman coded; each checked to be < K."""
    if not lay.huffman:
        idx = _fields(streams, "indices", count, lay.index_bits)
        if count and int(idx.max()) >= lay.k:
            raise CorruptStream(f"stream 'indices' holds an index >= k = {lay.k}")
        return idx
    lengths = _fields(streams, "code_lengths", lay.k, LENGTH_BITS)
    huffman.check_lengths(lengths)
    data = stream(streams, "indices")
    check_fits(count, int(lengths[lengths > 0].min()), 8 * len(data), "indices")
    idx, used = huffman.decode(data, count, lengths)
    if len(data) != (used + 7) // 8:
        raise CorruptStream(
            f"stream 'indices' is {len(data)} bytes, its codes need {(used + 7) // 8}"
        )
    _check_pad(data, used, "indices")
    return idx


def read_runs(lay: DictionaryParams, streams: Mapping[str, bytes]) -> NDArray[np.bool_]:
    """The nonzero mask from the Rice-coded zero runs (section 4)."""
    data = stream(streams, "runs")
    check_rice(lay.nonzero, lay.rice_k, 8 * len(data), "runs")
    bits = bitio.unpack_bits(data, 8 * len(data))
    try:
        gaps, used = bitio.rice_decode(bits, lay.nonzero, lay.rice_k)
    except ValueError as exc:
        raise CorruptStream(f"stream 'runs': {exc}") from None
    if len(data) != (used + 7) // 8:
        raise CorruptStream(f"stream 'runs' is {len(data)} bytes, its codes need {(used + 7) // 8}")
    _check_pad(data, used, "runs")
    positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
    keep = np.zeros(lay.n, dtype=bool)
    if positions.size:
        if gaps.max() >= lay.n or int(positions[-1]) >= lay.n:
            raise CorruptStream(f"stream 'runs' places a weight beyond the {lay.n} of the tensor")
        keep[positions] = True
    return keep


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of a `dictionary` tensor (section 6)."""
    lay = parse(tuple(shape), bits, params)
    lay.check_streams(streams)
    lut = read_codebooks(lay, streams)
    keep = None
    if lay.zeros == "mask":
        keep = bitio.unpack_bits(_sized(streams, "mask", lay.n), lay.n).astype(bool)
    elif lay.zeros == "runs":
        keep = read_runs(lay, streams)
    count = lay.n if keep is None else int(np.count_nonzero(keep))
    idx = read_indices(lay, streams, count)
    if lay.groups <= 1:
        values = lut[0][idx] if lay.groups else np.zeros(0, dtype=np.int16)
    else:
        group_of = np.repeat(np.arange(lay.rows) // lay.group, lay.cols)
        if keep is not None:
            group_of = group_of[keep]
        values = lut.ravel()[group_of * lay.k + idx]
    if keep is None:
        flat = values.astype(np.int16)
    else:
        flat = np.zeros(lay.n, dtype=np.int16)
        flat[keep] = values
    if not lay.shape:
        return flat.reshape(())
    return np.ascontiguousarray(np.moveaxis(flat.reshape(lay.coded_shape), 0, lay.axis))
