"""The policy registry: one frozen `Policy` record per `--policy` name.

A policy says how `compress` encodes a tensor: which codec's encoder runs with which of that
codec's options, whether the result is lossless, what it takes from `--calib`, which global knob
the `--max-drop` / `--max-bits-per-weight` searches move, and whether it records feature-map
figures. The pipeline, the command line, the configuration checks and the searches ask this
registry; nothing else branches on a policy's name.

The container stores the policy's name as informational text (docs/format.md §3.2): readers
decode by codec id and never refuse a policy they do not know.

Adding a policy is one record in `POLICIES` (docs/adding-a-codec.md). Encoders are imported
only when a policy encodes, so importing this module loads no encoder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from xorc.codecs import CodecId
from xorc.codecs.dictionary.options import DictionaryOptions
from xorc.codecs.ebpc.options import EbpcOptions
from xorc.codecs.insitu.options import InsituOptions
from xorc.codecs.raw.options import RawOptions
from xorc.codecs.xor.options import XorOptions
from xorc.errors import UsageError

if TYPE_CHECKING:
    from xorc.config import CompressOptions, TensorSettings
    from xorc.tensor import Encoded, QuantTensor

EncodeAt = Callable[[float], "list[Encoded]"]
"""A search trial: every tensor encoded at one value of the policy's knob."""


@dataclass(frozen=True)
class SearchKnob:
    """The one global knob a policy's size/accuracy searches move (xorc/search.py).

    Attributes:
        name: what the knob is, as the blob's `search.knob` records it.
        grid: the values tried, in order of shrinking blob size.
        encoder_at: "module:function" building a trial function from the planned tensors, their
            codec options and, per tensor, a fixed encoding (tensors another policy encodes) or
            None; the searches call it once and the trial function once per knob value.
    """

    name: str
    grid: tuple[float, ...]
    encoder_at: str

    def make(
        self, quantized: Sequence[QuantTensor], options: Sequence[Any], fixed: Sequence[Any]
    ) -> EncodeAt:
        encode_at: EncodeAt = _resolve(self.encoder_at)(list(quantized), list(options), list(fixed))

        def bounded(value: float) -> list[Encoded]:  # every trial within the decoded-size bound
            return [_within_bound(e, q) for e, q in zip(encode_at(value), quantized, strict=True)]

        return bounded


@dataclass(frozen=True)
class Policy:
    """One `--policy`.

    Attributes:
        name: the `--policy` value, stored in each record as informational text.
        codec: the codec whose encoder runs (it may still fall back to raw per tensor).
        summary: one line for `--help` and the docs.
        encoder: "module:function" of the encoder, `encode(q, codec_options) -> Encoded`.
        codec_options: the codec's frozen options for one tensor, from its settings and the
            compress options.
        lossless: True when the decoded levels always equal the quantized ones.
        uses_sensitivity: with `--calib`, the encoder weighs errors by input sensitivity
            (`QuantTensor.importance`).
        uses_moment: with `--calib`, the encoder gets the layer input's second moment and the
            unrounded levels (`QuantTensor.moment`, `QuantTensor.exact`) to compensate errors.
        search: the knob of `--max-drop` / `--max-bits-per-weight`; None: not searchable.
        direct_knob: the CompressOptions field that sets the knob by hand (`error_budget`), if
            any: without it and without a search the policy behaves like its lossless twin.
        records_fmap: with `--calib`, `compress` records per-layer feature-map figures.
        reconstructs: with `--calib`, the uniform quantizer's levels come from GPTQ / OBS
            pruning (xorc/reconstruct.py) instead of round-to-nearest.
        per_layer: `--max-drop` / `--max-bits-per-weight` choose bits and sparsity per layer
            from a sensitivity analysis (xorc/mixed.py) instead of moving `search`.
        uses_hessian: with `--calib`, the encoder gets the H of its rows' features
            (xorc/hessian.py, one group) as `QuantTensor.moment`, and the unrounded levels.
    """

    name: str
    codec: CodecId
    summary: str
    encoder: str
    codec_options: Callable[[TensorSettings, CompressOptions], Any]
    lossless: bool
    uses_sensitivity: bool = False
    uses_moment: bool = False
    search: SearchKnob | None = None
    direct_knob: str | None = None
    records_fmap: bool = False
    reconstructs: bool = False
    per_layer: bool = False
    uses_hessian: bool = False

    def encode(self, q: QuantTensor, settings: TensorSettings, options: CompressOptions) -> Encoded:
        """Run this policy's encoder on one tensor."""
        return self.encode_with(q, self.codec_options(settings, options))

    def encode_with(self, q: QuantTensor, codec_options: Any) -> Encoded:
        if self.codec != CodecId.RAW and _full_range(q):
            raw: Encoded = _resolve("xorc.codecs.raw.encode:encode")(q, RawOptions())
            why = f"raw: only raw stores level {-(1 << (q.bits - 1))} (all {1 << q.bits} codes)"
            return replace(raw, stats={**raw.stats, "fallback": why})
        encoded: Encoded = _resolve(self.encoder)(q, codec_options)
        return _within_bound(encoded, q)


def _full_range(q: QuantTensor) -> bool:
    """Whether a level is -2**(Q-1): an already quantized weight that uses all 2**Q values
    (xorc/prequant.py), which only codec raw stores (docs/format.md §4.1)."""
    return bool(q.values.size) and int(q.values.min()) < -((1 << (q.bits - 1)) - 1)


