"""Decoder of codec `raw` (docs/format.md, "Codec raw").

The record's params are checked by `schema.parse`, which the datapath model shares.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.common import from_sign_magnitude, stream
from xorc.codecs.raw import schema
from xorc.tensor import JSON


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of a `raw` tensor."""
    p = schema.parse(shape, bits, params)
    n = p.n
    if p.masked:
        mask = bitio.unpack_bits(stream(streams, "mask", p.mask_bytes), n).astype(bool)
        n_kept = int(mask.sum())
    else:
        mask = None
        n_kept = n
    data = stream(streams, "values", p.values_bytes(n_kept))
    codes = bitio.bits_to_fields(bitio.unpack_bits(data, n_kept * bits), bits, n_kept)
    kept = from_sign_magnitude(codes, bits, p.full_range)
    if mask is None:
        return kept.reshape(shape)
    out = np.zeros(n, dtype=np.int16)
    out[mask] = kept
    return out.reshape(shape)
