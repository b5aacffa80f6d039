"""Encoder of codec `dictionary` (docs/codecs/dictionary.md, section 7).

`encode` is the codec entry point; `candidates` encodes one tensor at several dictionary sizes
sharing the histogram and k-means work, for the accuracy search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.common import to_sign_magnitude
from xorc.codecs.dictionary.compensate import Compensator
from xorc.codecs.dictionary.decode import LENGTH_BITS, MAX_K, MAX_RICE_K
from xorc.codecs.dictionary.huffman_build import code_lengths, encode_symbols, huffman_bits
from xorc.codecs.dictionary.kmeans import LevelKMeans
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.tensor import JSON, Encoded, QuantTensor

AUTO_TOLERANCE = 0.01
"""dict_size None: target weighted squared level error, as a fraction of the weighted signal,
for a tensor of AUTO_REFERENCE_SIZE weights or more; proportional to the size below that
(section 7.2). A search (`tolerance=`) replaces it."""

AUTO_REFERENCE_SIZE = 1_000_000

HUFFMAN_MIN_SAVING = 1 / 32
"""Huffman indices must be this much smaller than fixed-width ones to be chosen: below that
the codes are nearly equal in length, which gains little and decodes slowest."""

CHANNEL_BALANCE = True

IMPORTANCE_FLOOR = 1e-6
"""Each weight adds this times the mean importance to its level's weight (none is ignored)."""


def _nbytes(nbits: int) -> int:
    return (nbits + 7) // 8


