"""Weight-codec decoder of EBPC (codec id 3; docs/codecs/ebpc.md, "Container record").

The record's params are checked by `schema.parse`, which the datapath model shares.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import stream
from xorc.codecs.ebpc import schema
from xorc.codecs.ebpc.core_decode import decode_many
from xorc.codecs.ebpc.streams import EbpcStreams
from xorc.tensor import JSON


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of an `ebpc` tensor."""
    p = schema.parse(shape, bits, params)
    znz = stream(streams, "znz", p.znz_bytes)
    bpc = stream(streams, "bpc", p.bpc_bytes)
    w, n = p.word_width, p.block_size
    records = []
    zo = bo = 0
    for nw, zb, bb in zip(p.n_words, p.znz_bitlen, p.bpc_bitlen, strict=True):
        zl, bl = p.padded(zb), p.padded(bb)
        records.append(EbpcStreams(w, n, nw, znz[zo : zo + zl], bpc[bo : bo + bl], zb, bb))
        zo, bo = zo + zl, bo + bl
    values = np.concatenate(decode_many(records)).astype(np.int16)
    schema.check_levels(values, bits)
    return values.reshape(shape)
