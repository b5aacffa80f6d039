"""The continuous factorization and the factor quantization of the insitu encoder
(docs/codecs/insitu.md §6.2-§6.3). Encoder only."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.insitu.decode import exact_product, generate
from xorc.codecs.insitu.schema import InsituParams

DAMPING = 0.01
"""Added to H's diagonal, as a fraction of its mean diagonal (§6.1)."""
ROW_FLOOR = 1e-6
"""A channel's signal counts as at least this fraction of the mean channel's (an all-zero
channel would otherwise divide by zero)."""
RIDGE = 1e-9
"""Relative ridge of the V least squares (§6.3 step 2), so a rank-deficient W1 still solves."""
MBITS = 12


def _qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def quantize_rows(x: NDArray[np.float64], bits: int) -> NDArray[np.int64]:
    """Symmetric quantization of each leading-axis slice at its own scale (round half even)."""
    flat = x.reshape(x.shape[0], -1)
    peak = np.abs(flat).max(axis=1, keepdims=True)
    step = np.where(peak > 0, peak / _qmax(bits), 1.0)
    return np.rint(flat / step).astype(np.int64).reshape(x.shape)


class Layer:
    """One weight as an R x F target with its metric, factorized once for every candidate.

    Args:
        target: R x F float weights (the unrounded levels times their scales).
        scale: R per-row scales of the record's levels.
        moment: F x F input second moment H, or None (weight error).
        ci, k: level-1 split of F (0, 0 without level 1).
    """

    def __init__(
        self,
        target: NDArray[np.float64],
        scale: NDArray[np.float64],
        moment: NDArray[np.float64] | None,
        ci: int,
        k: int,
    ) -> None:
        self.t, self.scale, self.ci, self.k = target, scale, ci, k
        cols = target.shape[1]
        if moment is None:
            self.h = None
            chol = np.eye(cols)
            tc = target
        else:
            h = np.array(moment, dtype=np.float64)
            h[np.diag_indices(cols)] += DAMPING * max(float(np.mean(np.diag(h))), 1e-12)
            self.h = h
            self.h32 = h.astype(np.float32)
            chol = np.linalg.cholesky(h)
            tc = target @ chol
        self.th = target if self.h is None else target @ self.h
        rows = np.sum(self.th * target, axis=1)
        self.row_signal = np.maximum(rows, ROW_FLOOR * max(float(rows.mean()), 1e-300))
        balance = 1.0 / np.sqrt(self.row_signal)  # channel-balanced basis (6.2)
        _, sig, qt = np.linalg.svd(tc * balance[:, None], full_matrices=False)  # V: 6.3
        root = np.sqrt(sig)
        w1 = root[:, None] * qt
        self.w1 = w1 if moment is None else np.linalg.solve(chol.T, w1.T).T
        self._groups: tuple[NDArray, NDArray, NDArray] | None = None

    def level1(self, bo: int) -> tuple[NDArray, NDArray, NDArray]:
        """The per-group SVD of W1_o (Ci x K) for the first `bo` groups (cached, extended)."""
        if self._groups is None or self._groups[0].shape[0] < bo:
            stack = self.w1[:bo].reshape(bo, self.ci, self.k)
            self._groups = np.linalg.svd(stack, full_matrices=False)
        p, s, q = self._groups
        return p[:bo], s[:bo], q[:bo]

    def metric(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """x H (x when H is the identity)."""
        return x if self.h is None else x @ self.h

    def error(self, levels: NDArray[np.int16]) -> float:
        """Channel-balanced relative output error of R x F levels (§6.1): the mean over output
        channels of dW_r H dW_r^T / T_r H T_r^T; the product with H in float32 (a measurement,
        not part of the format)."""
        dw = levels.astype(np.float64) * self.scale[:, None] - self.t
        if self.h is None:
            err = np.sum(dw * dw, axis=1)
        else:
            d32 = dw.astype(np.float32)
            err = np.sum((d32 @ self.h32) * d32, axis=1, dtype=np.float64)
        return float(np.mean(err / self.row_signal))


@dataclass(frozen=True)
class Factors:
    """Integer factors and requantization of one candidate (section 3's streams)."""

    basis: NDArray[np.int64]
    u: NDArray[np.int64] | None
    v: NDArray[np.int64]
    mult: NDArray[np.int64]
    shift: int


def w1_integer(
    layer: Layer, bi: int, bo: int, qb: int, qu: int
) -> tuple[NDArray[np.int64], NDArray[np.int64] | None, NDArray[np.int64]]:
    """Quantized basis, U and the exact integer W1 (bo x F) they generate (§6.3 step 1)."""
    if bi == 0:
        basis = quantize_rows(layer.w1[:bo], qb)
        return basis, None, basis
    p, s, q = layer.level1(bo)
    root = np.sqrt(s[:, :bi])
    u = quantize_rows(p[:, :, :bi] * root[:, None, :], qu)
    basis = quantize_rows(root[:, :, None] * q[:, :bi, :], qb)
    return basis, u, np.matmul(u, basis).reshape(bo, -1)


def solve_v(layer: Layer, w1: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """V = T H W1^T (W1 H W1^T)^-1 for the integer W1 (§6.3 step 2), and W1 H."""
    w = w1.astype(np.float64)
    w1h = layer.metric(w)
    gram = w1h @ w.T
    gram[np.diag_indices(gram.shape[0])] += RIDGE * max(float(np.trace(gram)), 1e-300)
    rhs = layer.th @ w.T
    return np.linalg.solve(gram, rhs.T).T, w1h


def requant(
    layer: Layer,
    v: NDArray[np.int64],
    w1h: NDArray[np.float64],
    acc: NDArray[np.int64],
    mbits: int = MBITS,
) -> tuple[NDArray[np.int64], int]:
    """Per-row gains g_r = <acc_r, T_r>_H / <acc_r, acc_r>_H as M[r] / 2^s (§6.3 step 3);
    acc H = V (W1 H), of rank Bo."""
    a = acc.astype(np.float64)
    num = np.sum(layer.th * a, axis=1)
    den = np.sum((v.astype(np.float64) @ w1h) * a, axis=1)
    gain = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0) / layer.scale
    gain = np.maximum(gain, 0.0)  # V's sign carries the sign; a negative gain is a bad row
    peak = float(gain.max(initial=0.0))
    shift = 0
    if peak > 0:
        shift = int(np.clip(np.floor(np.log2((2**mbits - 1) / peak)), 0, 62))
    mult = np.clip(np.rint(gain * 2.0**shift), 0, 2**mbits - 1).astype(np.int64)
    return mult, shift


def candidate(layer: Layer, rec: InsituParams) -> tuple[Factors, NDArray[np.int16]]:
    """The factors of one (Bi, Bo, qb, qu, qv) and the R x F levels they generate."""
    basis, u, w1 = w1_integer(layer, rec.bi, rec.bo, rec.qb, rec.qu)
    v_float, w1h = solve_v(layer, w1)
    v = quantize_rows(v_float, rec.qv)
    acc = exact_product(v, w1)
    mult, shift = requant(layer, v, w1h, acc, rec.mbits)
    levels = generate(
        replace(rec, shape=(rec.rows, rec.cols), axis=0, shift=shift), basis, u, v, mult
    )
    return Factors(basis, u, v, mult, shift), levels.reshape(rec.rows, rec.cols)
