"""Feature-map compression analysis (numpy only): quantize activation maps, EBPC-compress each
input's map, and compare with zero-RLE and ZVC (docs/codecs/ebpc.md, "Feature-map analysis").

Inputs are per-layer feature maps: a mapping from layer name to a float array [batch, ...] of
the outputs of a ReLU, ReLU6 or Clip(0, x) for a batch of inputs (the ONNX runtime side that
produces them lives elsewhere). Each input's map of a layer is flattened in C order, which for
NCHW tensors is the CHW order the paper uses.

Quantization to `bits` (signed levels in [-(2**(bits-1) - 1), 2**(bits-1) - 1]), one scale per
layer, `scale` being the real value of one level:

* ``paper``: the paper's evaluation code. The maximum |x| over the whole batch maps to 0.75 of
  full scale: scale = max|x| / (0.75 * (2**(bits-1) - 1)); levels = trunc(x / scale) (toward
  zero). Post-ReLU 8-bit maps land in 0..95.
* ``deploy``: calibrated round-to-nearest, as deployed symmetric int8 inference does. The
  calibration statistic is the 99.99th percentile of |x| over all values of the layer in the
  calibration maps (the analysed batch unless other maps are given): scale = p / (2**(bits-1)
  - 1); levels = clip(rint(x / scale)) (round half to even, clipped to the range).

Word width: EBPC codes W = 8-bit words for bits <= 8 and W = 16 for 9..16 bits.

Sizes, per input and layer, with n values of which z are non-zero and `bits` per value:

* raw: n * bits (the paper's baseline is the format's own width);
* EBPC: ZNZ bits + BPC bits, unpadded (the paper's definition); the word-padded size is kept
  too;
* zero-RLE with maximum run 16 (the paper's reference zero-RLE): a non-zero value costs a `1`
  flag bit plus its `bits`; a zero run is cut into chunks of at most 16 zeros, each coded as
  `0` plus (length - 1) in 4 bits. Its flag part is exactly EBPC's ZNZ stream, so
  zero-RLE bits = znz_bitlen + z * bits;
* ZVC (zero-value compression): a 1-bit mask per value plus the non-zero values: n + z * bits.

Ratios are raw / compressed. A layer's ratio is the mean over inputs of that input's ratio; the
network ratio of an input is (sum of raw bits over layers) / (sum of compressed bits), and the
reported network ratio is its mean over inputs (the paper's definition).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.ebpc import EbpcStreams, decode_many, encode
from xorc.errors import BitMismatch, UsageError

METHODS = ("paper", "deploy")
PAPER_SAFETY = 0.75
DEPLOY_PERCENTILE = 99.99
CODINGS = ("ebpc", "ebpc_padded", "zero_rle", "zvc")


def levels_max(bits: int) -> int:
    """Largest level of a `bits`-bit signed symmetric quantizer."""
    if not 2 <= bits <= 16:
        raise UsageError(f"feature-map bits must be in 2..16, got {bits}")
    return (1 << (bits - 1)) - 1


def word_width(bits: int) -> int:
    """EBPC word width used for `bits`-bit levels."""
    return 8 if bits <= 8 else 16


def paper_scales(
    maps: Mapping[str, NDArray[np.floating]], bits: int, safety: float = PAPER_SAFETY
) -> dict[str, float]:
    """Per-layer scales of the paper's method: max |x| over the batch -> `safety` of full scale."""
    top = levels_max(bits)
    out = {}
    for name, x in maps.items():
        amax = float(np.max(np.abs(x))) if np.size(x) else 0.0
        out[name] = amax / (safety * top) if amax > 0 else 1.0
    return out


def calibrate(
    maps: Mapping[str, NDArray[np.floating]], bits: int, percentile: float = DEPLOY_PERCENTILE
) -> dict[str, float]:
    """Per-layer scales of the deployment method: the `percentile` of |x| -> full scale."""
    top = levels_max(bits)
    out = {}
    for name, x in maps.items():
        a = np.abs(np.asarray(x, dtype=np.float32)).ravel()
        amax = float(np.percentile(a, percentile)) if a.size else 0.0
        if amax <= 0 and a.size:
            amax = float(a.max())
        out[name] = amax / top if amax > 0 else 1.0
    return out


def quantize(
    x: NDArray[np.floating], scale: float, bits: int, method: str
) -> NDArray[np.int8] | NDArray[np.int16]:
    """Levels of `x` (int8 for bits <= 8, int16 otherwise): `paper` truncates x / scale toward
    zero, `deploy` rounds to nearest (half to even); both clip to +-(2**(bits-1) - 1)."""
    top = levels_max(bits)
    y = np.asarray(x, dtype=np.float32) / np.float32(scale)
    if method == "paper":
        y = np.trunc(y)
    elif method == "deploy":
        y = np.rint(y)
    else:
        raise UsageError(f"quantization method must be one of {METHODS}, got {method!r}")
    np.clip(y, -top, top, out=y)
    return y.astype(np.int8 if bits <= 8 else np.int16)


