"""Building blocks of the area estimate (docs/datapath.md §6), shared by `area.py` and the
codecs' area hooks (`pipelines/<name>.py`, `area`).

Counts are in gate equivalents (GE, one 2-input NAND). The per-cell sizes below are assumptions
(typical of 65 nm standard-cell libraries), not measurements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from xorc.errors import BadRecord
from xorc.format import TensorRecord
from xorc.tensor import JSON

GE_XOR2 = 2.0
GE_AND2 = 1.33
GE_MUX2 = 2.33
GE_DFF = 5.0
GE_FULL_ADDER = 6.0

Units = dict[str, dict[str, JSON]]
"""Unit name -> {"ge": gate equivalents, ...: what the count is made of}."""

P = TypeVar("P")


def index_bits(x: int) -> int:
    """Bits of an index into x things (at least 1)."""
    return max(1, (max(x, 1) - 1).bit_length())


def rice_decoder_ge(pointers: int) -> float:
    """64-bit window, leading-one detector, remainder shifter, position adder, read pointers."""
    window = 64 * GE_DFF + 64 * 6 * GE_MUX2 + 64 * 1.5
    adder = 32 * GE_FULL_ADDER
    return window + adder + pointers * 32 * GE_DFF


def parsed(
    records: Sequence[TensorRecord], parse: Callable[[tuple[int, ...], int, dict[str, JSON]], P]
) -> list[tuple[TensorRecord, P]]:
    """Each record with its checked params.

    Raises:
        BadRecord: a record's params do not parse, with the tensor named.
    """
    out = []
    for r in records:
        try:
            out.append((r, parse(r.shape, r.bits, r.params)))
        except BadRecord as exc:
            raise BadRecord(f"tensor {r.name!r}: {exc}") from None
    return out
