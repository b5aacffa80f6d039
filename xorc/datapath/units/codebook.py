"""Codebook lookup of the dictionary codec (docs/codecs/dictionary.md; docs/datapath.md §3.6).

Hardware: the codebooks (G x K entries of Q bits, the implicit zero first for layout `entry`)
are loaded into a lookup table before the tensor; the index unpacker (fixed width) or the Huffman
decoder delivers indices; the lookup reads DIM entries per cycle, choosing the codebook from the
row (output channel group) the weight belongs to; the mask unit inserts zeros for layout `mask`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.common import from_sign_magnitude
from xorc.codecs.dictionary.schema import DictionaryParams
from xorc.datapath import fields
from xorc.datapath.dram import BusStream
from xorc.errors import CorruptStream


def read_table(bus: BusStream, rec: DictionaryParams) -> NDArray[np.int16]:
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
    rec: DictionaryParams,
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


def to_tensor_order(flat: NDArray[np.int16], rec: DictionaryParams) -> NDArray[np.int16]:
    """From the coded order (rows of the group axis first) back to the tensor's C order."""
    if not rec.shape:
        return flat.reshape(())
    return np.ascontiguousarray(np.moveaxis(flat.reshape(rec.coded_shape), 0, rec.axis))
