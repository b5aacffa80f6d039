"""Encoder of codec `xor`, second half: from a solved tensor to its streams for one error budget
(docs/codecs/xor.md §9). `xorc.codecs.xor.encode` solves; `finish` here picks each plane's rate
and the errors to patch, builds the streams, and falls back to codec `raw` when that is not
larger. The budget semantics are in `xorc.codecs.xor.encode`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from xorc import bits as bitio
from xorc.codecs import CodecId
from xorc.codecs.common import from_sign_magnitude
from xorc.codecs.raw.encode import encode as raw_encode
from xorc.codecs.raw.options import RawOptions
from xorc.codecs.xor.decode import VARIANT, busy_ids
from xorc.codecs.xor.network import network, network_crc32
from xorc.codecs.xor.options import XorOptions
from xorc.codecs.xor.patches import encode_patches, patch_run_length
from xorc.codecs.xor.schema import VARIANT_ADAPT, VARIANT_SEQ
from xorc.tensor import JSON, Encoded, QuantTensor

GRID = 48
"""Policy "importance": trade-off points evaluated per tensor (log-spaced lam)."""


@dataclass(frozen=True)
class Candidate:
    """One plane solved at one rate.

    Attributes:
        n_in: the rate (seed bits per slice).
        seeds: (n_slices,) seed words.
        err: sorted care indices of the errors (int32).
        by_imp: the errors in ascending importance (indices into `err`, int32).
        imp_sorted: their importances, ascending (float32).
        all_bits: exact patch-run bits when every error is patched.
        stages, invert: variant 2's register stages and output inversion (docs/codecs/xor.md
            §11; 1 and 0 for variant 1).
        rate, widths: variant 3's rate and per-busy-slice field widths (§12; `n_in` is then
            the register width).
    """

    n_in: int
    seeds: NDArray[np.uint64]
    err: NDArray[np.int32]
    by_imp: NDArray[np.int32]
    imp_sorted: NDArray[np.float32]
    all_bits: int
    stages: int = 1
    invert: int = 0
    rate: int = 0
    widths: NDArray[np.int64] | None = None

    def seed_bits(self, n_busy: int) -> int:
        """Bits of this plane's seed fields over the `n_busy` busy slices."""
        return int(self.widths.sum()) if self.widths is not None else self.n_in * n_busy

    @property
    def patch_cost(self) -> float:
        """Bits per patch when all are patched."""
        return self.all_bits / self.err.size if self.err.size else 0.0


@dataclass(frozen=True)
class SolvedTensor:
    """The expensive part of encoding one tensor; `finish` turns it into an `Encoded`.

    Attributes:
        q: the input tensor; options: the options it was solved with.
        n_out, m_seed: the network; n_slices: slices of the tensor; n_busy: slices holding a
            kept weight (only those store seeds).
        kept: positions of the kept weights (C order); codes: their sign-magnitude codes.
        candidates: per plane (sign first), the rates it may use.
        best_rate: per plane, the scan's best rate for correct-all.
        mask_coding, mask_k, mask_bits, mask_stream: the coded mask.
        cache: trade-off points computed by `finish` (filled on first use).
        variant: 1 or 2 (docs/codecs/xor.md §11); stream_len: variant 2's register stream
            length in busy slices.
    """

    q: QuantTensor
    options: XorOptions
    n_out: int
    m_seed: int
    n_slices: int
    n_busy: int
    kept: NDArray[np.int64]
    codes: NDArray[np.uint16]
    candidates: list[list[Candidate]]
    best_rate: list[int]
    mask_coding: str
    mask_k: int
    mask_bits: int
    mask_stream: bytes
    cache: dict[str, list[_Option]] = field(default_factory=dict, compare=False, repr=False)
    variant: int = VARIANT
    stream_len: int = 0


