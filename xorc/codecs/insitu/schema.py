"""The record schema of codec `insitu` (docs/codecs/insitu.md §1-§3, §5): params checked into
`InsituParams`, with the factor shapes and stream lengths they imply.

Shared by the reference decoder (`decode.py`), the datapath model
(`xorc/datapath/pipelines/insitu.py`) and the encoder's storage accounting. Imports no decoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xorc.codecs.common import n_elements, param_int
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON

PARAM_KEYS = frozenset({"axis", "bi", "bo", "qb", "qu", "qv", "mbits", "shift"})
MAX_BI = 64
MAX_BO = 4096
MAX_MBITS = 16
MAX_SHIFT = 62
ACC_BITS = 48
"""Signed accumulator width of level 2 (§4 step 2): |acc| < 2^40 never wraps it."""


@dataclass(frozen=True)
class InsituParams:
    """Everything the params and the shape imply (sections 1 to 3)."""

    shape: tuple[int, ...]
    bits: int
    axis: int
    bi: int
    bo: int
    qb: int
    qu: int
    qv: int
    mbits: int
    shift: int
    rows: int
    cols: int
    ci: int
    k: int

    @property
    def n(self) -> int:
        return self.rows * self.cols

    @property
    def basis_shape(self) -> tuple[int, ...]:
        return (self.bo, self.bi, self.k) if self.bi else (self.bo, self.cols)

    @property
    def u_shape(self) -> tuple[int, int, int]:
        return (self.bo, self.ci, self.bi)

    def stream_bits(self) -> dict[str, int]:
        """Bits of each stream, in payload order (section 3)."""
        out = {"basis": _count(self.basis_shape) * self.qb}
        if self.bi:
            out["u"] = _count(self.u_shape) * self.qu
        out["v"] = self.rows * self.bo * self.qv
        out["multipliers"] = self.rows * self.mbits
        return out

    def check_streams(self, names: Iterable[str]) -> None:
        """No stream outside `stream_bits()` is present.

        Raises:
            CorruptStream: naming the first other one.
        """
        unexpected = sorted(set(names) - set(self.stream_bits()))
        if unexpected:
            raise CorruptStream(f"unexpected stream {unexpected[0]!r} for this insitu layout")

    @property
    def macs(self) -> dict[str, int]:
        """The generator's work (section 4): level-1 and level-2 MACs, requantizations."""
        return {
            "level1": self.bo * self.bi * self.cols,
            "level2": self.rows * self.bo * self.cols,
            "requant": self.n,
        }


def _count(shape: tuple[int, ...]) -> int:
    return n_elements(shape)


def split(shape: tuple[int, ...], axis: int) -> tuple[int, int, int, int]:
    """(R, F, Ci, K) of a weight shape with output axis `axis` (section 1); Ci = K = 0 when
    level 1 is not possible."""
    rows = shape[axis]
    cols = n_elements(shape) // rows if rows else 0
    if len(shape) >= 3 and axis == 0:
        ci, k = shape[1], n_elements(shape[2:])
        if k >= 2 and ci >= 1:
            return rows, cols, ci, k
    return rows, cols, 0, 0


def max_bi(ci: int, k: int) -> int:
    """The largest Bi the schema allows for a layer (0: level 2 only)."""
    return min(ci, k, MAX_BI)


def parse(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> InsituParams:
    """Validate the params against the shape (section 2).

    Raises:
        BadRecord: a param is missing, unknown, of the wrong type or out of range.
    """
    if not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRecord(f"shape {shape!r} must be a non-empty list of non-negative integers")
    if type(bits) is not int or not 2 <= bits <= 8:
        raise BadRecord(f"bits must be an integer in [2, 8], got {bits!r}")
    extra = sorted(set(params) - PARAM_KEYS)
    if extra:
        raise BadRecord(f"unknown insitu codec parameter {extra[0]!r}")
    if n_elements(shape) == 0:
        raise BadRecord("an insitu record needs at least one weight")
    axis = param_int(params, "axis", 0, len(shape) - 1)
    rows, cols, ci, k = split(shape, axis)
    bi = param_int(params, "bi", 0, max_bi(ci, k))
    bo = param_int(params, "bo", 1, min(rows, cols, MAX_BO))
    qb = param_int(params, "qb", 2, 8)
    qu = param_int(params, "qu", 2, 8) if bi else param_int(params, "qu", 0, 0)
    qv = param_int(params, "qv", 2, 8)
    mbits = param_int(params, "mbits", 1, MAX_MBITS)
    shift = param_int(params, "shift", 0, MAX_SHIFT)
    return InsituParams(
        tuple(shape), bits, axis, bi, bo, qb, qu, qv, mbits, shift, rows, cols, ci, k
    )
