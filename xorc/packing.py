"""Coding only the present units of an aligned-pruned tensor (docs/format.md §3.6 `coded`).

After the encode stage, a tensor pruned with `--prune-structure` is encoded a second time by
its policy with only the levels of its present units (the units holding a nonzero level), as
one vector in the order of the matrix [Co, F] row by row; the decoder learns their positions
from the `presence` bitmap. The packed coding is kept when its codec streams are shorter than
the whole tensor's (ties keep the whole tensor), so a blob never grows. The packed vector has
no channel axis: codecs see one per-tensor scale of 1 and no input moment (the dictionary's
error compensation and insitu's matrix factorization do not apply to it). Runs whose size or
accuracy search encodes the tensors (`--max-bits-per-weight`, `--max-drop`) keep the whole
tensor's coding.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from xorc.tensor import Encoded, QuantTensor
from xorc.tiles import pack, unit_mask, unpack

if TYPE_CHECKING:
    from xorc.config import CompressOptions
    from xorc.pipeline import TensorJob


def pack_present(job: TensorJob, options: CompressOptions) -> None:
    """Replace the job's encoding by the coding of its present units when that is shorter."""
    if job.aligned is None or job.encoded is None or job.q.axis is None:
        return
    st, info = job.aligned
    q, axis = job.q, job.q.axis
    _, mask = unit_mask(q.values, axis, st)
    n = int(mask.sum())
    if n == 0 or n == mask.size:
        return
    imp = None if q.importance is None else pack(q.importance, mask, axis)
    coded = QuantTensor(q.name, pack(q.values, mask, axis), q.bits, np.ones(1, np.float32),
                        None, imp)  # fmt: skip
    enc = job.policy.encode(coded, job.settings, options)
    whole = _size(job.encoded)
    if _size(enc) >= whole:
        return
    decoded = unpack(enc.decoded, mask, axis)
    job.encoded = replace(enc, decoded=decoded, stats={**enc.stats, "coded": "present"})
    info = {**info, "coded_weights": n, "whole_tensor_bytes": whole}
    job.aligned = (replace(st, coded="present"), info)


def _size(enc: Encoded) -> int:
    return sum(len(s) for s in enc.streams.values())
