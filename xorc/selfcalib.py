"""A data-free H from synthetic inputs (`--reconstruct synthetic`, the default without --calib).

Without calibration data, GPTQ has no H of its layers' inputs. The prior of xorc/prior.py
models one thing (neighbouring kernel taps correlate) and leaves every 1x1 Conv, Gemm and
MatMul at round to nearest. But much of what makes a layer's rounding cost the model is the
model's own doing: the layers before it shape its input (a folded BatchNorm, an activation,
a depthwise filter), and a few of its output channels may read input channels that nearly
cancel, so that their output is small next to their rounding noise (PP-OCRv4 det, docs/
weights.md §6). Those statistics appear when the model runs on any input that reaches its
layers with roughly the right scale, and standard-normal inputs (the normalization image and
audio models expect) do.

So, when every model input is a float tensor, xorc makes SAMPLES inputs from the declared
shapes (`numpy.random.default_rng(SEED)`, standard normal; a dynamic first axis is the sample
axis; every other dynamic axis takes the first length of SIZES on which onnxruntime runs the
model) and records the H of every layer that `calibrate.input_stats` reaches and that the
prior leaves without one (1x1 Conv, Gemm, MatMul). GPTQ then quantizes with it (only 8-bit
weights that are not pruned: BITS); nothing else is taken from these inputs (no bias
correction, no sensitivities: their means say nothing about real data). A layer without such
an H keeps the prior (xorc/prior.py), and a model with an integer input (token ids, masks:
noise does not reach its embeddings like data; a float input cast to integers or read as
Gather indices is one), an input with a fixed first axis (no sample axis), or one that no size
runs, or whose weights exceed MAX_WEIGHT_BYTES, takes the prior for every layer. See
docs/reconstruction.md, "Without data".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from xorc import calibrate, onnx_io, runtime
from xorc.errors import ModelError

if TYPE_CHECKING:
    from xorc.pipeline import TensorJob

BITS = 8
"""Only weights at this many bits, not pruned, take a synthetic H: below it, GPTQ on noise's H
made two sample models worse than the prior (digits_mlp and fashion_cnn at 4
bits, docs/reconstruction.md "Without data"), where the step is large enough that what GPTQ
moves follows the synthetic inputs rather than the model's data."""
SAMPLES = 16
SEED = 1  # the fidelity check's synthetic inputs use seed 0: these are other inputs
SIZES = (224, 64, 48, 32, 16)
"""Lengths tried, in order, for every dynamic axis but the first."""
FLOAT_TYPES = (1, 10, 11, 16)  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
MAX_WEIGHT_BYTES = 1 << 30
"""Models with more weight bytes keep the prior (the pass would hold them in onnxruntime)."""


def synthetic_data(model: onnx_io.SourceModel) -> runtime.Dataset | None:
    """SAMPLES standard-normal inputs on which onnxruntime runs the model, or None (an input
    that is not a float tensor, no size of SIZES runs, or too many weight bytes)."""
    if model.source_bytes > MAX_WEIGHT_BYTES:
        return None
    try:
        sess = runtime.source_session(model)
    except Exception:  # a model onnxruntime cannot load keeps the prior (compress goes on)
        return None
    specs = sess.get_inputs()
    dtypes = [runtime.ORT_TYPES.get(s.type) for s in specs]
    if not specs or any(d is None or not np.issubdtype(d, np.floating) for d in dtypes):
        return None
    if any(not s.shape or isinstance(s.shape[0], int) for s in specs) or _read_as_ids(model):
        return None
    for size in SIZES:
        shapes = [_dims(s.shape, size) for s in specs]
        rng = np.random.default_rng(SEED)
        data = {
            s.name: rng.standard_normal(shape).astype(d)
            for s, shape, d in zip(specs, shapes, dtypes, strict=True)
        }
        try:
            sess.run(None, {k: v[:1] for k, v in data.items()})
        except Exception:  # onnxruntime's own error types: this size does not run; try the next
            continue
        return runtime.Dataset(data, None)
    return None


def _read_as_ids(model: onnx_io.SourceModel) -> bool:
    """Whether a float graph input is really ids: cast to an integer type, or Gather indices."""
    names = {i.name for i in model.proto.graph.input}
    for node in model.proto.graph.node:
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] in names:
            return True
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and node.input[0] in names and to not in FLOAT_TYPES:
            return True
    return False


def _dims(shape: Sequence[object], size: int) -> list[int]:
    return [
        SAMPLES if a == 0 else (d if isinstance(d, int) and d > 0 else size)
        for a, d in enumerate(shape)
    ]


def synthetic_stats(
    model: onnx_io.SourceModel, jobs: Sequence[TensorJob], wanted: Sequence[str]
) -> dict[str, calibrate.InputStats]:
    """The H of each job named in `wanted` that the statistics pass reaches on the synthetic
    inputs, as InputStats with only `hessian` set ({} when `synthetic_data` gives none)."""
    if not wanted:
        return {}
    data = synthetic_data(model)
    if data is None:
        return {}
    names = set(wanted)
    hessians = {j.name: (j.weight.shape, j.weight.axis) for j in jobs if j.name in names}
    try:
        stats = calibrate.input_stats(model, data, (), hessians)
    except ModelError:  # the model does not run on a batch of them: the prior
        return {}
    empty = np.zeros(0)
    return {
        name: calibrate.InputStats(st.layer, empty, empty, None, st.hessian)
        for name, st in stats.items()
        if st.hessian is not None and st.hessian.moment is not None
    }
