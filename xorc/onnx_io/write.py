"""Writing a decoded model: the stored graph with each `xorc:tensor/<i>` reference filled, the
weights inline or in one external data file next to the model (docs/decompress.md).

Weights are asked for one at a time (`weight_of(i)`) and written as they come, so a model with
external data never exists as one protobuf in memory. Both files go through temporary files
and renames (`xorc.format.atomic_output`): a failure leaves neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc.errors import BadRecord, UsageError
from xorc.onnx_io.graph import _all_tensors
from xorc.onnx_io.load import to_bytes
from xorc.onnx_io.store import _parse_graph, _reference_index

EXTERNAL_MODES = ("auto", "always", "never")
AUTO_EXTERNAL_BYTES = 1 << 30  # auto: external data above 1 GiB of weights
EXTERNAL_MIN_BYTES = 1024  # tensors this large or larger go to the data file (onnx's default)
DATA_ALIGN = 4096  # each tensor's offset: a page, so onnxruntime can map it


def external_for(mode: str, weight_bytes: int) -> bool:
    """Whether `--external-data MODE` writes external data for this many bytes of weights."""
    if mode not in EXTERNAL_MODES:
        raise UsageError(
            f"--external-data must be one of {', '.join(EXTERNAL_MODES)}, got {mode!r}"
        )
    return mode == "always" or (mode == "auto" and weight_bytes > AUTO_EXTERNAL_BYTES)


def data_name(out: str | os.PathLike[str]) -> str:
    """The external data file's name: the model's name plus `.data`, in the model's folder."""
    return Path(out).name + ".data"


def write_model(
    graph_bytes: bytes,
    weight_of: Callable[[int], NDArray[np.generic]],
    out: str | os.PathLike[str],
    external: bool,
) -> list[Path]:
    """Fill the stored graph's references with `weight_of(i)` in graph order and write the model
    to `out` (and, with `external`, its data file `data_name(out)`); returns the files written."""
    from xorc.format import atomic_output

    proto = _parse_graph(graph_bytes)
    if not external:
        _fill(proto, weight_of, None, "")
        with atomic_output(out) as (f, _):
            f.write(to_bytes(proto, f"{out}: the decoded model (try --external-data always)"))
        return [Path(out)]
    name = data_name(out)
    data_path = Path(out).parent / name
    with atomic_output(out) as (model_file, _):
        with atomic_output(data_path) as (data_file, _):
            _fill(proto, weight_of, data_file, name)
            body = to_bytes(proto, f"{out}: the decoded graph")
        model_file.write(body)
    return [Path(out), data_path]


def _fill(
    proto: onnx.ModelProto,
    weight_of: Callable[[int], NDArray[np.generic]],
    data_file: BinaryIO | None,
    location: str,
) -> None:
    """Every reference filled (to the data file when there is one) and, with a data file, every
    other tensor of EXTERNAL_MIN_BYTES or more moved to it."""
    for tensor in _all_tensors(proto.graph):
        index = _reference_index(tensor)
        if index >= 0:
            array = weight_of(index)
            probe = numpy_helper.from_array(array.reshape(-1)[:0])  # the element type only
            if probe.data_type != tensor.data_type or list(array.shape) != list(tensor.dims):
                raise BadRecord(
                    f"section GRAPH: tensor {tensor.name!r} type or shape differs from its record"
                )
            tensor.ClearField("external_data")
            tensor.data_location = onnx.TensorProto.DEFAULT
            if data_file is not None and array.dtype.kind in "fiu" and array.nbytes:
                _append(tensor, data_file, location, _little_endian(array))
                continue
            tensor.raw_data = numpy_helper.from_array(array).raw_data
        if data_file is not None and _raw_size(tensor) >= EXTERNAL_MIN_BYTES:
            raw = tensor.raw_data
            tensor.ClearField("raw_data")
            _append(tensor, data_file, location, raw)


def _little_endian(array: NDArray[np.generic]) -> memoryview:
    """The array's bytes as ONNX stores them (little-endian, C order), without a copy when
    they already are."""
    a = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return memoryview(a).cast("B")


def _raw_size(tensor: onnx.TensorProto) -> int:
    if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.data_type in (
        onnx.TensorProto.STRING,
        onnx.TensorProto.UNDEFINED,
    ):
        return 0
    if not tensor.HasField("raw_data"):
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    return len(tensor.raw_data)


def _append(
    tensor: onnx.TensorProto, data_file: BinaryIO, location: str, raw: bytes | memoryview
) -> None:
    """Write the tensor's bytes at the end of the data file (page-aligned) and point it there."""
    at = data_file.tell()
    pad = -at % DATA_ALIGN
    data_file.write(b"\0" * pad)
    data_file.write(raw)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (
        ("location", location),
        ("offset", str(at + pad)),
        ("length", str(len(raw))),
    ):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
