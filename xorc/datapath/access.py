"""How a layer reads its weights at run time, by the record's weight kind (docs/datapath.md
§5.1): what one use of the weights costs in DRAM bytes, beyond the one decode `simulate` counts.

* `embedding` (a Gather table): a lookup reads rows, not the table. The simulator assumes the
  compressed table is laid out row-addressably and counts the average row: the tensor's bus
  bytes over its rows (`dram_bytes_per_row`), against a row of int8 weights
  (`uncompressed_bytes_per_row`). One token costs one row.
* `recurrent` (LSTM/GRU/RNN W and R, DynamicQuantizeLSTM): each time step multiplies by the
  whole weight. When the decoded int8 weights fit in the scratchpad (`sp_kib`) they are loaded
  once and stay (`reads_per_step` 0 after the first step); when they do not, they are read and
  decoded again every time step (`dram_bytes_per_step` = the tensor's bus bytes).
* every other kind: read once per inference (None: nothing to add).
"""

from __future__ import annotations

from xorc.datapath.config import DatapathConfig
from xorc.tensor import JSON

RECURRENT = ("recurrent", "quantized_lstm")


def access(
    kind: object, shape: tuple[int, ...], dram_bytes: int, config: DatapathConfig
) -> dict[str, JSON] | None:
    """The run-time access figures of one record (module docstring), or None."""
    n = 1
    for d in shape:
        n *= d
    if kind == "embedding" and shape:
        rows = shape[0]
        per_row = n // rows if rows else 0
        return {
            "pattern": "rows",
            "rows": rows,
            "dram_bytes_per_row": round(dram_bytes / rows, 2) if rows else None,
            "uncompressed_bytes_per_row": per_row * config.input_bits // 8,
        }
    if kind in RECURRENT:
        on_chip = n * config.input_bits // 8 <= config.sp_kib * 1024
        return {
            "pattern": "every time step",
            "fits_on_chip": on_chip,
            "reads_per_step": 0 if on_chip else 1,
            "dram_bytes_per_step": 0 if on_chip else dram_bytes,
            "uncompressed_bytes_per_step": 0 if on_chip else n * config.input_bits // 8,
        }
    return None
