"""Feature maps of a real model: run it in onnxruntime and analyse its activations (xorc.fmap).

Every ReLU, ReLU6 and Clip(0, x) output of the main graph is added as a graph output. The model
runs twice over the data in batches, so memory stays bounded whatever the data size: first for
each layer's maximum (the paper's scales), then to quantize, compress and check each input's
maps. The deployment scales are calibrated on up to `DEPLOY_CALIB_INPUTS` inputs of the
calibration data (default: the analysed data).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from xorc import fmap, onnx_io, runtime
from xorc.errors import UnsupportedModel

DEPLOY_CALIB_INPUTS = 8
BATCH = 8


def analyze_model(
    model: onnx_io.SourceModel,
    data: str | Path,
    bits: int = 8,
    methods: tuple[str, ...] = ("paper", "deploy"),
    calib: str | Path | None = None,
    max_inputs: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> list[fmap.FmapResult]:
    """One FmapResult per quantization method, over the inputs of `data`."""
    base = onnx_io.serialize(model)
    names = onnx_io.activation_outputs(base)
    if not names:
        raise UnsupportedModel(f"{model.path}: no ReLU, ReLU6 or Clip(0, x) outputs to analyse")
    sess = runtime.session(onnx_io.with_outputs(base, names), model.path)
    dataset = runtime.load_data(data, sess)
    if max_inputs is not None:
        dataset = dataset.take(max_inputs)
    scales: dict[str, dict[str, float]] = {}
    if "paper" in methods:
        peak = dict.fromkeys(names, 0.0)
        for outputs in runtime.batches(sess, dataset, names, batch=BATCH):
            for name, x in zip(names, outputs, strict=True):
                peak[name] = max(peak[name], float(np.abs(x).max(initial=0.0)))
        scales["paper"] = fmap.paper_scales({n: np.array([p]) for n, p in peak.items()}, bits)
    if "deploy" in methods:
        sample = runtime.load_data(calib or data, sess).take(DEPLOY_CALIB_INPUTS)
        maps = dict(zip(names, runtime.run(sess, sample, names, batch=BATCH), strict=True))
        scales["deploy"] = fmap.calibrate(maps, bits)
    accumulators = [fmap.FmapAccumulator(scales[m], bits, m) for m in methods]
    done = 0
    for outputs in runtime.batches(sess, dataset, names, batch=BATCH):
        for i in range(outputs[0].shape[0]):
            maps = {name: x[i] for name, x in zip(names, outputs, strict=True)}
            for acc in accumulators:
                acc.add(maps)
            done += 1
            if progress is not None:
                progress(f"input {done}", dataset.n_samples)
    return [acc.result() for acc in accumulators]


def fmap_section(result: fmap.FmapResult) -> dict:
    """The FMAP section of a blob (docs/format.md §3.5) from one analysis."""
    doc = result.to_json()
    return {
        "bits": doc["bits"],
        "method": doc["method"],
        "word_width": doc["word_width"],
        "block_size": doc["block_size"],
        "n_inputs": doc["n_inputs"],
        "network_ratio": doc["network"]["ratios"]["ebpc"],
        "layers": [
            {
                k: layer[k]
                for k in (
                    "name",
                    "shape",
                    "scale",
                    "bits",
                    "method",
                    "ratio",
                    "raw_bits",
                    "compressed_bits",
                )
            }
            for layer in doc["layers"]
        ],
    }


FMAP_CALIB_INPUTS = 64


def feature_map_stage(model: onnx_io.SourceModel, calib: str | Path) -> dict | None:
    """Stage feature maps (a policy that records them, with --calib): activation quantization
    and EBPC ratio per layer.

    Deployment quantization (calibrated round-to-nearest, 8 bits) on up to FMAP_CALIB_INPUTS
    calibration inputs; the datapath simulator counts feature-map traffic from it.
    """
    if not onnx_io.activation_outputs(onnx_io.serialize(model)):
        return None
    (result,) = analyze_model(model, calib, 8, ("deploy",), max_inputs=FMAP_CALIB_INPUTS)
    return fmap_section(result)
