"""Synthetic ResNet-18-shaped weights for codec benchmarks (not committed; regenerate).

The 21 Conv/Gemm weight tensors of torchvision's ResNet-18 (11,679,912 weights; BatchNorm and
biases left out), filled with Laplace(0, 1) samples, magnitude-pruned per tensor to sparsity S
(the S fraction of smallest |w| set to 0) and quantized symmetrically per output channel (axis 0)
to Q bits: level = round(w / scale), scale = max|w| / (2^(Q-1) - 1). Kept weights that round to
level 0 are set to +-1 so the pruning mask stays exactly the magnitude mask.

Usage (writes an .npz with one int16 array per tensor, plus `<name>.scales`):

    python scripts/make_resnet18_synthetic.py --sparsity 0.9 --out /tmp/resnet18_s90.npz

Benchmarks import `make_tensors` directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from xorc.tensor import QuantTensor

RESNET18_SHAPES: list[tuple[str, tuple[int, ...]]] = [
    ("conv1.weight", (64, 3, 7, 7)),
    *[(f"layer1.{b}.conv{c}.weight", (64, 64, 3, 3)) for b in range(2) for c in (1, 2)],
    ("layer2.0.conv1.weight", (128, 64, 3, 3)),
    ("layer2.0.conv2.weight", (128, 128, 3, 3)),
    ("layer2.0.downsample.0.weight", (128, 64, 1, 1)),
    ("layer2.1.conv1.weight", (128, 128, 3, 3)),
    ("layer2.1.conv2.weight", (128, 128, 3, 3)),
    ("layer3.0.conv1.weight", (256, 128, 3, 3)),
    ("layer3.0.conv2.weight", (256, 256, 3, 3)),
    ("layer3.0.downsample.0.weight", (256, 128, 1, 1)),
    ("layer3.1.conv1.weight", (256, 256, 3, 3)),
    ("layer3.1.conv2.weight", (256, 256, 3, 3)),
    ("layer4.0.conv1.weight", (512, 256, 3, 3)),
    ("layer4.0.conv2.weight", (512, 512, 3, 3)),
    ("layer4.0.downsample.0.weight", (512, 256, 1, 1)),
    ("layer4.1.conv1.weight", (512, 512, 3, 3)),
    ("layer4.1.conv2.weight", (512, 512, 3, 3)),
    ("fc.weight", (1000, 512)),
]


def quantize_pruned(w: np.ndarray, sparsity: float, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude-prune `w` to `sparsity`, then quantize per output channel: (levels, scales)."""
    flat = np.abs(w).ravel()
    n_prune = round(sparsity * flat.size)
    keep = np.ones(flat.size, dtype=bool)
    if n_prune:
        keep[np.argpartition(flat, n_prune - 1)[:n_prune]] = False
    keep = keep.reshape(w.shape)
    top = 2 ** (bits - 1) - 1
    chan = np.abs(np.where(keep, w, 0)).reshape(w.shape[0], -1).max(axis=1)
    scales = np.where(chan > 0, chan / top, 1.0).astype(np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1)
    levels = np.clip(np.round(w / scales.reshape(shape)), -top, top).astype(np.int16)
    levels = np.where(keep & (levels == 0), np.where(w < 0, -1, 1), levels)
    return np.where(keep, levels, 0).astype(np.int16), scales


def make_tensors(sparsity: float, seed: int = 0, bits: int = 8) -> list[QuantTensor]:
    """The synthetic model's quantized tensors (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    out = []
    for name, shape in RESNET18_SHAPES:
        w = rng.laplace(0.0, 1.0, size=shape).astype(np.float32)
        levels, scales = quantize_pruned(w, sparsity, bits)
        out.append(QuantTensor(name, levels, bits, scales, 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    arrays = {}
    for t in make_tensors(args.sparsity, args.seed, args.bits):
        arrays[t.name] = t.values
        arrays[t.name + ".scales"] = t.scales
    np.savez_compressed(args.out, **arrays)
    total = sum(v.size for k, v in arrays.items() if not k.endswith(".scales"))
    print(f"wrote {args.out}: {len(arrays) // 2} tensors, {total} weights")


if __name__ == "__main__":
    main()
