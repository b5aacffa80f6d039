"""Decoding a container (docs/format.md §5 step 7): levels per tensor, float weights, and the
rebuilt ONNX model.

Decoding levels needs only the blob: importing this module loads neither onnx nor onnxruntime
(tests/test_layering.py). `to_weights` and `rebuild_model` import `xorc.onnx_io` when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.bounds import check_expansion
from xorc.codecs.registry import codec_for
from xorc.errors import BadRecord, CorruptStream
from xorc.format import Container, TensorRecord
from xorc.format.container import SCALES
from xorc.quantize import dequantize, shift_dequantize
from xorc.tiles import PRESENCE, absent_nonzero, coded_shape, unpack


def decode_levels(container: Container, record: TensorRecord) -> NDArray[np.int16]:
    """The reference decoder's levels for one tensor (its codec's `decode`)."""
    spec = codec_for(record.codec, record.name)
    streams = container.codec_streams(record)
    shape, mask = coded_levels_shape(container, record)
    try:
        check_expansion(int(np.prod(shape)), streams, spec.max_weights_per_bit, spec.name)
        levels = spec.decode(shape, record.bits, record.params, streams)
    except (BadRecord, CorruptStream) as exc:
        raise type(exc)(f"tensor {record.name!r}: {exc}") from None
    if levels.shape != shape:
        raise CorruptStream(f"tensor {record.name!r}: decoded shape {levels.shape} != {shape}")
    if mask is not None and record.axis is not None:  # only the present units were coded
        return unpack(levels, mask, record.axis)
    if record.structure is not None and record.axis is not None:
        bad = absent_nonzero(
            levels, record.axis, record.structure, container.stream(record, PRESENCE)
        )
        if bad:
            raise CorruptStream(
                f"tensor {record.name!r}: {bad} nonzero levels in units stream 'presence' "
                "marks absent"
            )
    return levels


def coded_levels_shape(
    container: Container, record: TensorRecord
) -> tuple[tuple[int, ...], NDArray[np.bool_] | None]:
    """The shape the record's codec decodes, and the mask of the weights it codes when only
    the present units are coded (docs/format.md §3.6 `coded`)."""
    st = record.structure
    if st is None or st.coded != "present":
        return record.shape, None
    return coded_shape(record.shape, record.axis, st, container.stream(record, PRESENCE))


def to_weights(container: Container, record: TensorRecord, levels: NDArray[np.int16]) -> NDArray:
    """Float (or int8/uint8) weights of decoded levels, in the record's dtype."""
    from xorc import onnx_io, prequant

    dtype = onnx_io.dtype_of(record.dtype)
    scales = container.scales(record)
    if not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise CorruptStream(
            f"tensor {record.name!r}: stream 'scales' holds a negative or non-finite scale"
        )
    if record.dtype in prequant.RANGES:
        return prequant.decode(levels, scales, record.offsets, record.axis, record.dtype)
    if record.scale_dtype == "pow2":  # the datapath's rescale: a shift by n, no multiplier
        shifts = np.frombuffer(container.stream(record, SCALES), dtype="i1")
        return shift_dequantize(levels, shifts, record.axis, record.group_size).astype(dtype)
    return dequantize(levels, scales, record.axis, record.group_size).astype(dtype)


def rebuild_model(container: Container, levels: list[NDArray[np.int16]]) -> bytes:
    """The runnable ONNX model (serialized) with decoded, dequantized weights."""
    from xorc import onnx_io

    _check_references(container)
    arrays = {
        i: to_weights(container, rec, lv)
        for i, (rec, lv) in enumerate(zip(container.tensors, levels, strict=True))
    }
    return onnx_io.rebuild(container.graph, arrays)


def _check_references(container: Container) -> None:
    from xorc import onnx_io

    refs = onnx_io.referenced_indices(container.graph)
    if sorted(refs) != list(range(len(container.tensors))):
        raise BadRecord(
            "section GRAPH: tensor references do not match the tensor records one to one"
        )


def weight_bytes(container: Container) -> int:
    """Bytes of the decoded weights (the records' elements times their dtype's size)."""
    from xorc import onnx_io

    return sum(t.n_weights * onnx_io.dtype_of(t.dtype).itemsize for t in container.tensors)


def write_model(
    container: Container,
    out: str | os.PathLike[str],
    external_data: str = "auto",
    levels: list[NDArray[np.int16]] | None = None,
    progress: Callable[[str, int], None] | None = None,
    label: str = "",
) -> list[Path]:
    """Decode the blob tensor by tensor into the ONNX model `out` (external data per
    `--external-data`: auto above 1 GiB of weights, always, never); each tensor's levels are
    checked against the record's digest before it is written (BitMismatch, nothing left
    behind). With `levels`, those levels are used instead of decoding. Returns the files."""
    from xorc.errors import BitMismatch
    from xorc.format import levels_digest
    from xorc.onnx_io.write import external_for
    from xorc.onnx_io.write import write_model as write

    external = external_for(external_data, weight_bytes(container))
    _check_references(container)

    def weight_of(i: int) -> NDArray:
        record = container.tensors[i]
        lv = decode_levels(container, record) if levels is None else levels[i]
        if levels is None and levels_digest(lv) != record.digest:
            raise BitMismatch(
                f"{label or out}: {record.name}: reference decoder differs from the encoder"
            )
        if progress is not None:
            progress(record.name, record.n_weights)
        return to_weights(container, record, lv)

    return write(container.graph, weight_of, out, external)
