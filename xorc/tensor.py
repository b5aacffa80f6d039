"""Plain data passed between the pipeline stages and the codecs.

A codec's encoder sees a `QuantTensor` (integers, never floats) and the codec's own frozen
options (`xorc/codecs/<name>/options.py`), and returns an `Encoded`; its decoder sees only what
the container stores: the shape, the bit width, the codec parameters and the streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

JSON = Any
"""A value json.dumps accepts: dict, list, str, int, float, bool or None."""


@dataclass(frozen=True)
class QuantTensor:
    """A quantized weight tensor, as every codec sees it (docs/format.md, "Integer weights").

    Attributes:
        name: the ONNX tensor name.
        values: signed integer levels, shape of the original tensor, each in
            [-(2**(bits-1) - 1), 2**(bits-1) - 1] (symmetric, so sign-magnitude fits in `bits`).
            Zero means pruned: the pruning mask is `values != 0`.
        bits: Q, the bit width (2..8).
        scales: float32 scale per channel along `axis` (one element when per-tensor);
            the float weight is `values * scale`.
        axis: the channel axis of `scales`, or None for per-tensor.
        importance: optional per-weight non-negative importance, same shape as `values`; an
            error at a weight costs `importance * |change|`. None means all weights weigh 1.
        exact: optional unrounded levels (the float weight over its scale), same shape as
            `values`; with `moment`, lets an encoder compensate errors (the pipeline fills
            both for a policy whose record says `uses_moment`; the dictionary uses them, 7.3).
        moment: optional [C, C] second moment E[x x^T] of the layer's input over calibration
            data, C the size of all axes but `axis` (the input features each output channel
            reads; only for layers where that holds: Gemm, MatMul, 1x1 Conv).
        group: G when `scales` are group scales (ceil(F / G) per channel, channel major,
            docs/format.md §3.4 "Group scales"); None: one per channel (or per tensor).
    """

    name: str
    values: NDArray[np.int16]
    bits: int
    scales: NDArray[np.float32]
    axis: int | None
    importance: NDArray[np.float32] | None = None
    exact: NDArray[np.float32] | None = None
    moment: NDArray[np.float64] | None = None
    group: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.values.shape)

    @property
    def mask(self) -> NDArray[np.bool_]:
        return self.values != 0


@dataclass(frozen=True)
class Encoded:
    """What an encoder returns for one tensor.

    Attributes:
        codec: the codec id (xorc.codecs.CodecId) that decodes it.
        params: JSON-able codec parameters stored in the tensor record; together with the
            shape, the bit width and the streams they are all the decoder may use.
        streams: named byte streams stored in the payload section, in this order.
        decoded: the values the decoder will produce. Equal to the input values for lossless
            codecs; lossy policies (XOR `importance`, dictionary trimming) differ, and this is
            what `verify` checks the decoders against.
        stats: JSON-able details shown by `inspect` (bits of each part, errors left, ...).
    """

    codec: int
    params: dict[str, JSON]
    streams: dict[str, bytes]
    decoded: NDArray[np.int16]
    stats: dict[str, JSON] = field(default_factory=dict)
