"""Input second moments H = E[x x^T] of the features each weight row reads (GPTQ, OBS pruning).

A weight is seen as a matrix [rows, features]: its output-channel axis first, every other axis
flattened in C order (`matrix_form`). Each row multiplies a feature vector x of the layer's
input, and H is the mean of x x^T over the calibration samples and positions:

* Gemm / MatMul (2-D weight, either operand): x is a row (or, for the first operand, a column)
  of the data operand, with Gemm's transA / transB applied;
* Conv (any kernel, stride, dilation, padding, groups): x is an im2col patch over the group's
  input channels, in (channel, kernel...) order, so there is one H per group; depthwise
  convolutions get one kernel-sized H per channel;
* ConvTranspose is not handled (each output pixel reads a kernel-dependent subset of input
  pixels): its weights are rounded to nearest, and the reason is recorded.

Streamed batch by batch: the feature vectors of one step (at most PATCH_ELEMENTS values) are
multiplied in float32 and each step's X^T X is added to a float64 total, so rounding error
stays that of one step. A convolution uses at most MAX_POSITIONS output positions per
sample (fewer for wide patches, MAX_SAMPLE_VALUES, but at least MIN_POSITIONS): a regular
grid, every t-th position along each spatial axis, its offset moving from batch to batch
(deterministic). H itself is kept under MAX_H_BYTES (bigger layers fall back, with a
reason). See docs/reconstruction.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from xorc.onnx_io import Layer

MAX_FEATURES = 8192
"""Feature vectors longer than this get no H (a float64 H would take 8 F^2 bytes)."""
MAX_H_BYTES = 256 << 20
"""The most memory one layer's H (all its groups) may take."""
PATCH_ELEMENTS = 1 << 22
"""Input samples are unfolded in chunks of about this many patch values (16 MiB in float32)."""
MAX_POSITIONS = 1024
"""A convolution's H averages at most about this many output positions of each sample."""
MAX_SAMPLE_VALUES = 1 << 18
"""... and at most about this many patch values (positions x groups x features) of each sample
(a depthwise layer's small H needs few positions)."""
MIN_POSITIONS = 16
"""... but never fewer than this many positions of each sample (when it has them)."""
TARGET_DAMP = 1.0
"""Ridge of the asymmetric order's target fit (`original_target`), a fraction of mean diag H
(EfficientNet-Lite0, 4 bits: 0.01 and 0.1 fit the calibration images closer and held-out
images worse; docs/reconstruction.md "Asymmetric order")."""


@dataclass(frozen=True)
class Hessian:
    """E[x x^T] per group of a layer's weight rows, or why there is none.

    Attributes:
        moment: [groups, F, F] float64, the mean of x x^T over `n_samples` feature vectors
            (rows of group g read features of H[g]); None when `reason` says why not.
        n_samples: how many feature vectors were averaged (samples x positions).
        reason: why the layer has no H (unsupported layer kind, too large, no data).
        cross: [groups, F, F] E[x_ref x^T], x_ref the same features of the original model's
            input (asymmetric order, GPTAQ: GPTQ then targets the original output); else None.
    """

    moment: NDArray[np.float64] | None
    n_samples: int
    reason: str | None = None
    cross: NDArray[np.float64] | None = None


