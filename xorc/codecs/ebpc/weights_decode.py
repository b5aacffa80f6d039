"""Weight-codec decoder of EBPC (codec id 3; docs/codecs/ebpc.md, "Container record")."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import n_elements, param_int, stream
from xorc.codecs.ebpc.core_decode import decode_many
from xorc.codecs.ebpc.streams import (
    BLOCK_SIZES,
    MAX_ZERO_RUN,
    RTL_MAX_WORDS,
    WORD_WIDTHS,
    EbpcStreams,
    padded_nbytes,
)
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON


def _int_list(params: Mapping[str, JSON], key: str, count: int | None, hi: int) -> list[int]:
    value = params.get(key)
    if (
        not isinstance(value, list)
        or not value
        or any(type(v) is not int or not 0 <= v <= hi for v in value)
        or (count is not None and len(value) != count)
    ):
        want = f"{count} " if count is not None else ""
        raise BadRecord(f"codec parameter {key!r} must be a list of {want}integers in [0, {hi}]")
    return value


def decode(
    shape: tuple[int, ...], bits: int, params: Mapping[str, JSON], streams: Mapping[str, bytes]
) -> NDArray[np.int16]:
    """Rebuild the signed levels of an `ebpc` tensor."""
    w = param_int(params, "word_width", 8, 16)
    n = param_int(params, "block_size", 8, 16)
    if w not in WORD_WIDTHS or n not in BLOCK_SIZES or n > w:
        raise BadRecord(f"codec parameters word_width={w}, block_size={n} are not an RTL format")
    param_int(params, "max_zero_run", MAX_ZERO_RUN, MAX_ZERO_RUN)
    words = _int_list(params, "n_words", None, RTL_MAX_WORDS)
    count = len(words)
    znz_bits = _int_list(params, "znz_bitlen", count, 5 * RTL_MAX_WORDS)
    bpc_bits = _int_list(params, "bpc_bitlen", count, 20 * RTL_MAX_WORDS)
    total = n_elements(shape)
    if sum(words) != total:
        raise BadRecord(f"codec parameter 'n_words' sums to {sum(words)}, the shape holds {total}")
    if count > 1 and min(words) == 0:
        raise BadRecord("codec parameter 'n_words' has an empty transmission")
    znz = stream(streams, "znz", sum(padded_nbytes(b, w) for b in znz_bits))
    bpc = stream(streams, "bpc", sum(padded_nbytes(b, w) for b in bpc_bits))
    records = []
    zo = bo = 0
    for nw, zb, bb in zip(words, znz_bits, bpc_bits, strict=True):
        zl, bl = padded_nbytes(zb, w), padded_nbytes(bb, w)
        records.append(EbpcStreams(w, n, nw, znz[zo : zo + zl], bpc[bo : bo + bl], zb, bb))
        zo, bo = zo + zl, bo + bl
    values = np.concatenate(decode_many(records)).astype(np.int16)
    limit = (1 << (bits - 1)) - 1
    if values.size and int(np.abs(values).max()) > limit:
        raise CorruptStream(f"ebpc streams decode levels outside +-{limit} for {bits}-bit weights")
    return values.reshape(shape)