class Prepared:
    """One tensor in coded order with per-group histograms and k-means, reusable across K."""

    def __init__(self, q: QuantTensor, options: DictionaryOptions) -> None:
        self.q = q
        self.top = (1 << (q.bits - 1)) - 1
        values = np.asarray(q.values)
        if values.size and int(np.abs(values.astype(np.int32)).max()) > self.top:
            raise ValueError(f"tensor {q.name!r}: a level exceeds the {q.bits}-bit range")
        self.shape = q.shape
        self.axis = q.axis if q.axis is not None and self.shape else 0
        self.rows = self.shape[self.axis] if self.shape else 1
        self.n = values.size
        self.cols = self.n // self.rows if self.rows else 0
        if options.dict_group is not None and options.dict_group < 1:
            raise ValueError(f"dict_group must be at least 1, got {options.dict_group}")
        self.group = max(min(options.dict_group or self.rows, self.rows), 1)
        self.n_groups = -(-self.rows // self.group)
        coded = np.moveaxis(values, self.axis, 0).reshape(-1) if self.shape else values.reshape(-1)
        self.coded = coded.astype(np.int64)
        self.nonzero = self.coded != 0
        width = 2 * self.top + 1
        group_of = np.repeat(np.arange(self.rows) // self.group, self.cols)
        self.key = group_of * width + self.coded + self.top
        counts = np.bincount(self.key, minlength=self.n_groups * width).reshape(-1, width)
        per_weight = self._weights(q)
        mean = float(per_weight.mean()) if per_weight.size else 0.0
        weight = counts.astype(np.float64)
        if mean > 0:
            summed = np.bincount(self.key, weights=per_weight, minlength=counts.size)
            weight = summed.reshape(-1, width) + IMPORTANCE_FLOOR * mean * counts
        levels = np.arange(-self.top, self.top + 1)
        self.kmeans: list[LevelKMeans] = []
        for g in range(self.n_groups):  # one step per codebook
            present = (counts[g] > 0) & (levels != 0)
            self.kmeans.append(LevelKMeans(levels[present], weight[g][present], counts[g][present]))
        self.signal = float((weight * levels.astype(np.float64) ** 2).sum())
        self.has_zeros = not bool(self.nonzero.all())
        self.max_levels = max((km.n_points for km in self.kmeans), default=0)
        self.group_sizes = np.bincount(group_of, minlength=self.n_groups)
        self.compensator = self._compensator(q)

    def _compensator(self, q: QuantTensor) -> Compensator | None:
        """Error compensation (section 7.3) when the tensor has unrounded levels and an input
        moment whose features are its columns; else None."""
        if q.exact is None or q.moment is None or not self.shape or self.rows * self.cols == 0:
            return None
        if q.moment.shape != (self.cols, self.cols):
            return None
        exact = np.moveaxis(np.asarray(q.exact, dtype=np.float64), self.axis, 0)
        if not (np.isfinite(exact).all() and np.isfinite(q.moment).all()):
            return None
        nonzero = self.nonzero.reshape(self.rows, self.cols)
        try:
            return Compensator(exact.reshape(self.rows, self.cols), nonzero, q.moment, self.group)
        except np.linalg.LinAlgError:  # not positive definite even with damping: plain trimming
            return None

    def _weights(self, q: QuantTensor) -> NDArray[np.float64]:
        """Per-weight k-means weight in coded order (section 7.1)."""
        if q.importance is not None:
            imp = np.asarray(q.importance, dtype=np.float64)
            return (np.moveaxis(imp, self.axis, 0) if self.shape else imp).reshape(-1)
        if not CHANNEL_BALANCE or self.cols == 0:
            return np.ones(self.n, dtype=np.float64)
        energy = (self.coded.reshape(self.rows, self.cols).astype(np.float64) ** 2).mean(axis=1)
        inverse = np.where(energy > 0, 1.0 / np.where(energy > 0, energy, 1.0), 0.0)
        return np.repeat(inverse, self.cols)

    def gaps(self) -> NDArray[np.uint64]:
        """Zeros before each nonzero weight, in coded order (layout `runs`)."""
        where = np.flatnonzero(self.nonzero)
        return (np.diff(where, prepend=-1) - 1).astype(np.uint64)

    def auto_tolerance(self, tolerance: float = AUTO_TOLERANCE) -> float:
        """This tensor's relative error target in automatic mode (section 7.2): `tolerance`
        scaled by the tensor's size, up to AUTO_REFERENCE_SIZE weights; at most 1 (an error as
        large as the signal)."""
        return min(tolerance * min(self.n / AUTO_REFERENCE_SIZE, 1.0), 1.0)

    def trim_rd(self, tolerance: float) -> Trim:
        """Entropy-constrained codebooks aiming at a relative error of `tolerance` (section 7.2).

        The rate weight is the slope of the high-rate error-rate curve at that error,
        ``2 ln 2 * tolerance * signal / n`` per bit; the same for every group, so the groups
        share the bits optimally. A codebook entry costs Q bits plus its share of the code-length
        table.
        """
        lam = 2 * math.log(2) * tolerance * self.signal / max(self.n, 1)
        return self._trim(
            [
                km.entropy_constrained(
                    lam, float(max(size, 1)), self.q.bits + LENGTH_BITS / self.n_groups
                )
                for km, size in zip(self.kmeans, self.group_sizes, strict=True)
            ]
        )

    def trim(self, levels: int) -> Trim:
        """Codebooks of at most `levels` nonzero entries (optimal k-means), trimmed tensor."""
        return self._trim([km.solve(levels) for km in self.kmeans])

    def _trim(self, solved: list[tuple[NDArray[np.int64], NDArray[np.int64]]]) -> Trim:
        """Each level to its cluster's centroid (section 7.1), or, with an input moment, each
        weight to the entry error compensation picks (section 7.3)."""
        books = [cents for cents, _ in solved]
        if self.compensator is not None:
            values, index = self.compensator.assign(books)
            return Trim(books, values.reshape(-1), index.reshape(-1), compensated=True)
        width = 2 * self.top + 1
        value_lut = np.zeros((self.n_groups, width), dtype=np.int64)
        index_lut = np.zeros((self.n_groups, width), dtype=np.int64)
        for g, (km, (cents, labels)) in enumerate(zip(self.kmeans, solved, strict=True)):
            value_lut[g, km.x + self.top] = cents[labels]
            index_lut[g, km.x + self.top] = labels
        return Trim(books, value_lut.ravel()[self.key], index_lut.ravel()[self.key])


@dataclass(frozen=True)
class Trim:
    """Codebooks (ascending nonzero levels per group), trimmed levels and nonzero-entry indices."""

    books: list[NDArray[np.int64]]
    decoded: NDArray[np.int64]
    index: NDArray[np.int64]
    compensated: bool = False

    @property
    def used(self) -> int:
        return max((b.size for b in self.books), default=0)


@dataclass(frozen=True)
class Plan:
    """One layout of one trim, with the sizes of both index codings."""

    zeros: str
    k: int
    trim: Trim
    indices: NDArray[np.int64]
    codebook_bits: int
    mask_bits: int
    rice_k: int
    fixed_bits: int
    lengths: NDArray[np.int64] | None
    huffman_bits: int

    @property
    def huffman(self) -> bool:
        """Huffman when it saves more than HUFFMAN_MIN_SAVING of the fixed-width stream."""
        if self.lengths is None:
            return False
        coded = _nbytes(self.huffman_bits) + _nbytes(LENGTH_BITS * self.k)
        return coded < (1 - HUFFMAN_MIN_SAVING) * _nbytes(self.fixed_bits)

    @property
    def total_bytes(self) -> int:
        index = (
            _nbytes(self.huffman_bits) + _nbytes(LENGTH_BITS * self.k)
            if self.huffman
            else _nbytes(self.fixed_bits)
        )
        return _nbytes(self.codebook_bits) + _nbytes(self.mask_bits) + index


def _plan(prep: Prepared, trim: Trim, zeros: str) -> Plan | None:
    """Sizes of a layout (section 4); None when it cannot represent the trim."""
    entries = trim.used
    if zeros != "entry" and entries == 0:
        return None
    k = entries + 1 if zeros == "entry" else entries
    if k > MAX_K:
        return None
    rice_k, mask_bits = 0, 0
    if zeros == "none":
        indices = trim.index
    elif zeros == "entry":
        indices = np.where(prep.nonzero, trim.index + 1, 0)
    else:
        indices = trim.index[prep.nonzero]
        mask_bits = prep.n
        if zeros == "runs":
            gaps = prep.gaps()
            rice_k = bitio.best_rice_k(gaps, MAX_RICE_K)
            mask_bits = bitio.rice_length(gaps, rice_k)
    freq = np.bincount(indices, minlength=k)
    lengths = code_lengths(freq) if np.count_nonzero(freq) >= 2 else None
    return Plan(
        zeros=zeros,
        k=k,
        trim=trim,
        indices=indices,
        codebook_bits=prep.n_groups * entries * prep.q.bits,
        mask_bits=mask_bits,
        rice_k=rice_k,
        fixed_bits=indices.size * (k - 1).bit_length(),
        lengths=lengths,
        huffman_bits=huffman_bits(freq, lengths) if lengths is not None else 0,
    )


def _codebook(prep: Prepared, trim: Trim) -> bytes:
    entries = trim.used
    table = np.ones((prep.n_groups, entries), dtype=np.int64)  # an empty group: all +1
    for g, book in enumerate(trim.books):  # one step per codebook
        if book.size:
            table[g, : book.size] = book
            table[g, book.size :] = book[-1]
    return bitio.pack_fields(to_sign_magnitude(table.ravel(), prep.q.bits), prep.q.bits)[0]


def _emit(prep: Prepared, plan: Plan) -> Encoded:
    """Streams, params and stats of the chosen plan."""
    streams = {"codebook": _codebook(prep, plan.trim)}
    if plan.zeros == "mask":
        streams["mask"] = bitio.pack_bits(prep.nonzero)
    elif plan.zeros == "runs":
        streams["runs"] = bitio.pack_bits(bitio.rice_encode(prep.gaps(), plan.rice_k))
    if plan.huffman:
        assert plan.lengths is not None
        streams["code_lengths"] = bitio.pack_fields(plan.lengths, LENGTH_BITS)[0]
        streams["indices"] = encode_symbols(plan.indices, plan.lengths)[0]
    else:
        streams["indices"] = bitio.pack_fields(plan.indices, (plan.k - 1).bit_length())[0]
    params: dict[str, JSON] = {
        "k": plan.k,
        "axis": prep.axis,
        "group": prep.group,
        "zeros": plan.zeros,
        "huffman": plan.huffman,
    }
    if plan.zeros == "runs":
        params["nonzero"] = int(prep.nonzero.sum())
        params["rice_k"] = plan.rice_k
    decoded_coded = plan.trim.decoded
    moved = (prep.rows, *prep.shape[: prep.axis], *prep.shape[prep.axis + 1 :])
    if prep.shape:
        decoded = np.moveaxis(decoded_coded.reshape(moved), 0, prep.axis)
    else:
        decoded = decoded_coded.reshape(())
    decoded = np.array(decoded, dtype=np.int16, order="C")
    return Encoded(CodecId.DICTIONARY, params, streams, decoded, _stats(prep, plan, streams))


def _stats(prep: Prepared, plan: Plan, streams: dict[str, bytes]) -> dict[str, JSON]:
    err = plan.trim.decoded - prep.coded
    sq_err = float((err.astype(np.float64) ** 2).sum())
    signal = float((prep.coded.astype(np.float64) ** 2).sum())
    total_bits = 8 * sum(len(s) for s in streams.values())
    return {
        "k": plan.k,
        "index_bits": (plan.k - 1).bit_length(),
        "groups": prep.n_groups,
        "group": prep.group,
        "zeros": plan.zeros,
        "entropy_coded": plan.huffman,
        "codebook_bytes": len(streams["codebook"]),
        "payload_bits": {name: 8 * len(data) for name, data in streams.items()},
        "bits_per_weight": total_bits / prep.n if prep.n else 0.0,
        "lossless": not err.any(),
        "compensated": plan.trim.compensated,
        "mean_abs_level_error": float(np.abs(err).mean()) if prep.n else 0.0,
        "max_abs_level_error": int(np.abs(err).max()) if prep.n else 0,
        "level_sqnr_db": 10 * math.log10(signal / sq_err) if sq_err > 0 and signal > 0 else None,
    }


def _best(plans: Iterable[Plan | None]) -> Plan:
    """The smallest plan; ties keep the earlier one (mask, entry, runs)."""
    best: Plan | None = None
    for plan in plans:
        if plan is not None and (best is None or plan.total_bytes < best.total_bytes):
            best = plan
    if best is None:
        raise ValueError("no dictionary layout fits")
    return best


def encode_prepared(
    prep: Prepared, dict_size: int | None, zeros: str | None = None, tolerance: float | None = None
) -> Encoded:
    """Encode a prepared tensor with K = dict_size symbols, or automatically (None).

    `tolerance` (with dict_size None) replaces AUTO_TOLERANCE, the automatic mode's relative
    error target for tensors of AUTO_REFERENCE_SIZE weights and more. `zeros` forces one
    layout ("none", "entry" or "mask"; for measurements); None picks the smallest.
    """
    if dict_size is not None and not 1 <= dict_size <= MAX_K:
        raise ValueError(f"dict_size must be in [1, {MAX_K}], got {dict_size}")
    if zeros == "none" and prep.has_zeros:
        raise ValueError("layout 'none' cannot represent a tensor with zeros")
    if prep.max_levels == 0:  # all zero or empty: the implicit zero entry alone
        layouts = ["entry"]
    elif zeros is not None:
        layouts = [zeros]
    else:
        layouts = ["mask", "entry", "runs"] if prep.has_zeros else ["none"]
    plans = []
    if dict_size is None:
        trim = prep.trim_rd(prep.auto_tolerance(AUTO_TOLERANCE if tolerance is None else tolerance))
        plans = [_plan(prep, trim, layout) for layout in layouts]
    for layout in layouts if dict_size is not None else []:
        levels = dict_size - 1 if layout == "entry" else dict_size
        if levels >= 1 or prep.max_levels == 0:
            plans.append(_plan(prep, prep.trim(max(levels, 1)), layout))
    return _emit(prep, _best(plans))


def encode(q: QuantTensor, options: DictionaryOptions) -> Encoded:
    """Trim the levels onto per-group codebooks and store the indices (section 7)."""
    return encode_prepared(Prepared(q, options), options.dict_size)


def candidates(
    q: QuantTensor, options: DictionaryOptions, ks: Iterable[int | None]
) -> dict[int | None, Encoded]:
    """Encode `q` at every dictionary size in `ks` (None = automatic), sharing the work.

    The histograms and the k-means programmes are computed once; a larger K extends them. Each
    result is exactly what `encode` returns with `options.dict_size` set to that K.
    """
    prep = Prepared(q, options)
    return {k: encode_prepared(prep, k) for k in ks}


def tolerance_candidates(
    q: QuantTensor, options: DictionaryOptions, tolerances: Iterable[float]
) -> dict[float, Encoded]:
    """Encode `q` with entropy-constrained codebooks at each tolerance (the automatic mode
    with AUTO_TOLERANCE replaced): the rate-distortion knob of a search."""
    prep = Prepared(q, options)
    return {t: encode_prepared(prep, None, tolerance=t) for t in tolerances}


def encoder_at(
    quantized: list[QuantTensor], options: list[DictionaryOptions], fixed: list[Encoded | None]
) -> Callable[[float], list[Encoded]]:
    """A search's trial function over the relative error tolerance t (policy dictionary,
    xorc/policies.py): each tensor not `fixed` is prepared once (histograms, k-means
    programmes), and a trial encodes it at the trial's tolerance (automatic mode)."""
    work: list[Prepared | Encoded] = [
        Prepared(q, o) if f is None else f
        for q, o, f in zip(quantized, options, fixed, strict=True)
    ]

    def encode_at(tolerance: float) -> list[Encoded]:
        return [
            encode_prepared(w, None, tolerance=tolerance) if isinstance(w, Prepared) else w
            for w in work
        ]

    return encode_at