# --- finish: rate and patch choice for a budget --------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """One trade-off point: per plane the chosen candidate and how many of its least important
    errors stay uncorrected (before forced patches); the resulting seed + patch bits, errors
    left uncorrected (after forced patches) and errors in all."""

    choice: tuple[int, ...]
    left: tuple[int, ...]
    bits: int
    n_left: int
    n_errors: int


def _plan(solved: SolvedTensor, lam: float, cums: list[list[NDArray[np.float64]]]) -> _Option:
    """Each plane's rate and patch set minimising bits + lam * importance left (lam=inf: all)."""
    choice, left = [], []
    for cands, csums in zip(solved.candidates, cums, strict=True):
        best = (math.inf, 0, 0)
        for ci, (c, cum) in enumerate(zip(cands, csums, strict=True)):
            if math.isinf(lam) or c.err.size == 0:
                m, cost = 0, c.seed_bits(solved.n_busy) + c.all_bits
            else:
                m = int(np.searchsorted(c.imp_sorted, c.patch_cost / lam, side="left"))
                damage = float(cum[m - 1]) if m else 0.0
                cost = c.seed_bits(solved.n_busy) + c.patch_cost * (c.err.size - m) + lam * damage
            if cost < best[0]:
                best = (cost, ci, m)
        choice.append(best[1])
        left.append(best[2])
    return _measure(solved, tuple(choice), tuple(left))


def _left_after_forcing(
    solved: SolvedTensor, choice: tuple[int, ...], left: tuple[int, ...]
) -> tuple[list[NDArray[np.bool_]], int]:
    """Per plane, which errors of the chosen candidate stay uncorrected (a mask over its `err`),
    after patching those that would zero a kept weight's magnitude; and how many were forced."""
    bits = solved.q.bits
    flips = np.zeros(solved.kept.size, dtype=np.uint16)
    masks = []
    for i, (ci, m) in enumerate(zip(choice, left, strict=True)):
        c = solved.candidates[i][ci]
        mask = np.zeros(c.err.size, dtype=bool)
        mask[c.by_imp[:m]] = True
        masks.append(mask)
        flips[c.err[mask]] |= np.uint16(1 << (bits - 1 - i))
    mag_mask = np.uint16((1 << (bits - 1)) - 1)
    zeroed = ((solved.codes ^ flips) & mag_mask) == 0
    forced = 0
    if zeroed.any():
        for i in range(1, bits):
            c = solved.candidates[i][choice[i]]
            hit = masks[i] & zeroed[c.err]
            forced += int(hit.sum())
            masks[i] &= ~hit
    return masks, forced


def _patches(
    solved: SolvedTensor, choice: tuple[int, ...], masks: list[NDArray[np.bool_]]
) -> list[NDArray[np.int64]]:
    """Per plane, the sorted positions to patch (variant 3: care indices, §12.3): the errors
    not left uncorrected."""
    at = (lambda c: c) if solved.variant == VARIANT_ADAPT else (lambda c: solved.kept[c])
    return [at(solved.candidates[i][ci].err[~masks[i]]) for i, ci in enumerate(choice)]


def _measure(solved: SolvedTensor, choice: tuple[int, ...], left: tuple[int, ...]) -> _Option:
    """Exact seed + patch bits and uncorrected errors of a plan (forced patches included)."""
    if not any(left):
        masks = [np.zeros(solved.candidates[i][ci].err.size, bool) for i, ci in enumerate(choice)]
    else:
        masks, _ = _left_after_forcing(solved, choice, left)
    seed_bits = sum(
        solved.candidates[i][ci].seed_bits(solved.n_busy) for i, ci in enumerate(choice)
    )
    patch_bits = sum(patch_run_length(p)[1] for p in _patches(solved, choice, masks))
    total = sum(solved.candidates[i][ci].err.size for i, ci in enumerate(choice))
    n_left = sum(int(m.sum()) for m in masks)
    return _Option(choice, left, seed_bits + patch_bits, n_left, total)


