"""Codebook lookup of the dictionary codec (docs/codecs/dictionary.md; docs/datapath.md §3.6).

Hardware: the codebooks (G x K entries of Q bits, the implicit zero first for layout `entry`)
are loaded into a lookup table before the tensor; the index unpacker (fixed width) or the Huffman
decoder delivers indices; the lookup reads DIM entries per cycle, choosing the codebook from the
row (output channel group) the weight belongs to; the mask unit inserts zeros for layout `mask`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import from_sign_magnitude, n_elements, param_bool, param_int
from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON

PARAM_KEYS = frozenset({"k", "axis", "group", "zeros", "huffman"})
RUN_KEYS = frozenset({"nonzero", "rice_k"})
ZERO_LAYOUTS = ("none", "entry", "mask", "runs")
MAX_K = 256
MAX_RICE_K = 24


@dataclass(frozen=True)
class DictRecord:
    """A checked `dictionary` record (docs/codecs/dictionary.md §1-§2)."""

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
        """Stored entries per codebook."""
        return self.k - 1 if self.zeros == "entry" else self.k

    @property
    def index_bits(self) -> int:
        return (self.k - 1).bit_length()

    def stream_names(self) -> list[str]:
        names = ["codebook"]
        if self.zeros in ("mask", "runs"):
            names.append(self.zeros)
        if self.huffman:
            names.append("code_lengths")
        return [*names, "indices"]


def parse(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> DictRecord:
    """Check the params against the shape.

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
    unknown = sorted(set(params) - PARAM_KEYS - (RUN_KEYS if zeros == "runs" else set()))
    if unknown:
        raise BadRecord(f"unknown dictionary codec parameter {unknown[0]!r}")
    k = param_int(params, "k", 1, MAX_K)
    axis = param_int(params, "axis", 0, max(len(shape) - 1, 0))
    rows = shape[axis] if shape else 1
    group = param_int(params, "group", 1, max(rows, 1))
    huffman = param_bool(params, "huffman")
    if huffman and k < 2:
        raise BadRecord("codec parameter 'huffman' needs k >= 2")
    n = n_elements(shape)
    nonzero = param_int(params, "nonzero", 0, n) if zeros == "runs" else 0
    rice_k = param_int(params, "rice_k", 0, MAX_RICE_K) if zeros == "runs" else 0
    cols = n // rows if rows else 0
    return DictRecord(
        tuple(shape), bits, k, axis, group, str(zeros), huffman, rows, cols, nonzero, rice_k
    )


def read_table(bus: BusStream, rec: DictRecord) -> NDArray[np.int16]:
    """The (G, K) lookup table: stored entries, the implicit zero first for layout `entry`.

    Raises:
        CorruptStream: wrong length, pad bits, or a stored zero entry.
    """
    count = rec.groups * rec.entries
    fields.exact_stream(bus, count * rec.bits, "codebook")
    codes = fields.narrow_fields(bus, count, rec.bits)
    if (codes & np.uint16((1 << (rec.bits - 1)) - 1) == 0).any():
        raise CorruptStream("stream 'codebook' holds a zero entry")
    entries = from_sign_magnitude(codes, rec.bits).reshape(rec.groups, rec.entries)
    if rec.zeros == "entry":
        entries = np.concatenate([np.zeros((rec.groups, 1), dtype=np.int16), entries], axis=1)
    return entries


def lookup(
    table: NDArray[np.int16],
    idx: NDArray[np.int64],
    rec: DictRecord,
    keep: NDArray[np.bool_] | None,
) -> NDArray[np.int16]:
    """Values of the coded weights: entry idx of the codebook of each weight's row group."""
    if rec.groups == 0:
        return np.zeros(0, dtype=np.int16)
    if rec.groups == 1:
        return table[0][idx]
    if keep is None:
        # coded order is row-major: weight j lies in row j // cols
        group = (np.arange(idx.size, dtype=np.int64) // rec.cols) // rec.group
    else:
        # the kept weights of each row: a cumulative count per row splits idx by row
        per_row = np.count_nonzero(keep.reshape(rec.rows, rec.cols), axis=1)
        group = np.repeat(np.arange(rec.rows) // rec.group, per_row)
    return table.reshape(-1)[group * rec.k + idx]


def to_tensor_order(flat: NDArray[np.int16], rec: DictRecord) -> NDArray[np.int16]:
    """From the coded order (rows of the group axis first) back to the tensor's C order."""
    if not rec.shape:
        return flat.reshape(())
    moved = (rec.shape[rec.axis], *rec.shape[: rec.axis], *rec.shape[rec.axis + 1 :])
    return np.ascontiguousarray(np.moveaxis(flat.reshape(moved), 0, rec.axis))
