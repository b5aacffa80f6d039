"""Encoder of codec `raw` (docs/format.md, "Codec raw")."""

from __future__ import annotations

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.raw.options import RawOptions
from xorc.tensor import Encoded, QuantTensor


def encode(q: QuantTensor, options: RawOptions) -> Encoded:
    """Store the levels as Q-bit fields, with a mask bitmap when that is smaller; `full_range`
    when a level is -2**(Q-1) (an already quantized weight using all 2**Q values)."""
    flat = q.values.ravel()
    mask = flat != 0
    n, n_kept = flat.size, int(mask.sum())
    masked = n + n_kept * q.bits < n * q.bits
    kept = flat[mask] if masked else flat
    values, _ = bitio.pack_fields(to_sign_magnitude(kept, q.bits), q.bits)
    streams = {"mask": bitio.pack_bits(mask)} if masked else {}
    streams["values"] = values
    stats = {"mask_bits": n if masked else 0, "value_bits": kept.size * q.bits}
    params: dict = {"masked": masked}
    if flat.size and int(flat.min()) < -((1 << (q.bits - 1)) - 1):
        params["full_range"] = True
    return Encoded(CodecId.RAW, params, streams, q.values, stats)
