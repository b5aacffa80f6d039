"""Decoder of codec `raw` (docs/format.md, "Codec raw")."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs.common import from_sign_magnitude, n_elements, param_bool, stream
from xorc.tensor import JSON


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of a `raw` tensor."""
    n = n_elements(shape)
    if param_bool(params, "masked"):
        mask = bitio.unpack_bits(stream(streams, "mask", (n + 7) // 8), n).astype(bool)
        n_kept = int(mask.sum())
    else:
        mask = None
        n_kept = n
    data = stream(streams, "values", (n_kept * bits + 7) // 8)
    codes = bitio.bits_to_fields(bitio.unpack_bits(data, n_kept * bits), bits, n_kept)
    kept = from_sign_magnitude(codes, bits)
    if mask is None:
        return kept.reshape(shape)
    out = np.zeros(n, dtype=np.int16)
    out[mask] = kept
    return out.reshape(shape)
