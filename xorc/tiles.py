"""Crossbar-aligned pruning units and the tile-presence bitmap (docs/format.md §3.6).

A weight with output channels along `axis` is seen as the matrix [Co, F] (`matrix_form`:
the output axis first, the rest flattened in C order; F = Ci/groups x kernel); its Co rows
split into `groups` groups of N = Co/groups output channels. On a crossbar the matrix is
transposed (F word lines by N bit lines) and tiled into `rows` x `cols` tiles. A pruning unit
is, within group g and column block cb (output channels cb*cols .. of the group):

* kind `crossbar`: one tile, the features ru*rows .. ru*rows + rows - 1;
* kind `kernel-group`: one input channel's kernel, the features ru*kernel .. + kernel - 1.

Units are numbered ((g x n_cb) + cb) x n_ru + ru; the `presence` stream holds one bit per unit
in that order (xorc/bits.py, MSB-first), 1 when the unit may hold nonzero levels. This module
only reads; it imports no encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc.bits import pack_bits, unpack_bits

PRESENCE = "presence"
KINDS = ("kernel-group", "crossbar")
MAX_SIDE = 4096


@dataclass(frozen=True)
class Structure:
    """A record's `structure` field (docs/format.md §3.6)."""

    kind: str
    rows: int
    cols: int
    kernel: int
    groups: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "cols": self.cols,
            "kernel": self.kernel,
            "groups": self.groups,
        }

    def grid(self, shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
        """(column blocks per group, row units per column block, features F)."""
        co = shape[axis]
        features = int(np.prod(shape, dtype=np.int64)) // max(co, 1)
        n_cb = -(-(co // self.groups) // self.cols)
        n_ru = -(-features // self.rows) if self.kind == "crossbar" else features // self.kernel
        return n_cb, n_ru, features

    def n_units(self, shape: tuple[int, ...], axis: int) -> int:
        n_cb, n_ru, _ = self.grid(shape, axis)
        return self.groups * n_cb * n_ru


def unit_ids(shape: tuple[int, ...], axis: int, st: Structure) -> NDArray[np.int64]:
    """The unit index of every weight, in the weight's own shape."""
    n_cb, n_ru, features = st.grid(shape, axis)
    co = shape[axis]
    per = co // st.groups
    o = np.arange(co)
    col_unit = (o // per) * n_cb + (o % per) // st.cols  # [Co]
    side = st.rows if st.kind == "crossbar" else st.kernel
    row_unit = np.arange(features) // side  # [F]
    ids = col_unit[:, None] * n_ru + row_unit[None, :]
    moved = [shape[axis], *(d for i, d in enumerate(shape) if i != axis)]
    return np.moveaxis(ids.reshape(moved), 0, axis)


def encode_presence(present: NDArray[np.bool_]) -> bytes:
    """The `presence` stream of a unit mask."""
    return pack_bits(present.astype(np.uint8))


def decode_presence(data: bytes, n_units: int) -> NDArray[np.bool_]:
    """The unit mask of a `presence` stream (its length was checked against `n_units`)."""
    return unpack_bits(data, n_units).astype(bool)


def absent_nonzero(levels: NDArray[np.integer], axis: int, st: Structure, data: bytes) -> int:
    """How many nonzero levels lie in units the bitmap marks absent (0 for a valid record)."""
    present = decode_presence(data, st.n_units(levels.shape, axis))
    ids = unit_ids(levels.shape, axis, st)
    return int(np.count_nonzero((levels != 0) & ~present[ids]))


def parse_structure(raw: Any, shape: tuple[int, ...], axis: int | None, where: str) -> Structure:
    """Check a record's `structure` against its shape (docs/format.md §3.6); ValueError with
    the reason (the caller names it a BadRecord)."""
    keys = ("kind", "rows", "cols", "kernel", "groups")
    if not isinstance(raw, dict) or sorted(raw) != sorted(keys):
        raise ValueError(f"{where}: field 'structure' must be an object with {', '.join(keys)}")
    if raw["kind"] not in KINDS:
        raise ValueError(f"{where}: structure kind must be kernel-group or crossbar")
    for key in keys[1:]:
        v = raw[key]
        if type(v) is not int or not 1 <= v <= MAX_SIDE:
            raise ValueError(f"{where}: structure {key} must be an integer in [1, {MAX_SIDE}]")
    if axis is None or len(shape) < 2:
        raise ValueError(f"{where}: a structure needs a channel axis and rank >= 2")
    st = Structure(raw["kind"], raw["rows"], raw["cols"], raw["kernel"], raw["groups"])
    features = int(np.prod(shape, dtype=np.int64)) // max(shape[axis], 1)
    if shape[axis] % st.groups or features % st.kernel or 0 in shape:
        raise ValueError(f"{where}: structure groups or kernel do not divide the weight {shape}")
    return st
