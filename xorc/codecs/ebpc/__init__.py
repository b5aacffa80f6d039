"""EBPC (Extended Bit-Plane Compression, Cavigelli et al., JETCAS 2019), bit-exact with the
open-source EBPC RTL (pulp-platform/stream-ebpc). Spec: docs/codecs/ebpc.md; API: docs/api.md.

Public API (this package):

* ``encode(values, word_width=8, block_size=8) -> EbpcStreams``: the RTL's ZNZ and BPC
  streams for a sequence of signed W-bit words.
* ``decode(encoded) -> ndarray``: the words back (int8 for W = 8, int16 for W = 16).
* ``decode_many(records)``: several records at once (faster for many small streams).
* ``encode_transmissions(values, ...)``: a long stream split into RTL transmissions of at most
  2**24 words.

The weight-codec adapter (codec id 3, policy ``ebpc``) lives in the modules
``xorc.codecs.ebpc.weights_encode`` and ``xorc.codecs.ebpc.weights_decode`` (not `encode.py` and
`decode.py` as in the other codecs: the package's `encode` and `decode` are the stream API
above, as docs/api.md fixes them), with ``options`` (encoder knobs), ``schema`` (the record's
params checked, shared by the reference decoder and the datapath model) and ``spec`` (the
`CodecSpec`).

Importing the package or the decoder never imports encoder code (the entry points below import
their implementation on first call).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xorc.codecs.ebpc.streams import MAX_ZERO_RUN, RTL_MAX_WORDS, EbpcStreams

__all__ = [
    "MAX_ZERO_RUN",
    "RTL_MAX_WORDS",
    "EbpcStreams",
    "decode",
    "decode_many",
    "encode",
    "encode_transmissions",
]


def encode(
    values: ArrayLike,
    word_width: int = 8,
    block_size: int = 8,
    *,
    allow_non_rtl_block: bool = False,
    swap_zero_codes: bool = False,
) -> EbpcStreams:
    """EBPC-compress signed W-bit words (flattened in C order) into the RTL's two streams.

    Args:
        values: integers in [-2**(W-1), 2**(W-1) - 1].
        word_width: W, 8 or 16.
        block_size: N, 8 or 16; the RTL requires N <= W.
        allow_non_rtl_block: study variant (not RTL): allow N = 16 with W = 8.
        swap_zero_codes: study variant (not RTL): the evaluation script's swapped zero codes.

    Raises:
        ValueError: unsupported W/N, non-integer input or values outside the W-bit range.
    """
    from xorc.codecs.ebpc.core_encode import encode_values

    return encode_values(
        values,
        word_width,
        block_size,
        allow_non_rtl_block=allow_non_rtl_block,
        swap_zero_codes=swap_zero_codes,
    )


def decode(encoded: EbpcStreams) -> NDArray[np.int8] | NDArray[np.int16]:
    """The words of an `EbpcStreams` record: int8 for W = 8, int16 for W = 16.

    Raises:
        xorc.errors.CorruptStream: the record or a stream is inconsistent (one line).
    """
    from xorc.codecs.ebpc.core_decode import decode_streams

    return decode_streams(encoded)


def decode_many(records: Sequence[EbpcStreams]) -> list[NDArray[np.int8] | NDArray[np.int16]]:
    """`decode` of several records, parsed together (much faster for many small streams)."""
    from xorc.codecs.ebpc.core_decode import decode_many as _decode_many

    return _decode_many(records)


def encode_transmissions(
    values: ArrayLike, word_width: int = 8, block_size: int = 8, max_words: int = RTL_MAX_WORDS
) -> list[EbpcStreams]:
    """Split `values` into consecutive RTL transmissions of at most `max_words` words (2**24,
    the RTL's `num_words_i` limit) and encode each independently (RTL format)."""
    from xorc.codecs.ebpc.core_encode import encode_transmissions as _encode_transmissions

    return _encode_transmissions(values, word_width, block_size, max_words)
