"""Trials of one layer without re-running the layers before it (xorc/sensitivity.py).

One run of the full model records every tensor that the graph after each tested layer reads
(`onnx_io.suffix_model`); per layer, one onnxruntime session of the graph from its node on, with
its weight and bias as graph inputs; every trial is one run of it. Errors are compared with the
original model's float outputs: mean per-sample cosine (as `verify` computes it), and SQNR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc import onnx_io, runtime

FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")


class SuffixRunner:
    """Runs the graph from one layer on, on recorded inputs, and compares with the original."""

    def __init__(
        self, model: onnx_io.SourceModel, calib: str | Path, samples: int, layers: list[list[str]]
    ) -> None:
        """`layers`: the weight (and bias) names of every layer that will be tried; one run of
        the full model records every tensor their suffixes read, and every float output."""
        self.model = model
        full = runtime.source_session(model)
        self.data = runtime.load_data(calib, full).take(max(1, samples))
        fixed = full.get_inputs()[0].shape[0] if full.get_inputs() else None
        self.step = fixed if isinstance(fixed, int) and fixed > 0 else self.data.n_samples
        floats = [o.name for o in full.get_outputs() if o.type in FLOAT_TYPES]
        cuts = {c for names in layers for c in onnx_io.suffix_model(model, names)[1]}
        taps = sorted(cuts - set(self.data.inputs))
        wanted = list(dict.fromkeys([*floats, *taps]))
        sess = runtime.source_session(model, wanted)
        values = dict(zip(wanted, runtime.run(sess, self.data, wanted, batch=8), strict=True))
        self.reference = {o: np.asarray(values[o], np.float64) for o in floats}
        self.cuts = {**values, **self.data.inputs}

    def session_for(self, names: list[str]) -> tuple:
        """The suffix session for a layer whose weight (and bias) are `names`."""
        model_bytes, cut, outputs = onnx_io.suffix_model(self.model, names)
        sess = runtime.session(model_bytes, f"{self.model.path} (from {names[0]})")
        return sess, cut, outputs

    def errors(
        self, suffix: tuple, names: list[str], arrays: dict[str, NDArray[np.generic]]
    ) -> tuple[dict[str, float], dict[str, float | None], float]:
        """Cosine and SQNR of every float output with `arrays` in place of `names`."""
        sess, cut, outputs = suffix
        fixed = {}
        for n in names:
            original = onnx_io.initializer(self.model, n)
            fixed[n] = np.asarray(arrays.get(n, original), dtype=original.dtype)
        feeds = {c: self.cuts[c] for c in cut}
        got = dict(zip(outputs, _run(sess, feeds, fixed, outputs, self.step), strict=True))
        cosine, sqnr, nsr = {}, {}, 0.0
        for name, ref in self.reference.items():
            out = np.asarray(got.get(name, ref), np.float64)
            cosine[name] = mean_cosine(ref, out)
            noise = float(np.sum((ref - out) ** 2))
            signal = float(np.sum(ref * ref))
            ratio = noise / signal if signal > 0 else (0.0 if noise == 0 else 1.0)
            sqnr[name] = None if ratio == 0 else round(-10 * np.log10(ratio), 3)
            nsr = max(nsr, ratio)
        return cosine, sqnr, nsr


def _run(
    sess: Any, feeds: dict, fixed: dict, outputs: list[str], step: int
) -> list[NDArray[np.generic]]:
    """The suffix session over the samples, `step` at a time (the last batch padded)."""
    n = next(iter(feeds.values())).shape[0]
    chunks = []
    for start in range(0, n, step):
        part = {k: v[start : start + step] for k, v in feeds.items()}
        real = next(iter(part.values())).shape[0]
        if real < step:
            part = {
                k: np.concatenate([v, np.repeat(v[-1:], step - real, 0)]) for k, v in part.items()
            }
        chunks.append([np.asarray(r)[:real] for r in sess.run(outputs, {**part, **fixed})])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(outputs))]


def mean_cosine(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Mean over samples of the cosine of the flattened outputs (as `verify` computes it)."""
    n = a.shape[0] if a.ndim else 1
    x, y = a.reshape(n, -1), b.reshape(n, -1)
    denom = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    same = np.all(x == y, axis=1)
    cos = np.where(denom > 0, (x * y).sum(axis=1) / np.maximum(denom, 1e-300), same * 1.0)
    return float(np.mean(cos))