def dead_fixed(h: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """[groups, F, F] H with each dead input's diagonal (an input that is always zero: its column
    is rounded to nearest) set to its group's mean diagonal, and that mean per group (1 for a
    group that never saw a nonzero input: round to nearest). The dampening of GPTQ's factor and
    of the asymmetric target are fractions of this mean."""
    diag = np.diagonal(h, axis1=1, axis2=2)
    mean = diag.mean(axis=1)
    mean = np.where(mean > 0, mean, 1.0)
    h = h.copy()
    gi, ci = np.nonzero(diag <= 0)
    h[gi, ci, ci] = mean[gi]
    return h, mean


def original_target(w: NDArray[np.float64], hess: Hessian, damp: float) -> NDArray[np.float64]:
    """[groups, rows, F]: the weights W* = W + W (C - H)(H + lambda I)^-1 (C = `hess.cross`,
    E[x_ref x^T]; lambda = damp x mean diag H, as GPTQ's) whose output on the compressed
    model's inputs x best matches the original W x_ref: E|W x_ref - Q x|^2 = E|(Q - W*) x|^2
    + const, so GPTQ of W* on H minimizes the error against the original output (GPTAQ's
    asymmetric calibration, in closed form). W* = W where C = H (the same inputs)."""
    h = np.asarray(hess.moment, np.float64)
    fixed, mean = dead_fixed(h)
    a = fixed + (damp * mean)[:, None, None] * np.eye(h.shape[1])
    cross = np.asarray(hess.cross, np.float64)
    # W (C - H) A^-1 = (A^-1 (C - H)^T W^T)^T, A symmetric
    return w + np.linalg.solve(
        a, np.matmul((cross - h).transpose(0, 2, 1), w.transpose(0, 2, 1))
    ).transpose(0, 2, 1)


def matrix_form(weight: NDArray, out_axis: int) -> NDArray:
    """The weight as [rows, features]: the output-channel axis first, the rest flattened."""
    moved = np.moveaxis(weight, out_axis, 0)
    return moved.reshape(moved.shape[0], -1)


def unsupported(layer: Layer, shape: tuple[int, ...], out_axis: int | None) -> str | None:
    """Why a layer's weight of this shape gets no H, or None when it does."""
    if layer.op_type == "ConvTranspose":
        return "ConvTranspose: reconstruction not supported"
    if out_axis is None:
        return "no output-channel axis"
    if layer.view_axis is not None and out_axis != layer.view_axis:
        return f"its shape operators make axis {layer.view_axis} the output channels"
    if layer.op_type in ("Gemm", "MatMul") and len(shape) != 2 and layer.view_axis is None:
        return f"{layer.op_type} weight of rank {len(shape)}: reconstruction needs a matrix"
    groups = max(layer.group, 1) if layer.op_type == "Conv" else 1
    if layer.op_type == "Conv" and (len(shape) < 3 or out_axis != 0 or shape[0] % groups):
        return "Conv weight shape does not fit its groups"
    features = int(np.prod(shape)) // max(int(shape[out_axis]), 1)
    if features > MAX_FEATURES:
        return f"{features} input features per row exceed {MAX_FEATURES}"
    if groups * features * features * 8 > MAX_H_BYTES:
        return f"H would take {groups * features * features * 8 >> 20} MiB"
    return None


def features(
    layer: Layer, x: NDArray, shape: tuple[int, ...], step: int = 1, offset: int = 0
) -> NDArray[np.float32]:
    """[groups, vectors, F]: the feature vectors of one batch of the layer's data input (a
    convolution's output positions every `step`-th along each spatial axis, from `offset`)."""
    if layer.op_type == "Conv":
        return _conv_features(layer, x, shape, step, offset)
    if layer.op_type == "Gemm":
        if layer.weight_index == 1:
            rows = x.T if layer.trans_data else x
        else:
            rows = x if layer.trans_data else x.T
    elif layer.weight_index == 1:
        rows = x.reshape(-1, x.shape[-1])
    else:
        rows = x.reshape(1, -1) if x.ndim == 1 else np.moveaxis(x, -2, -1).reshape(-1, x.shape[-2])
    return np.asarray(rows, dtype=np.float32)[None]


def _conv_features(
    layer: Layer, x: NDArray, shape: tuple[int, ...], step: int = 1, offset: int = 0
) -> NDArray[np.float32]:
    """im2col of a Conv input [N, C, spatial...]: [groups, N x positions, C/groups x kernel]."""
    kernel = tuple(int(k) for k in shape[2:])
    nd = len(kernel)
    strides = _ints(layer.conv.get("strides"), nd, 1)
    dilations = _ints(layer.conv.get("dilations"), nd, 1)
    begin, end = _pads(layer, x.shape[2:], kernel, strides, dilations)
    xp = np.pad(x, [(0, 0), (0, 0), *zip(begin, end, strict=True)])
    window = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True))
    view = sliding_window_view(xp, window, axis=tuple(range(2, 2 + nd)))
    view = view[(slice(None), slice(None), *(slice(None, None, s) for s in strides))]
    view = view[(..., *(slice(None, None, d) for d in dilations))]
    if step > 1:
        starts = [(offset // step**a) % step for a in range(nd)]  # the grid moves per batch
        view = view[(slice(None), slice(None), *(slice(o, None, step) for o in starts))]
    n, c = x.shape[:2]
    groups = max(layer.group, 1)
    positions = view.shape[2 : 2 + nd]
    split = view.reshape(n, groups, c // groups, *positions, *kernel)
    order = (1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
    out = split.transpose(order).reshape(groups, -1, (c // groups) * int(np.prod(kernel)))
    return out.astype(np.float32, copy=False)


def _ints(value: object, nd: int, default: int) -> tuple[int, ...]:
    if isinstance(value, tuple) and len(value) == nd:
        return value
    return (default,) * nd


def _pads(
    layer: Layer,
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Padding at the start and the end of each spatial axis (explicit pads or auto_pad)."""
    nd = len(kernel)
    auto = layer.conv.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [
            max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True)
        ]
        small = tuple(t // 2 for t in total)
        big = tuple(t - t // 2 for t in total)
        return (small, big) if auto == "SAME_UPPER" else (big, small)
    pads = layer.conv.get("pads")
    if auto == "VALID" or not isinstance(pads, tuple) or len(pads) != 2 * nd:
        return (0,) * nd, (0,) * nd
    return pads[:nd], pads[nd:]


def position_step(layer: Layer, x_shape: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """Every how many output positions (along each spatial axis) a convolution's H samples, so
    that a sample contributes at most about MAX_POSITIONS positions."""
    nd = len(x_shape) - 2
    strides = _ints(layer.conv.get("strides"), nd, 1)
    positions = int(np.prod([-(-size // s) for size, s in zip(x_shape[2:], strides, strict=True)]))
    width = max(layer.group, 1) * int(np.prod(shape[1:]))  # patch values per position
    cap = max(min(MAX_POSITIONS, MAX_SAMPLE_VALUES // max(width, 1)), MIN_POSITIONS)
    step = 1
    while positions / (step + 1) ** nd >= cap and positions / step**nd > cap:
        step += 1
    return step


class Accumulator:
    """Streams batches of one layer's input into its H (sum of x x^T and the vector count)."""

    def __init__(self, layer: Layer, shape: tuple[int, ...], out_axis: int | None) -> None:
        self.layer = layer
        self.shape = shape
        self.reason = unsupported(layer, shape, out_axis)
        self.width = int(np.prod(shape)) // max(int(shape[out_axis or 0]), 1)
        self.total: NDArray[np.float64] | None = None
        self.cross: NDArray[np.float64] | None = None
        self.count = 0
        self.batches = 0

    def add(self, x: NDArray, ref: NDArray | None = None) -> None:
        """Add one batch of the layer's data input (samples along the first axis); with `ref`,
        the original model's input on the same samples, the cross moment E[x_ref x^T] too."""
        if self.reason is not None:
            return
        x = np.asarray(x, dtype=np.float32)
        chunk, step = x.shape[0], 1
        if self.layer.op_type == "Conv" and x.ndim > 2:
            step = position_step(self.layer, x.shape, self.shape)
            per_sample = (
                int(np.prod(x.shape[1:])) * int(np.prod(self.shape[2:])) // step ** (x.ndim - 2)
            )
            chunk = max(1, PATCH_ELEMENTS // max(per_sample, 1))
        for start in range(0, x.shape[0], chunk):
            f = features(self.layer, x[start : start + chunk], self.shape, step, self.batches)
            if f.shape[2] != self.width:
                self.reason = f"input features {f.shape[2]} do not match the weight's {self.width}"
                return
            if not np.isfinite(f).all():
                self.reason = "non-finite calibration inputs"
                return
            self.total = _add_product(self.total, f, f)
            if ref is not None:
                r = features(self.layer, ref[start : start + chunk], self.shape, step, self.batches)
                self.cross = _add_product(self.cross, r.astype(np.float32), f)
            self.count += f.shape[1]
        self.batches += 1

    def result(self) -> Hessian:
        if self.reason is not None or self.total is None or self.count == 0:
            return Hessian(None, self.count, self.reason or "no calibration inputs reached it")
        cross = None if self.cross is None else self.cross / self.count
        return Hessian(self.total / self.count, self.count, cross=cross)


def _add_product(
    total: NDArray[np.float64] | None, a: NDArray[np.float32], b: NDArray[np.float32]
) -> NDArray[np.float64]:
    """total + a^T b per group ([groups, vectors, F] each), added in place into float64."""
    part = (a[0].T @ b[0])[None] if a.shape[0] == 1 else np.matmul(a.transpose(0, 2, 1), b)
    if total is None:
        total = np.zeros(part.shape, np.float64)
    np.add(total, part, out=total)  # in place: no float64 copy per step
    return total


def relative_error(
    weight: NDArray[np.floating], delta: NDArray[np.floating], out_axis: int, hess: Hessian
) -> float | None:
    """tr(dW H dW^T) / tr(W H W^T) over the groups of H: the output error a weight change
    `delta` causes, relative to the output (None when H does not fit the weight)."""
    if hess.moment is None:
        return None
    rows_w = matrix_form(np.asarray(weight, np.float64), out_axis)
    rows_d = matrix_form(np.asarray(delta, np.float64), out_axis)
    g, width = hess.moment.shape[:2]
    if rows_w.shape[1] != width or rows_w.shape[0] % g:
        return None
    w3, d3 = rows_w.reshape(g, -1, width), rows_d.reshape(g, -1, width)
    num = float((np.matmul(d3, hess.moment) * d3).sum())
    den = float((np.matmul(w3, hess.moment) * w3).sum())
    return num / den if den > 0 else (0.0 if num == 0 else 1.0)
