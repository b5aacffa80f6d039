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
    coded: str = "all"  # "present": the codec codes only the present units' levels

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "rows": self.rows,
            "cols": self.cols,
            "kernel": self.kernel,
            "groups": self.groups,
        }
        return out if self.coded == "all" else {**out, "coded": self.coded}

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


def unit_mask(
    levels: NDArray[np.integer], axis: int, st: Structure
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(present units, their weights' mask in the levels' shape): a unit is present when
    it holds a nonzero level."""
    ids = unit_ids(levels.shape, axis, st)
    present = np.zeros(st.n_units(levels.shape, axis), bool)
    present[ids[levels != 0]] = True
    return present, present[ids]


def pack(levels: NDArray, mask: NDArray[np.bool_], axis: int) -> NDArray:
    """The levels at `mask`, in the order of the matrix [Co, F] row by row (§3.6 `coded`)."""
    return _matrix(levels, axis)[_matrix(mask, axis)]


def unpack(coded: NDArray, mask: NDArray[np.bool_], axis: int) -> NDArray:
    """`pack`'s inverse: `coded` at `mask`, zero elsewhere, in the mask's shape."""
    out = np.zeros(_matrix(mask, axis).shape, coded.dtype)
    out[_matrix(mask, axis)] = coded
    moved = [mask.shape[axis], *(d for i, d in enumerate(mask.shape) if i != axis)]
    return np.moveaxis(out.reshape(moved), 0, axis)


def coded_shape(
    shape: tuple[int, ...], axis: int | None, st: Structure | None, presence: bytes
) -> tuple[tuple[int, ...], NDArray[np.bool_] | None]:
    """The shape the codec decodes and, for `coded` "present", the mask of the coded weights
    (None: the codec decodes the whole tensor)."""
    if st is None or axis is None or st.coded != "present":
        return shape, None
    mask = decode_presence(presence, st.n_units(shape, axis))[unit_ids(shape, axis, st)]
    return (int(mask.sum()),), mask


def _matrix(a: NDArray, axis: int) -> NDArray:
    moved = np.moveaxis(a, axis, 0)
    return moved.reshape(moved.shape[0], -1)


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
    if not isinstance(raw, dict) or sorted(k for k in raw if k != "coded") != sorted(keys):
        raise ValueError(f"{where}: field 'structure' must be an object with {', '.join(keys)}")
    coded = raw.get("coded", "all")
    if coded not in ("all", "present"):
        raise ValueError(f"{where}: structure coded must be all or present")
    if raw["kind"] not in KINDS:
        raise ValueError(f"{where}: structure kind must be kernel-group or crossbar")
    for key in keys[1:]:
        v = raw[key]
        if type(v) is not int or not 1 <= v <= MAX_SIDE:
            raise ValueError(f"{where}: structure {key} must be an integer in [1, {MAX_SIDE}]")
    if axis is None or len(shape) < 2:
        raise ValueError(f"{where}: a structure needs a channel axis and rank >= 2")
    st = Structure(raw["kind"], raw["rows"], raw["cols"], raw["kernel"], raw["groups"], coded)
    features = int(np.prod(shape, dtype=np.int64)) // max(shape[axis], 1)
    if shape[axis] % st.groups or features % st.kernel or 0 in shape:
        raise ValueError(f"{where}: structure groups or kernel do not divide the weight {shape}")
    return st