def _options(solved: SolvedTensor) -> list[_Option]:
    """The trade-off points of a tensor: lam = inf (correct all) and GRID log-spaced lams.

    `finish` picks the smallest among those within the budget, so the blob size can only
    shrink as the budget grows. Cached on the SolvedTensor.
    """
    if "options" in solved.cache:
        return solved.cache["options"]
    cums = [
        [np.cumsum(c.imp_sorted, dtype=np.float64) for c in cands] for cands in solved.candidates
    ]
    options = [_plan(solved, math.inf, cums)]
    imps = [c.imp_sorted for cands in solved.candidates for c in cands if c.err.size]
    positive = np.concatenate([i[i > 0] for i in imps]) if imps else np.zeros(0)
    if solved.options.patch_policy == "importance" and positive.size:
        costs = [c.patch_cost for cands in solved.candidates for c in cands if c.err.size]
        lo = math.log(min(costs) / float(positive.max())) - 1.0
        hi = math.log(max(costs) / float(positive.min())) + 1.0
        options += [_plan(solved, math.exp(float(x)), cums) for x in np.linspace(lo, hi, GRID)]
    solved.cache["options"] = options
    return options


def _adaptive_stream(chosen: list[Candidate], busy: NDArray[np.int64]) -> bytes:
    """Variant 3's seeds stream: each busy slice's fields of every plane, at its width (§12.2)."""
    widths = np.stack(
        [c.widths if c.widths is not None else np.zeros(busy.size, np.int64) for c in chosen]
    )
    values = np.stack([c.seeds[busy] for c in chosen])
    return bitio.pack_fields_fast(values.T.ravel(), widths.T.ravel())[0]


def _seeds_stream(seeds: list[NDArray[np.uint64]], n_in: list[int], n_slices: int) -> bytes:
    """Slice-interleaved seed fields of the given (busy) slices (docs/codecs/xor.md §4)."""
    per_slice = sum(n_in)
    out = np.zeros((n_slices, per_slice), dtype=np.uint8)
    start = 0
    for s, width in zip(seeds, n_in, strict=True):
        if width:
            out[:, start : start + width] = bitio.fields_to_bits(s, width).reshape(n_slices, width)
        start += width
    return bitio.pack_bits(out)


def finish(
    solved: SolvedTensor, error_budget: float | None = None, fallback: bool = True
) -> Encoded:
    """Build the `Encoded` for an error budget (module docstring); no elimination is re-run."""
    q = solved.q
    options = _options(solved)
    best = options[0]
    if error_budget is not None and error_budget > 0:
        allowed = error_budget * options[0].n_errors
        best = min((o for o in options if o.n_left <= allowed), key=lambda o: (o.bits, o.n_left))
    chosen = [solved.candidates[i][ci] for i, ci in enumerate(best.choice)]
    masks, forced = _left_after_forcing(solved, best.choice, best.left)
    flips = np.zeros(solved.kept.size, dtype=np.uint16)
    left_idx = [c.err[m] for c, m in zip(chosen, masks, strict=True)]
    for i, idx in enumerate(left_idx):
        flips[idx] |= np.uint16(1 << (q.bits - 1 - i))
    patch_stream, counts, ks, lengths = encode_patches(_patches(solved, best.choice, masks))
    n_in = [c.n_in for c in chosen]
    busy = busy_ids(solved.kept, solved.n_out)
    if solved.variant == VARIANT_ADAPT:
        seeds_stream = _adaptive_stream(chosen, busy)
    else:
        seeds_stream = _seeds_stream([c.seeds[busy] for c in chosen], n_in, busy.size)
    params = _params(solved, n_in, counts, ks, lengths)
    if solved.variant == VARIANT_SEQ:
        params |= {"stages": [c.stages for c in chosen]}
    if solved.variant == VARIANT_ADAPT:
        params |= {"rate": [c.rate for c in chosen]}
    if solved.variant in (VARIANT_SEQ, VARIANT_ADAPT):
        params |= {"invert": [c.invert for c in chosen], "stream_len": solved.stream_len}
    streams = {"mask": solved.mask_stream, "seeds": seeds_stream, "patches": patch_stream}
    decoded = np.zeros(q.values.size, dtype=np.int16)
    decoded[solved.kept] = from_sign_magnitude(solved.codes ^ flips, q.bits)
    errors = {
        "errors": [int(c.err.size) for c in chosen],
        "errors_left": [int(x.size) for x in left_idx],
        "errors_if_all": options[0].n_errors,
        "forced": forced,
    }
    plane_bits = [c.seed_bits(solved.n_busy) for c in chosen]
    stats = _stats(solved, n_in, plane_bits, counts, lengths, errors)
    if solved.variant in (VARIANT_SEQ, VARIANT_ADAPT):
        stats |= _seq_stats(solved, chosen, lengths)
    encoded = Encoded(CodecId.XOR, params, streams, decoded.reshape(q.values.shape), stats)
    return _raw_if_not_larger(encoded, q) if fallback else encoded