def zero_rle_bits(znz_bitlen: int, n_nonzero: int, bits: int) -> int:
    """Zero-RLE (max run 16) size: its flag/run part is the ZNZ stream, plus the values."""
    return znz_bitlen + n_nonzero * bits


def zvc_bits(n_values: int, n_nonzero: int, bits: int) -> int:
    """ZVC size: one mask bit per value plus the non-zero values."""
    return n_values + n_nonzero * bits


@dataclass
class LayerResult:
    """One layer over all inputs. Per-input lists are in input order.

    Attributes:
        name: the activation tensor's name.
        shape: the shape of one input's map.
        scale: the real value of one level.
        raw_bits: per input, n * bits.
        sizes: per coding (`ebpc`, `ebpc_padded`, `zero_rle`, `zvc`), per input, in bits.
        nonzero: per input, the number of non-zero levels.
    """

    name: str
    shape: tuple[int, ...]
    scale: float
    raw_bits: list[int] = field(default_factory=list)
    sizes: dict[str, list[int]] = field(default_factory=lambda: {c: [] for c in CODINGS})
    nonzero: list[int] = field(default_factory=list)

    @property
    def n_values(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def ratio(self, coding: str) -> float:
        """Mean over inputs of raw / compressed."""
        raw = np.array(self.raw_bits, dtype=np.float64)
        return float(np.mean(raw / np.array(self.sizes[coding], dtype=np.float64)))

    @property
    def sparsity(self) -> float:
        """Mean fraction of zero levels."""
        return float(1 - np.mean(np.array(self.nonzero) / self.n_values))


@dataclass
class FmapResult:
    """Feature-map compression of a batch: per layer and for the whole network."""

    bits: int
    method: str
    word_width: int
    block_size: int
    n_inputs: int
    layers: list[LayerResult]

    def network_ratios(self, coding: str) -> NDArray[np.float64]:
        """Per input: sum of raw bits over layers / sum of `coding` bits over layers."""
        raw = np.sum([layer.raw_bits for layer in self.layers], axis=0, dtype=np.float64)
        comp = np.sum([layer.sizes[coding] for layer in self.layers], axis=0, dtype=np.float64)
        return raw / comp

    def network_ratio(self, coding: str) -> float:
        """The paper's network ratio: mean over inputs of `network_ratios`."""
        return float(np.mean(self.network_ratios(coding)))

    @property
    def ebpc_gain(self) -> float:
        """EBPC network ratio over the better of zero-RLE and ZVC, minus 1."""
        best = max(self.network_ratio("zero_rle"), self.network_ratio("zvc"))
        return self.network_ratio("ebpc") / best - 1

    def to_json(self) -> dict[str, Any]:
        """Plain dicts, lists, ints and floats (json.dumps-able)."""
        layers = []
        for layer in self.layers:
            raw = int(sum(layer.raw_bits))
            comp = int(sum(layer.sizes["ebpc"]))
            layers.append(
                {
                    "name": layer.name,
                    "shape": list(layer.shape),
                    "n_values": layer.n_values,
                    "scale": layer.scale,
                    "bits": self.bits,
                    "method": self.method,
                    "sparsity": layer.sparsity,
                    "ratio": layer.ratio("ebpc"),
                    "ratios": {c: layer.ratio(c) for c in CODINGS},
                    "raw_bits": raw,
                    "compressed_bits": comp,
                }
            )
        per_input = {c: [float(r) for r in self.network_ratios(c)] for c in CODINGS}
        return {
            "bits": self.bits,
            "method": self.method,
            "word_width": self.word_width,
            "block_size": self.block_size,
            "n_inputs": self.n_inputs,
            "network": {
                "ratios": {c: self.network_ratio(c) for c in CODINGS},
                "ebpc_gain_over_best_baseline": self.ebpc_gain,
                "per_input": per_input,
            },
            "layers": layers,
        }


class FmapAccumulator:
    """Adds one input at a time (for callers that stream inputs through a model). Inputs are
    coded in batches of FLUSH_INPUTS, so that one `decode_many` call checks many maps."""

    FLUSH_INPUTS = 32

    def __init__(
        self, scales: Mapping[str, float], bits: int = 8, method: str = "paper", block_size: int = 8
    ):
        if method not in METHODS:
            raise UsageError(f"quantization method must be one of {METHODS}, got {method!r}")
        levels_max(bits)
        self.bits, self.method, self.block_size = bits, method, block_size
        self.word_width = word_width(bits)
        if block_size not in (8, 16) or block_size > self.word_width:
            raise UsageError(
                f"EBPC block size {block_size} is not an RTL format for W={self.word_width}"
            )
        self.scales = dict(scales)
        self.layers: dict[str, LayerResult] = {}
        self.n_inputs = 0
        self.pending: list[list[NDArray[np.integer]]] = []  # quantized maps, not yet coded

    def add(self, input_maps: Mapping[str, NDArray[np.floating]]) -> None:
        """One input's maps (no batch axis), for every layer of `scales`.

        Raises:
            BitMismatch: an EBPC stream did not decode back to its map.
        """
        self.pending.append(
            [
                quantize(input_maps[name], self.scales[name], self.bits, self.method)
                for name in self.scales
            ]
        )
        if len(self.pending) >= self.FLUSH_INPUTS:
            self.flush()

    def flush(self) -> None:
        """Code the pending inputs' maps, check that every one decodes back, and record sizes.

        Raises:
            BitMismatch: an EBPC stream did not decode back to its map.
        """
        names = list(self.scales)
        maps = [q for levels in self.pending for q in levels]
        records: list[EbpcStreams] = [
            encode(q.ravel(), self.word_width, self.block_size) for q in maps
        ]
        for k, (q, back) in enumerate(zip(maps, decode_many(records), strict=True)):
            if not np.array_equal(back, q.ravel()):
                raise BitMismatch(
                    f"fmap: layer {names[k % len(names)]!r}, input "
                    f"{self.n_inputs + k // len(names)}: EBPC did not decode back"
                )
        for k, (q, rec) in enumerate(zip(maps, records, strict=True)):
            name = names[k % len(names)]
            layer = self.layers.setdefault(
                name, LayerResult(name, tuple(q.shape), self.scales[name])
            )
            n, z = q.size, int(np.count_nonzero(q))
            layer.raw_bits.append(n * self.bits)
            layer.nonzero.append(z)
            layer.sizes["ebpc"].append(rec.compressed_bits)
            layer.sizes["ebpc_padded"].append(rec.padded_bits)
            layer.sizes["zero_rle"].append(zero_rle_bits(rec.znz_bitlen, z, self.bits))
            layer.sizes["zvc"].append(zvc_bits(n, z, self.bits))
        self.n_inputs += len(self.pending)
        self.pending = []

    def result(self) -> FmapResult:
        """The results so far (pending inputs are coded first)."""
        if self.pending:
            self.flush()
        return FmapResult(
            self.bits,
            self.method,
            self.word_width,
            self.block_size,
            self.n_inputs,
            [self.layers[name] for name in self.scales if name in self.layers],
        )


def analyze(
    maps: Mapping[str, NDArray[np.floating]],
    bits: int = 8,
    method: str = "paper",
    *,
    block_size: int = 8,
    calibration: Mapping[str, NDArray[np.floating]] | None = None,
    scales: Mapping[str, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> FmapResult:
    """Quantize every layer's maps, EBPC-compress each input's map, check it decodes back, and
    size it with EBPC, zero-RLE and ZVC.

    Args:
        maps: layer name -> float array [batch, ...], the same batch size for every layer.
        bits: level width (2..16).
        method: "paper" or "deploy" (see the module docstring).
        block_size: EBPC block size N (8, or 16 when bits > 8).
        calibration: maps to calibrate the "deploy" scales on (default: `maps`).
        scales: per-layer scales to use instead of computing them.
        progress: called once per input with the number of inputs done.

    Raises:
        UsageError: bad method, bits or batch sizes.
        BitMismatch: an EBPC stream did not decode back to its map.
    """
    if method not in METHODS:
        raise UsageError(f"quantization method must be one of {METHODS}, got {method!r}")
    batches = {int(np.shape(x)[0]) for x in maps.values()}
    if len(batches) > 1:
        raise UsageError(f"fmap: layers have different batch sizes {sorted(batches)}")
    if scales is None:
        scales = (
            paper_scales(maps, bits) if method == "paper" else calibrate(calibration or maps, bits)
        )
    acc = FmapAccumulator({name: scales[name] for name in maps}, bits, method, block_size)
    n_inputs = batches.pop() if batches else 0
    for i in range(n_inputs):
        acc.add({name: x[i] for name, x in maps.items()})
        if progress is not None:
            progress(i + 1)
    return acc.result()


def summary_rows(result: FmapResult) -> Sequence[tuple[str, float, float, float, float]]:
    """(layer, sparsity, EBPC, zero-RLE, ZVC ratios) per layer, then ("network", ...)."""
    rows = [
        (
            layer.name,
            layer.sparsity,
            layer.ratio("ebpc"),
            layer.ratio("zero_rle"),
            layer.ratio("zvc"),
        )
        for layer in result.layers
    ]
    values = sum(layer.n_values * len(layer.nonzero) for layer in result.layers)
    nonzero = sum(sum(layer.nonzero) for layer in result.layers)
    rows.append(
        (
            "network",
            1 - nonzero / values if values else 0.0,
            result.network_ratio("ebpc"),
            result.network_ratio("zero_rle"),
            result.network_ratio("zvc"),
        )
    )
    return rows
