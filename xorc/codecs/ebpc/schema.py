"""The record schema of codec `ebpc` as a weight codec (docs/codecs/ebpc.md §7): params checked
into `EbpcParams`, the stream lengths they imply, and the level range of the decoded words.

Shared by the reference decoder (`weights_decode.py`) and the datapath model
(`xorc/datapath/pipelines/ebpc.py`); each decodes the streams on its own. Imports only the
format constants (`streams.py`), no decoder module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import n_elements, param_int
from xorc.codecs.ebpc.streams import (
    BLOCK_SIZES,
    MAX_ZERO_RUN,
    RTL_MAX_WORDS,
    WORD_WIDTHS,
    padded_nbytes,
)
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON


@dataclass(frozen=True)
class EbpcParams:
    """A checked `ebpc` weight record: W, N and one (n_words, znz_bitlen, bpc_bitlen) per RTL
    transmission; the transmissions' streams are concatenated, each padded to whole W-bit words."""

    word_width: int
    block_size: int
    n_words: list[int]
    znz_bitlen: list[int]
    bpc_bitlen: list[int]

    def padded(self, bitlen: int) -> int:
        """Bytes of a stream of `bitlen` bits padded to whole W-bit words."""
        return padded_nbytes(bitlen, self.word_width)

    @property
    def znz_bytes(self) -> int:
        """Length of the `znz` stream: every transmission's, padded."""
        return sum(self.padded(b) for b in self.znz_bitlen)

    @property
    def bpc_bytes(self) -> int:
        """Length of the `bpc` stream: every transmission's, padded."""
        return sum(self.padded(b) for b in self.bpc_bitlen)


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
    return list(value)  # type: ignore[arg-type]


def parse(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> EbpcParams:
    """Check the params of an `ebpc` record of the given shape (`bits` is checked on the decoded
    levels, `check_levels`).

    Raises:
        BadRecord: a param is missing, of the wrong type, out of range or inconsistent.
    """
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
    return EbpcParams(w, n, words, znz_bits, bpc_bits)


def check_levels(values: NDArray[np.integer], bits: int) -> None:
    """Every decoded word is a `bits`-bit level (|v| <= 2**(bits-1) - 1).

    Raises:
        CorruptStream: one is not.
    """
    limit = (1 << (bits - 1)) - 1
    if values.size and max(-int(values.min()), int(values.max())) > limit:  # no abs: -2**15
        raise CorruptStream(f"ebpc streams decode levels outside +-{limit} for {bits}-bit weights")
