"""The last stage of `compress`: each finished `TensorJob` becomes a container record, its
streams go into the payload, and the graph is stored without the weights (docs/format.md §3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xorc import __version__, onnx_io
from xorc.codecs import CodecId
from xorc.config import CompressOptions
from xorc.format import Container, TensorRecord, levels_digest
from xorc.format.container import SCALES, StreamRef, encode_scales, layout_payload, pow2_shifts
from xorc.quantize import is_bfloat16
from xorc.tensor import QuantTensor
from xorc.tiles import PRESENCE, encode_presence, unit_mask

if TYPE_CHECKING:
    from xorc.pipeline import TensorJob


CODEC_NAMES = {c.value: c.name.lower() for c in CodecId}


def stored_scales(q: QuantTensor, options: CompressOptions) -> tuple[str, bytes]:
    """The record's `scale_dtype` and `scales` stream: bfloat16 or pow2 when asked for and
    exact (docs/format.md §3.4), float32 otherwise."""
    if options.scale_dtype == "pow2" and pow2_shifts(q.scales) is not None:
        return "pow2", encode_scales(q.scales, "pow2")
    exact = options.scale_dtype == "bfloat16" and is_bfloat16(q.scales)
    dtype = "bfloat16" if exact else "float32"
    return dtype, encode_scales(q.scales, dtype)


def tensor_record(job: TensorJob, scale_dtype: str, streams: tuple[StreamRef, ...]) -> TensorRecord:
    """The container record of one finished job (docs/format.md §3.2)."""
    q, e = job.q, job.enc
    stats = {**e.stats, "bias_corrected": True} if job.bias_corrected else e.stats
    stats = {**stats, "weight_kind": job.weight.role}
    structure = None
    if job.aligned is not None and q.axis is not None:
        structure, info = job.aligned
        stats = {**stats, "aligned": info}
    offsets = None
    if job.stored is not None:
        st = job.stored
        exact = st.mode == "lossless" and not st.offsets.any()
        offsets = None if exact else tuple(int(o) for o in st.offsets)
        stats = {**stats, "prequantized": prequantized_note(job)}
    return TensorRecord(
        name=q.name,
        shape=q.shape,
        dtype=job.weight.dtype,
        bits=q.bits,
        axis=q.axis,
        codec=int(e.codec),
        codec_name=CODEC_NAMES.get(int(e.codec), str(e.codec)),
        policy=job.policy.name,
        params=e.params,
        streams=streams,
        n_weights=int(q.values.size),
        n_nonzero=int(np.count_nonzero(e.decoded)),
        digest=levels_digest(e.decoded),
        stats=stats,
        scale_dtype=scale_dtype,
        offsets=offsets,
        structure=structure,
        group_size=q.group,
    )


def presence_stream(job: TensorJob) -> list[tuple[str, bytes]]:
    """The `presence` stream of an aligned-pruned tensor (docs/format.md §3.6): a unit is
    present when the encoder's decoded levels hold a nonzero in it."""
    if job.aligned is None or job.q.axis is None:
        return []
    st = job.aligned[0]
    coded = st.coded == "present"  # present: the units coded, those of nonzero levels
    present, _ = unit_mask(job.q.values if coded else job.enc.decoded, job.q.axis, st)
    return [(PRESENCE, encode_presence(present))]


def uncompressed_summary(left: list[tuple[str, int, str]]) -> dict:
    """META `uncompressed` (docs/format.md §3.1) from (name, elements, reason) of every tensor
    left as it is: grouped by reason, largest first, with the five largest names."""
    groups: dict[str, list[tuple[str, int, str]]] = {}
    for item in left:
        groups.setdefault(item[2], []).append(item)
    out = []
    for reason, items in groups.items():
        items = sorted(items, key=lambda t: (-t[1], t[0]))
        n = sum(t[1] for t in items)
        out.append({"reason": reason, "n_tensors": len(items), "n_params": n,
                    "largest": [t[0] for t in items[:5]]})  # fmt: skip
    out.sort(key=lambda g: (-g["n_params"], g["reason"]))
    return {"n_params": sum(g["n_params"] for g in out), "groups": out}


def prequantized_note(job: TensorJob) -> dict:
    """What happened to an int8/uint8 weight (the record's `stats.prequantized`)."""
    st = job.stored
    assert st is not None
    note = {"source_dtype": job.weight.dtype, "mode": st.mode, "bits": st.bits}
    if job.settings.bits != st.bits:
        note["requested_bits"] = job.settings.bits
    return note


def source_bytes(model: onnx_io.SourceModel) -> int:
    """META `source_bytes` (docs/format.md §3.1): the serialized model's size, or, for a model
    with external data, its file's size plus its external data files' (never serialized)."""
    return model.source_bytes if model.external else model.proto.ByteSize()


def assemble(
    model: onnx_io.SourceModel,
    jobs: list[TensorJob],
    options: CompressOptions,
    biases: dict[str, np.ndarray] | None = None,
    fmap: dict | None = None,
    extra_meta: dict | None = None,
) -> Container:
    """Stage: records, payload and stripped graph (with the corrected biases) into one
    container."""
    scales = [stored_scales(j.q, options) for j in jobs]
    streams = [
        [(SCALES, data), *j.enc.streams.items(), *presence_stream(j)]
        for (_, data), j in zip(scales, jobs, strict=True)
    ]
    payload, refs = layout_payload(streams)
    records = tuple(
        tensor_record(j, dtype, r) for j, (dtype, _), r in zip(jobs, scales, refs, strict=True)
    )
    graph = onnx_io.strip_weights(model, {j.name: i for i, j in enumerate(jobs)}, biases)
    return Container(container_meta(model, options, extra_meta), records, graph, payload, fmap)


def container_meta(
    model: onnx_io.SourceModel, options: CompressOptions, extra_meta: dict | None
) -> dict:
    """The META section (docs/format.md §3.1)."""
    return {
        "format": "xorc",
        "tool": "xorc",
        "tool_version": __version__,
        "source_sha256": model.sha256,
        "source_bytes": source_bytes(model),
        "options": {**options.to_json(), "config_sha256": options.digest()},
        **(extra_meta or {}),
    }
