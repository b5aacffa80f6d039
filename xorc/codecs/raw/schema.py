"""The record schema of codec `raw` (docs/format.md §4.1): params checked into `RawParams`, with
the stream lengths they imply.

Shared by the reference decoder (`decode.py`) and the datapath model
(`xorc/datapath/pipelines/raw.py`). Imports no decoder module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xorc.codecs.common import n_elements, param_bool
from xorc.tensor import JSON


@dataclass(frozen=True)
class RawParams:
    """A checked `raw` record: n weights of Q bits, masked or not; `full_range`: the
    negative-zero code is the level -2**(Q-1) (docs/format.md §4.1)."""

    n: int
    bits: int
    masked: bool
    full_range: bool = False

    @property
    def mask_bytes(self) -> int:
        """Length of the `mask` stream (present only when `masked`): one bit per weight."""
        return (self.n + 7) // 8

    def values_bytes(self, count: int) -> int:
        """Length of the `values` stream holding `count` Q-bit codes."""
        return (count * self.bits + 7) // 8


def parse(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> RawParams:
    """Check the params.

    Raises:
        BadRecord: `masked` or `full_range` (optional) is not a boolean.
    """
    full = "full_range" in params and param_bool(params, "full_range")
    return RawParams(n_elements(shape), bits, param_bool(params, "masked"), full)
