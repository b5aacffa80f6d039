"""A data-free H for GPTQ: the rounding of convolution kernels without calibration data.

Without data, round-to-nearest treats every weight's error alone. But the inputs a kernel reads
at neighbouring positions are strongly correlated (on EfficientNet-Lite0's calibration images,
neighbouring taps of the first depthwise layer's 3x3 patches have correlation 0.89 to 0.93), so
the rounding errors of one kernel add up in its response to smooth input, and a depthwise kernel
of 9 weights has nothing to average them out. GPTQ with a prior H of spatially correlated
inputs rounds each kernel so that its errors cancel on such input:

    H[(c, p), (c', p')] = [c == c'] * RHO ** |p - p'|_1

for input channel c and kernel tap p (the Manhattan distance in taps, dilation not counted):
input channels uncorrelated, taps correlated by RHO per step. Only Conv weights with a kernel
of more than one tap have one; for the others (1x1 Conv, Gemm, MatMul, ...) the prior is the
identity, under which GPTQ is round-to-nearest, so they keep round-to-nearest. See
docs/reconstruction.md, "Without data".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xorc.hessian import MAX_FEATURES, MAX_H_BYTES, Hessian
from xorc.onnx_io import WeightInfo

RHO = 0.9
"""Correlation of the inputs at kernel taps one step apart."""


def prior_hessian(weight: WeightInfo) -> Hessian | None:
    """The prior H of a Conv weight [C_out, C_in/group, k...] read only by Conv nodes, with a
    kernel of more than one tap and an H within hessian.py's limits; else None."""
    shape = weight.shape
    convs = [c for c in weight.consumers if c.op_type == "Conv" and c.input_index == 1]
    if not convs or len(convs) != len(weight.consumers) or weight.axis != 0 or len(shape) < 3:
        return None
    kernel = tuple(int(k) for k in shape[2:])
    taps = int(np.prod(kernel))
    width = int(shape[1]) * taps
    if taps <= 1 or width > MAX_FEATURES or width * width * 8 > MAX_H_BYTES:
        return None
    return Hessian(np.kron(np.eye(int(shape[1])), spatial(kernel))[None], 0)


def spatial(kernel: tuple[int, ...]) -> NDArray[np.float64]:
    """[taps, taps]: RHO ** (Manhattan distance) between the taps of a kernel, in C order."""
    grid = np.stack(np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij"), -1)
    pos = grid.reshape(-1, len(kernel))
    return RHO ** np.abs(pos[:, None, :] - pos[None, :, :]).sum(axis=2).astype(np.float64)
