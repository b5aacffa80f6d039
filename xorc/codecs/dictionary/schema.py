"""The record schema of codec `dictionary` (docs/codecs/dictionary.md §1-§3): params checked
into `DictionaryParams`, with what they imply (groups, entries, index width, stream names).

Shared by the reference decoder (`decode.py`) and the datapath model
(`xorc/datapath/pipelines/dictionary.py`); each reads the streams on its own. Imports no decoder
module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xorc.codecs.common import n_elements, param_bool, param_int
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON

PARAM_KEYS = frozenset({"k", "axis", "group", "zeros", "huffman"})
RUN_KEYS = frozenset({"nonzero", "rice_k"})
ZERO_LAYOUTS = ("none", "entry", "mask", "runs")
MAX_K = 256
LENGTH_BITS = 4
MAX_RICE_K = 24


@dataclass(frozen=True)
class DictionaryParams:
    """Everything the params and the shape imply (sections 1 and 2)."""

    shape: tuple[int, ...]
    bits: int
    k: int
    axis: int
    group: int
    zeros: str
    huffman: bool
    rows: int
    cols: int
    nonzero: int = 0
    rice_k: int = 0

    @property
    def n(self) -> int:
        return self.rows * self.cols

    @property
    def groups(self) -> int:
        return -(-self.rows // self.group)

    @property
    def entries(self) -> int:
        """Stored entries per codebook (E)."""
        return self.k - 1 if self.zeros == "entry" else self.k

    @property
    def index_bits(self) -> int:
        """Fixed index width b = ceil(log2 K)."""
        return (self.k - 1).bit_length()

    def stream_names(self) -> list[str]:
        """The streams of this layout, in payload order (section 3)."""
        names = ["codebook"]
        if self.zeros in ("mask", "runs"):
            names.append(self.zeros)
        if self.huffman:
            names.append("code_lengths")
        return [*names, "indices"]

    def check_streams(self, names: Iterable[str]) -> None:
        """No stream outside `stream_names()` is present.

        Raises:
            CorruptStream: naming the first other one.
        """
        unexpected = sorted(set(names) - set(self.stream_names()))
        if unexpected:
            raise CorruptStream(f"unexpected stream {unexpected[0]!r} for this dictionary layout")

    @property
    def coded_shape(self) -> tuple[int, ...]:
        """The shape in coded order: the group axis first, then the others (section 1)."""
        s, a = self.shape, self.axis
        return (s[a], *s[:a], *s[a + 1 :]) if s else ()


def parse(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> DictionaryParams:
    """Validate the params against the shape (section 2).

    Raises:
        BadRecord: a param is missing, unknown, of the wrong type or out of range.
    """
    if not all(type(d) is int and d >= 0 for d in shape):
        raise BadRecord(f"shape {shape!r} must be non-negative integers")
    if type(bits) is not int or not 2 <= bits <= 8:
        raise BadRecord(f"bits must be an integer in [2, 8], got {bits!r}")
    zeros = params.get("zeros")
    if zeros not in ZERO_LAYOUTS:
        raise BadRecord(f"codec parameter 'zeros' must be one of {ZERO_LAYOUTS}, got {zeros!r}")
    extra = sorted(set(params) - PARAM_KEYS - (RUN_KEYS if zeros == "runs" else set()))
    if extra:
        raise BadRecord(f"unknown dictionary codec parameter {extra[0]!r}")
    k = param_int(params, "k", 1, MAX_K)
    axis = param_int(params, "axis", 0, max(len(shape) - 1, 0))
    rows = shape[axis] if shape else 1
    group = param_int(params, "group", 1, max(rows, 1))
    coded_huffman = param_bool(params, "huffman")
    if coded_huffman and k < 2:
        raise BadRecord("codec parameter 'huffman' needs k >= 2")
    n = n_elements(shape)
    cols = n // rows if rows else 0
    nonzero = param_int(params, "nonzero", 0, n) if zeros == "runs" else 0
    rice_k = param_int(params, "rice_k", 0, MAX_RICE_K) if zeros == "runs" else 0
    return DictionaryParams(
        tuple(shape), bits, k, axis, group, str(zeros), coded_huffman, rows, cols, nonzero, rice_k
    )
