"""onnxruntime and data files: running models on the inputs of an .npz file.

Imported lazily by the commands that run models, so `inspect` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from xorc.errors import DataError, ModelError
from xorc.npzfile import read_arrays

if TYPE_CHECKING:
    from xorc.onnx_io import SourceModel

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


@dataclass
class Dataset:
    """Model inputs keyed by input name, all with the same number of samples, and labels."""

    inputs: dict[str, NDArray[np.generic]]
    labels: NDArray[np.int64] | None

    @property
    def n_samples(self) -> int:
        return next(iter(self.inputs.values())).shape[0]

    def take(self, n: int) -> Dataset:
        labels = None if self.labels is None else self.labels[:n]
        return Dataset({k: v[:n] for k, v in self.inputs.items()}, labels)


def session(
    model_bytes: bytes | Path, label: str, data_folder: Path | None = None
) -> ort.InferenceSession:
    """An onnxruntime session on the CPU, deterministic settings: from a serialized model, or
    from a model file (its external data read by onnxruntime next to it; never serialized).
    `data_folder`: where the external data of a serialized graph lies."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 2
    if data_folder is not None:  # onnxruntime >= 1.21
        opts.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(data_folder)
        )
    try:
        source = str(model_bytes) if isinstance(model_bytes, Path) else model_bytes
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{label}: onnxruntime cannot load the model ({first[:300]})") from None


def source_session(model: SourceModel, outputs: Sequence[str] = ()) -> ort.InferenceSession:
    """A session on the source model, with extra graph `outputs` (intermediate tensors). A model
    with external data goes to onnxruntime as its graph alone, and onnxruntime reads the weights
    from the model's folder: nothing is inlined, so a model over protobuf's 2 GB runs too."""
    from xorc import onnx_io

    if model.external:
        graph, folder = onnx_io.to_bytes(model.proto, model.path), Path(model.path).resolve().parent
    else:
        graph, folder = onnx_io.serialize(model), None
    if outputs:  # parsed and written again only when the graph changes
        graph = onnx_io.with_outputs(graph, list(outputs))
    return session(graph, model.path, folder)


def load_data(path: str | Path, sess: ort.InferenceSession) -> Dataset:
    """Read DATA.npz for a model: inputs keyed by input name (or one array), optional `labels`."""
    arrays = read_arrays(path)  # headers checked, never a pickle (xorc.npzfile)
    labels = arrays.pop("labels", None)
    model_inputs = sess.get_inputs()
    names = [i.name for i in model_inputs]
    if len(arrays) == 1 and len(names) == 1:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(f"{path}: no array for model input {missing[0]!r} (has {sorted(arrays)})")
    inputs = {}
    for spec in model_inputs:
        inputs[spec.name] = _cast(path, spec, arrays[spec.name])
    counts = {a.shape[0] if a.ndim else 0 for a in inputs.values()}
    if len(counts) != 1 or 0 in counts:
        raise DataError(f"{path}: inputs must share a nonzero first (sample) dimension")
    n = counts.pop()
    if labels is not None:
        if labels.ndim != 1 or labels.shape[0] != n or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path}: 'labels' must be {n} integers, one per sample")
        labels = labels.astype(np.int64)
    return Dataset(inputs, labels)


def _cast(path: str | Path, spec: ort.NodeArg, array: NDArray[np.generic]) -> NDArray[np.generic]:
    want = ORT_TYPES.get(spec.type)
    if want is None:
        raise DataError(f"{path}: model input {spec.name!r} has unsupported type {spec.type}")
    if array.dtype == np.bool_ and want is not np.bool_:
        raise DataError(
            f"{path}: input {spec.name!r} is bool, the model wants {np.dtype(want)}: "
            "save it as numbers"
        )
    if array.dtype != want:
        if not np.can_cast(array.dtype, want, casting="safe"):
            raise DataError(
                f"{path}: input {spec.name!r} is {array.dtype}, the model wants {np.dtype(want)}"
            )
        array = array.astype(want)
    rank = len(spec.shape)
    if array.ndim != rank:
        raise DataError(
            f"{path}: input {spec.name!r} has shape {list(array.shape)}, model wants rank {rank}"
        )
    wanted = [d if isinstance(d, int) and d > 0 else None for d in spec.shape]
    if any(w is not None and w != d for w, d in zip(wanted[1:], array.shape[1:], strict=True)):
        shown = ["N" if w is None else w for w in wanted]
        raise DataError(
            f"{path}: input {spec.name!r} has shape {list(array.shape)}, the model wants {shown}"
        )
    return array


def run(
    sess: ort.InferenceSession,
    data: Dataset,
    outputs: list[str] | None = None,
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[NDArray[np.generic]]:
    """Run the model over the dataset in batches; returns the outputs concatenated over samples."""
    chunks = list(batches(sess, data, outputs, batch, progress))
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def batches(
    sess: ort.InferenceSession,
    data: Dataset,
    outputs: list[str] | None = None,
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Iterator[list[NDArray[np.generic]]]:
    """Run the model batch by batch, yielding each batch's outputs (memory stays bounded).

    A model with a fixed batch dimension is run in batches of that size (the last one padded).
    """
    fixed = sess.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) and fixed > 0 else batch
    n = data.n_samples
    for start in range(0, n, step):
        feeds = {k: v[start : start + step] for k, v in data.inputs.items()}
        real = next(iter(feeds.values())).shape[0]
        if real < step and step == fixed:
            feeds = {
                k: np.concatenate([v, np.repeat(v[-1:], step - real, 0)]) for k, v in feeds.items()
            }
        try:
            result = sess.run(outputs, feeds)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"onnxruntime failed on samples {start}..{start + real} ({first[:300]})"
            ) from None
        if progress is not None:
            progress(real)
        yield [np.asarray(r)[:real] for r in result]


def score_output(sess: ort.InferenceSession) -> str:
    """The output used for top-1: the first float output of rank >= 2."""
    for out in sess.get_outputs():
        if (
            out.type in ("tensor(float)", "tensor(float16)", "tensor(double)")
            and len(out.shape) >= 2
        ):
            return out.name
    raise ModelError("the model has no float output of rank >= 2 to take a top-1 class from")
