"""Encoder of codec `insitu` (docs/codecs/insitu.md §6): per layer, the smallest generated
candidate (Bi, Bo, qb, qu, qv) within a relative output-error tolerance, or the uniform levels
with codec `raw` when generation does not pay.

`encode` is the codec entry point; `encoder_at` builds a search's trial function that
factorizes each layer once and picks a candidate per tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.insitu.factor import MBITS, Factors, Layer, candidate
from xorc.codecs.insitu.options import InsituOptions
from xorc.codecs.insitu.schema import MAX_BO, InsituParams, max_bi, split
from xorc.codecs.raw.encode import encode as raw_encode
from xorc.codecs.raw.options import RawOptions
from xorc.tensor import JSON, Encoded, QuantTensor

BO_FRACTIONS = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4)
"""Cross-kernel ranks tried, as fractions of min(R, F) (§6.4)."""
BI_CHOICES = (0, 1, 2, 3, 4)
BIT_CHOICES = ((8, 8, 8), (6, 6, 6), (4, 6, 4), (3, 6, 3))
"""(qb, qu, qv) tried (§6.4)."""
EXACT = 1e-6
"""A series of growing Bo stops once a candidate's relative error is below this (a tenth of the
smallest nonzero tolerance a search tries)."""
ONE_BY_ONE_CAP = 0.9
"""A 1x1 convolution's ranks stay at most 0.9 min(Co, Ci) (the paper's fallback, §1)."""


@dataclass(frozen=True)
class Point:
    """One measured candidate: its params, stream bits and relative output error."""

    rec: InsituParams
    bits: int
    error: float


class Prepared:
    """One tensor factorized once, its candidates measured, ready for any tolerance."""

    def __init__(self, q: QuantTensor, options: InsituOptions) -> None:
        self.q, self.options = q, options
        self.raw = raw_encode(q, RawOptions())
        self.raw_bits = 8 * sum(len(s) for s in self.raw.streams.values())
        shape = q.shape
        self.axis = q.axis if q.axis is not None and shape else 0
        self.layer: Layer | None = None
        self.points: list[Point] = []
        self._cache: dict[InsituParams, Encoded] = {}
        if len(shape) == 0 or q.values.size == 0:
            return
        rows, cols, ci, k = split(shape, self.axis)
        self.split = (rows, cols, ci, k)
        self.layer = Layer(*self._target(rows, cols), self._moment(cols), ci, k)
        configs = [options.config] if options.config else self._grid(rows, cols, ci, k)
        for rec in (self._params(c) for c in configs):
            if rec is not None and (
                options.config or sum(rec.stream_bits().values()) < self.raw_bits
            ):
                self._measure(rec)

    def _target(self, rows: int, cols: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        q = self.q
        levels = q.exact if q.exact is not None else q.values
        moved = np.moveaxis(np.asarray(levels, dtype=np.float64), self.axis, 0)
        scale = np.broadcast_to(np.asarray(q.scales, np.float64).reshape(-1), (rows,)).copy()
        return moved.reshape(rows, cols) * scale[:, None], scale

    def _moment(self, cols: int) -> NDArray[np.float64] | None:
        m = self.q.moment
        if m is None or m.shape != (cols, cols) or not np.isfinite(m).all():
            return None
        return np.asarray(m, dtype=np.float64)

    def _grid(self, rows: int, cols: int, ci: int, k: int) -> list[tuple[int, ...]]:
        cap = min(rows, cols, MAX_BO)
        if len(self.q.shape) >= 3 and k == 0:  # 1x1 convolution
            cap = max(int(ONE_BY_ONE_CAP * min(rows, cols)), 1)
        bos = sorted({max(1, min(cap, round(f * min(rows, cols)))) for f in BO_FRACTIONS})
        bis = [b for b in BI_CHOICES if b <= max_bi(ci, k)]
        return [(bi, bo, *qs) for qs in BIT_CHOICES for bi in bis for bo in bos]

    def _params(self, config: tuple[int, ...]) -> InsituParams | None:
        """Checked params of a (Bi, Bo, qb, qu, qv), ranks capped to the shape; None if none."""
        rows, cols, ci, k = self.split
        bi, bo, qb, qu, qv = config
        bi = min(bi, max_bi(ci, k))
        bo = min(bo, rows, cols, MAX_BO)
        if bo < 1:
            return None
        return InsituParams(
            self.q.shape, self.q.bits, self.axis, bi, bo, qb, qu if bi else 0, qv, MBITS, 0,
            rows, cols, ci, k,
        )  # fmt: skip

    def _measure(self, rec: InsituParams) -> float:
        assert self.layer is not None
        factors, levels = candidate(self.layer, rec)
        point = Point(replace(rec, shift=factors.shift), _bits(rec), self.layer.error(levels))
        self.points.append(point)
        return point.error

    def choose(self, tolerance: float) -> Encoded:
        """The smallest candidate within `tolerance`, else the raw fallback (§6.4)."""
        within = [p for p in self.points if p.error <= tolerance]
        if self.options.config and self.points:
            within = self.points
        if not within:
            return self._fallback(f"no generation within relative output error {tolerance:g}")
        best = min(within, key=lambda p: (p.bits, p.error))
        if best.bits >= self.raw_bits and not self.options.config:
            return self._fallback("generation does not pay")
        return self._emit(best)

    def _fallback(self, why: str) -> Encoded:
        return replace(self.raw, stats={**self.raw.stats, "fallback": f"raw: {why}"})

    def _emit(self, point: Point) -> Encoded:
        if point.rec in self._cache:
            return self._cache[point.rec]
        assert self.layer is not None
        factors, levels = candidate(self.layer, point.rec)
        rec = replace(point.rec, shift=factors.shift)
        decoded = np.moveaxis(levels.reshape(rec.rows, *_rest(rec)), 0, rec.axis)
        enc = Encoded(
            CodecId.INSITU,
            _params_json(rec),
            _streams(rec, factors),
            np.ascontiguousarray(decoded, dtype=np.int16),
            _stats(rec, point, self.layer.h is not None),
        )
        self._cache = {point.rec: enc}  # the search revisits the last choice most
        return enc


def _rest(rec: InsituParams) -> tuple[int, ...]:
    return rec.shape[: rec.axis] + rec.shape[rec.axis + 1 :]


def _bits(rec: InsituParams) -> int:
    return sum(rec.stream_bits().values())


def _params_json(rec: InsituParams) -> dict[str, JSON]:
    keys = ("axis", "bi", "bo", "qb", "qu", "qv", "mbits", "shift")
    return {key: int(getattr(rec, key)) for key in keys}


def _pack(values: NDArray[np.int64], width: int) -> bytes:
    return bitio.pack_fields(to_sign_magnitude(values.ravel(), width), width)[0]


def _streams(rec: InsituParams, f: Factors) -> dict[str, bytes]:
    out = {"basis": _pack(f.basis, rec.qb)}
    if f.u is not None:
        out["u"] = _pack(f.u, rec.qu)
    out["v"] = _pack(f.v, rec.qv)
    out["multipliers"] = bitio.pack_fields(f.mult.astype(np.uint64), rec.mbits)[0]
    return out


def _stats(rec: InsituParams, point: Point, weighted: bool) -> dict[str, JSON]:
    macs = rec.macs
    err = point.error
    return {
        "bi": rec.bi,
        "bo": rec.bo,
        "qb": rec.qb,
        "qu": rec.qu,
        "qv": rec.qv,
        "payload_bits": rec.stream_bits(),
        "bits_per_weight": point.bits / rec.n,
        "error_metric": "output" if weighted else "weight",
        "relative_error": err,
        "sqnr_db": -10 * math.log10(err) if 0 < err < math.inf else None,
        "generator_macs": macs["level1"] + macs["level2"],
        "macs_per_weight": (macs["level1"] + macs["level2"]) / rec.n,
    }


def encode(q: QuantTensor, options: InsituOptions) -> Encoded:
    """Generate the tensor from factors within `options.tolerance`, or fall back to raw."""
    return Prepared(q, options).choose(options.tolerance)


def encoder_at(
    quantized: list[QuantTensor], options: list[InsituOptions], fixed: list[Encoded | None]
) -> Callable[[float], list[Encoded]]:
    """A search's trial function over the tolerance t (policy insitu, xorc/policies.py): each
    tensor not `fixed` is factorized and its candidates measured once; a trial picks per
    tensor the smallest candidate within t."""
    work: list[Prepared | Encoded] = [
        Prepared(q, o) if f is None else f
        for q, o, f in zip(quantized, options, fixed, strict=True)
    ]

    def encode_at(tolerance: float) -> list[Encoded]:
        return [w.choose(tolerance) if isinstance(w, Prepared) else w for w in work]

    return encode_at