def _within_bound(encoded: Encoded, q: QuantTensor) -> Encoded:
    """`encoded`, or codec `raw` when it would decode to more weights than its codec's maximum
    expansion allows (docs/format.md §5 step 7): readers refuse such a record."""
    from xorc.codecs.bounds import max_weights
    from xorc.codecs.registry import CODECS

    spec = CODECS.get(int(encoded.codec))
    if spec is None or q.values.size <= max_weights(encoded.streams, spec.max_weights_per_bit):
        return encoded
    raw: Encoded = _resolve("xorc.codecs.raw.encode:encode")(q, RawOptions())
    why = f"raw: {spec.name} would exceed its {spec.max_weights_per_bit} weights per bit"
    return replace(raw, stats={**raw.stats, "fallback": why})


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _raw(settings: TensorSettings, options: CompressOptions) -> RawOptions:
    return RawOptions()


def _xor_all(settings: TensorSettings, options: CompressOptions) -> XorOptions:
    return XorOptions(
        seed=options.seed, effort=options.effort, patch_policy="all", variant=options.xor_variant
    )


def _xor_importance(settings: TensorSettings, options: CompressOptions) -> XorOptions:
    return XorOptions(
        options.seed, options.effort, "importance", options.error_budget, options.xor_variant
    )


def _dictionary(settings: TensorSettings, options: CompressOptions) -> DictionaryOptions:
    return DictionaryOptions(dict_size=settings.dict_size, dict_group=options.dict_group)


def _ebpc(settings: TensorSettings, options: CompressOptions) -> EbpcOptions:
    return EbpcOptions(word_width=options.ebpc_word_width, block_size=options.ebpc_block_size)


def _insitu(settings: TensorSettings, options: CompressOptions) -> InsituOptions:
    from xorc.config import insitu_config

    forced = None if options.insitu_config is None else insitu_config(options.insitu_config)
    if options.insitu_tolerance is None:
        return InsituOptions(config=forced)
    return InsituOptions(tolerance=options.insitu_tolerance, config=forced)


XOR_BUDGETS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
"""The XOR error budgets f a search tries (docs/codecs/xor.md)."""

DICT_TOLERANCES = (0.0, *(float(f"{10 ** (e / 4):.3g}") for e in range(-20, 9)))
"""0, then 1e-5 to 100 in steps of 10^(1/4): the relative level error of tensors of 10^6 weights
and more; smaller tensors get proportionally less, every tensor at most 1
(docs/codecs/dictionary.md), so small models can reach small sizes too."""

INSITU_TOLERANCES = (0.0, *(float(f"{10 ** (e / 4):.3g}") for e in range(-20, 1)))
"""0, then 1e-5 to 1 in steps of 10^(1/4): the relative output error each layer may take
(docs/codecs/insitu.md §6.4)."""

_POLICIES = (
    Policy(
        "raw",
        CodecId.RAW,
        "bit-packed Q-bit values plus the pruning mask (lossless)",
        "xorc.codecs.raw.encode:encode",
        _raw,
        lossless=True,
        reconstructs=True,
        per_layer=True,
    ),
    Policy(
        "all",
        CodecId.XOR,
        "XOR-gate-network bit-planes, every error patched (lossless)",
        "xorc.codecs.xor.encode:encode",
        _xor_all,
        lossless=True,
        reconstructs=True,
        per_layer=True,
    ),
    Policy(
        "importance",
        CodecId.XOR,
        "XOR-gate-network bit-planes, only the errors that matter patched",
        "xorc.codecs.xor.encode:encode",
        _xor_importance,
        lossless=False,
        uses_sensitivity=True,
        search=SearchKnob("error_budget", XOR_BUDGETS, "xorc.codecs.xor.encode:encoder_at"),
        direct_knob="error_budget",
        reconstructs=True,
    ),
    Policy(
        "dictionary",
        CodecId.DICTIONARY,
        "trimmed levels on k-means codebooks, optional Huffman indices",
        "xorc.codecs.dictionary.encode:encode",
        _dictionary,
        lossless=False,
        uses_sensitivity=True,
        uses_moment=True,
        search=SearchKnob("tolerance", DICT_TOLERANCES, "xorc.codecs.dictionary.encode:encoder_at"),
    ),
    Policy(
        "ebpc",
        CodecId.EBPC,
        "extended bit-plane compression, the open RTL's format (lossless)",
        "xorc.codecs.ebpc.weights_encode:encode",
        _ebpc,
        lossless=True,
        records_fmap=True,
        reconstructs=True,
        per_layer=True,
    ),
    Policy(
        "insitu",
        CodecId.INSITU,
        "kernels regenerated from low-bit bases and coefficients (MLG), else raw",
        "xorc.codecs.insitu.encode:encode",
        _insitu,
        lossless=False,
        search=SearchKnob("tolerance", INSITU_TOLERANCES, "xorc.codecs.insitu.encode:encoder_at"),
        uses_hessian=True,
    ),
)

POLICIES: dict[str, Policy] = {p.name: p for p in _POLICIES}
"""Every policy by name, in the order `--help` lists them."""

NAMES: tuple[str, ...] = tuple(POLICIES)
LOSSLESS: tuple[str, ...] = tuple(p.name for p in _POLICIES if p.lossless)
SEARCHABLE: tuple[str, ...] = tuple(p.name for p in _POLICIES if p.search is not None)
PER_LAYER: tuple[str, ...] = tuple(p.name for p in _POLICIES if p.per_layer)


def get(name: str) -> Policy:
    """The policy called `name`, or UsageError listing the known ones."""
    if name not in POLICIES:
        raise UsageError(f"unknown policy {name!r}; expected one of {', '.join(NAMES)}")
    return POLICIES[name]