def _params(
    solved: SolvedTensor, n_in: list[int], counts: list[int], ks: list[int], lengths: list[int]
) -> dict[str, JSON]:
    """The record's codec parameters (docs/codecs/xor.md §7)."""
    return {
        "variant": solved.variant,
        "n_out": solved.n_out,
        "m_seed": solved.m_seed,
        "m_crc32": network_crc32(network(solved.m_seed, solved.n_out)),
        "n_in": n_in,
        "n_kept": int(solved.kept.size),
        "mask_coding": solved.mask_coding,
        "mask_k": solved.mask_k,
        "mask_bits": solved.mask_bits,
        "patches": counts,
        "patch_k": ks,
        "patch_bits": lengths,
    }


def _stats(
    solved: SolvedTensor,
    n_in: list[int],
    plane_bits: list[int],
    counts: list[int],
    lengths: list[int],
    errors: dict[str, JSON],
) -> dict[str, JSON]:
    """What `inspect` shows of the encoding; `errors` are the error counts `finish` found."""
    q = solved.q
    n = max(q.values.size, 1)
    return {
        "policy": solved.options.patch_policy,
        "restarts": max(1, int(solved.options.effort)),
        "n_out": solved.n_out,
        "n_in": n_in,
        "planes": q.bits,
        "plane_bits": plane_bits,
        "patch_bits": lengths,
        "mask_bits": solved.mask_bits,
        "mask_coding": solved.mask_coding,
        "patches": counts,
        **errors,
        "bits_per_weight": {
            "total": round((sum(plane_bits) + sum(lengths) + solved.mask_bits) / n, 5),
            "planes": round(sum(plane_bits) / n, 5),
            "patches": round(sum(lengths) / n, 5),
            "mask": round(solved.mask_bits / n, 5),
        },
        "fallback": None,
    }


def _seq_stats(
    solved: SolvedTensor, chosen: list[Candidate], lengths: list[int]
) -> dict[str, JSON]:
    """Variant 2's stats (docs/codecs/xor.md §11.2): register shape, plane modes, efficiency."""
    care = int(solved.kept.size)
    modes, eff = [], []
    for c, patch_bits in zip(chosen, lengths, strict=True):
        modes.append("seeds" if c.n_in else ("zeros" if c.invert else "ones"))
        stored = c.seed_bits(solved.n_busy) + patch_bits
        eff.append(round(care / stored, 4) if stored else None)
    shape: dict[str, JSON] = (
        {"rate": [c.rate for c in chosen]}
        if solved.variant == VARIANT_ADAPT
        else {"stages": [c.stages for c in chosen]}
    )
    return {
        "variant": solved.variant,
        **shape,
        "invert": [c.invert for c in chosen],
        "stream_len": solved.stream_len,
        "plane_mode": modes,
        "efficiency": eff,
    }


def _raw_if_not_larger(encoded: Encoded, q: QuantTensor) -> Encoded:
    """Codec `raw` on the tensor's own levels instead, when its streams are not larger (the
    stats say why)."""
    raw = raw_encode(q, RawOptions())
    xor_bytes = sum(len(s) for s in encoded.streams.values())
    raw_bytes = sum(len(s) for s in raw.streams.values())
    if raw_bytes > xor_bytes:
        return encoded
    why = f"raw: xor needs {xor_bytes} bytes, raw {raw_bytes}"
    return Encoded(raw.codec, raw.params, raw.streams, raw.decoded, {**raw.stats, "fallback": why})
