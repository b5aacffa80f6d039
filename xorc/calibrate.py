"""Calibration: how sensitive each weight is, from the statistics of its layer's input.

For a weight w[o, i, ...] that multiplies input channel i, an error Δw changes the output by
Δw·x_i, whose expected square is Δw²·E[x_i²]. The sensitivity of input channel i is therefore
the mean square of the layer's input over the calibration samples (and spatial positions),
read from onnxruntime intermediate outputs. Weights whose layer input cannot be observed (inside
subgraphs) get sensitivity 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from xorc import onnx_io, runtime

MAX_CALIB_SAMPLES = 512


def weight_importance(
    model_path: str | Path, calib_path: str | Path
) -> dict[str, NDArray[np.float32]]:
    """Per-weight input sensitivity (E[x²] of the input channel each weight multiplies)."""
    model = onnx_io.load_model(model_path)
    layers = onnx_io.weight_layer_inputs(model)
    weights = {w.name: w for w in onnx_io.find_weights(model) if w.compressible and w.name in layers}
    taps = sorted({layers[name][0] for name in weights})
    model_bytes = onnx_io.with_outputs(onnx_io.serialize(model), taps)
    sess = runtime.session(model_bytes, str(model_path))
    data = runtime.load_data(calib_path, sess).take(MAX_CALIB_SAMPLES)
    values = dict(zip(taps, runtime.run(sess, data, taps), strict=True))
    out = {}
    for name, w in weights.items():
        x_name, op_type, group = layers[name]
        out[name] = _expand(w, values[x_name], op_type, group, _gemm_trans(model, name))
    return out


def _gemm_trans(model: onnx_io.SourceModel, weight: str) -> bool:
    for node in model.proto.graph.node:
        if node.op_type == "Gemm" and weight in node.input:
            attrs = {a.name: a.i for a in node.attribute}
            return bool(attrs.get("transB", 0) if list(node.input).index(weight) == 1 else 0)
    return False


def _expand(
    w: onnx_io.WeightInfo, x: NDArray, op_type: str, group: int, trans_b: bool
) -> NDArray[np.float32]:
    """Broadcast per-input-channel mean squares to the weight's shape."""
    x = x.astype(np.float64)
    shape = w.array.shape
    if op_type in ("Conv", "ConvTranspose") and x.ndim >= 2:
        ms = (x**2).mean(axis=tuple(d for d in range(x.ndim) if d != 1))  # [C_in]
        if op_type == "Conv":
            out_ch, in_per_group = shape[0], shape[1]
            g = np.arange(out_ch) // max(out_ch // group, 1)
            idx = g[:, None] * in_per_group + np.arange(in_per_group)[None, :]
            per = ms[np.clip(idx, 0, ms.size - 1)]
        else:  # ConvTranspose weight [C_in, C_out/g, k...]: input channel on axis 0
            per = np.repeat(ms[: shape[0], None], shape[1], axis=1)
        return np.broadcast_to(per.reshape(*per.shape, *([1] * (len(shape) - 2))), shape).astype(
            np.float32
        )
    if x.ndim >= 1 and len(shape) == 2:
        k = shape[1] if trans_b else shape[0]
        if x.shape[-1] == k:
            ms = (x.reshape(-1, k) ** 2).mean(axis=0)
            per = ms[None, :] if trans_b else ms[:, None]
            return np.broadcast_to(per, shape).astype(np.float32)
    return np.ones(shape, dtype=np.float32)
