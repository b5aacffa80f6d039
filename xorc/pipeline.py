"""`compress`: the pipeline as a list of named stages.

    load model -> (calibrate) -> plan per tensor -> prune -> quantize -> encode
    -> (bias correction) -> lay out container

Each stage is a small function; `compress_model` reads like the table of contents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xorc import __version__, calibrate, onnx_io, search
from xorc.codecs import CodecId
from xorc.codecs.encoders import ENCODERS, LOSSLESS_POLICIES
from xorc.config import CompressOptions, TensorSettings
from xorc.errors import UnsupportedModel, UsageError
from xorc.format import Container, TensorRecord, levels_digest
from xorc.format.container import SCALES, encode_scales, layout_payload
from xorc.quantize import (
    along,
    dequantize,
    global_threshold,
    is_bfloat16,
    max_level,
    prune_below,
    prune_to,
    quantize,
)
from xorc.tensor import Encoded, EncodeOptions, QuantTensor

Progress = Callable[[str, int], None]
"""Called once per tensor after it is encoded, with its name and the number of tensors."""


@dataclass
class PlannedTensor:
    """A weight chosen for encoding, with the settings that apply to it."""

    weight: onnx_io.WeightInfo
    settings: TensorSettings


def compress_model(
    model_path: str | Path,
    options: CompressOptions,
    calib: str | Path | None = None,
    progress: Progress | None = None,
) -> Container:
    """Compress an ONNX model into a container (docs/format.md).

    Args:
        model_path: the ONNX file.
        options: the effective options (see xorc.config).
        calib: optional calibration .npz (input sensitivity, bias correction).
        progress: optional callback, once per encoded tensor.
    """
    model = onnx_io.load_model(model_path)
    plan = plan_tensors(model, options)
    moments = [p.weight.name for p in plan if p.settings.policy == "dictionary"]
    stats = calibrate.input_stats(model, calib, moments) if calib is not None else {}
    quantized = quantize_planned(model, plan, options, stats)
    extra: dict = {}

    def tick(name: str) -> None:
        if progress is not None:
            progress(name, len(plan))

    if options.max_drop is not None or options.max_bits_per_weight is not None:
        result = search_stage(model, plan, quantized, options, stats, calib)
        encoded, extra["search"] = result.encoded, result.to_json()
        for q in quantized:
            tick(q.name)
    else:
        encoded = []
        for q, p in zip(quantized, plan, strict=True):
            encoded.append(encode_tensor(q, p.settings, options))
            tick(q.name)
    if stats and options.bias_correction:
        correct_biases(model, plan, quantized, encoded, stats)
    fmap = None
    if options.policy == "ebpc" and calib is not None:
        fmap = feature_map_stage(model, calib)
    return assemble(model, plan, quantized, encoded, options, fmap, extra_meta=extra)


FMAP_CALIB_INPUTS = 64


def feature_map_stage(model: onnx_io.SourceModel, calib: str | Path) -> dict | None:
    """Stage (policy ebpc with --calib): activation quantization and EBPC ratio per layer.

    Deployment quantization (calibrated round-to-nearest, 8 bits) on up to FMAP_CALIB_INPUTS
    calibration inputs; the datapath simulator counts feature-map traffic from it.
    """
    from xorc import activations

    if not onnx_io.activation_outputs(onnx_io.serialize(model)):
        return None
    (result,) = activations.analyze_model(
        model, calib, 8, ("deploy",), max_inputs=FMAP_CALIB_INPUTS
    )
    return activations.fmap_section(result)


SEARCHABLE = {
    "importance": ("error_budget", search.XOR_BUDGETS, search.xor_encoder_at),
    "dictionary": ("tolerance", search.DICT_TOLERANCES, search.dictionary_encoder_at),
}


def search_stage(
    model: onnx_io.SourceModel,
    plan: list[PlannedTensor],
    quantized: list[QuantTensor],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
    calib: str | Path | None,
) -> search.SearchResult:
    """Stage --max-drop (the smallest blob within the drop) or --max-bits-per-weight (the most
    accurate blob within the size): search the policy's knob."""
    flag = "--max-drop" if options.max_bits_per_weight is None else "--max-bits-per-weight"
    if options.max_drop is not None and options.max_bits_per_weight is not None:
        raise UsageError("give --max-drop or --max-bits-per-weight, not both")
    if options.policy not in SEARCHABLE:
        raise UsageError(
            f"{flag} works with policy importance or dictionary, not {options.policy!r}"
        )
    knob_name, grid, encoder_at = SEARCHABLE[options.policy]
    enc_options = [encoder_options(p.settings, options) for p in plan]
    fixed = [
        None if p.settings.policy == options.policy else encode_tensor(q, p.settings, options)
        for q, p in zip(quantized, plan, strict=True)
    ]
    encode_at = encoder_at(quantized, enc_options, fixed)
    scale_bytes = sum(len(stored_scales(q, options)[1]) for q in quantized)
    if options.max_bits_per_weight is not None:
        n_weights = sum(q.values.size for q in quantized)
        budget = int(options.max_bits_per_weight * n_weights / 8)
        return search.fit_size(grid, encode_at, budget, scale_bytes, knob_name)
    if calib is None:
        raise UsageError("--max-drop needs --calib DATA.npz to measure the drop on")
    use_bias = bool(stats) and options.bias_correction
    probe = search.AccuracyProbe(
        model,
        calib,
        quantized,
        [p.weight.dtype for p in plan],
        lambda enc: corrected_biases(model, plan, quantized, enc, stats) if use_bias else {},
    )
    return search.search(grid, encode_at, probe, options.max_drop, knob_name, scale_bytes)


def plan_tensors(model: onnx_io.SourceModel, options: CompressOptions) -> list[PlannedTensor]:
    """Stage: the compressible weights that are not skipped, with their settings."""
    plan = []
    for w in onnx_io.find_weights(model):
        if not w.compressible:
            continue
        settings = options.settings_for(w.name, w.node_names)
        if settings.skip:
            continue
        if w.dtype == "int8":
            _check_prequantized(model, w, settings)
        plan.append(PlannedTensor(w, settings))
    return plan


def _check_prequantized(
    model: onnx_io.SourceModel, w: onnx_io.WeightInfo, settings: TensorSettings
) -> None:
    """An int8 weight of a quantized model is compressed as it is, losslessly, or refused."""
    where = f"{model.path}: tensor {w.name!r} is already quantized (int8)"
    if settings.policy not in LOSSLESS_POLICIES:
        raise UnsupportedModel(
            f"{where}; xorc does not re-quantize it, and policy {settings.policy!r} is lossy "
            f"(use one of {', '.join(LOSSLESS_POLICIES)}, or skip it in the config)"
        )
    if (w.array == -128).any() or not onnx_io.zero_point_is_zero(model, w.name):
        raise UnsupportedModel(
            f"{where} with level -128 or a nonzero zero point, which symmetric 8-bit "
            "sign-magnitude cannot hold; skip it in the config"
        )


def quantize_planned(
    model: onnx_io.SourceModel,
    plan: list[PlannedTensor],
    options: CompressOptions,
    stats: dict[str, calibrate.InputStats],
) -> list[QuantTensor]:
    """Stages prune and quantize: integer levels and scales for every planned tensor."""
    threshold = 0.0
    if options.sparsity_scope == "global":
        floats = [p.weight.array for p in plan if p.weight.dtype != "int8"]
        threshold = global_threshold(floats, options.sparsity)
    out = []
    for p in plan:
        w, s = p.weight, p.settings
        if w.dtype == "int8":
            levels = w.array.astype(np.int16)
            out.append(QuantTensor(w.name, levels, 8, np.ones(1, np.float32), None))
            continue
        values = w.array.astype(np.float32)
        if options.sparsity_scope == "global" and s.sparsity == options.sparsity:
            values = prune_below(values, threshold)
        elif s.sparsity > 0:
            values = prune_to(values, s.sparsity)
        axis = w.axis if s.per_channel else None
        levels, scales = quantize(values, s.bits, axis, options.scale_dtype)
        imp = None
        if s.policy in ("importance", "dictionary"):
            sens = calibrate.sensitivity(stats[w.name], w.array.shape) if w.name in stats else None
            imp = error_weight(levels.shape, scales, axis, sens)
        exact, moment = None, None
        st = stats.get(w.name)
        if (
            s.policy == "dictionary"
            and st is not None
            and st.moment is not None
            and axis is not None
        ):
            top = float(max_level(s.bits))
            exact = np.clip(values / along(scales, axis, values.ndim), -top, top)
            moment = st.moment
        out.append(QuantTensor(w.name, levels, s.bits, scales, axis, imp, exact, moment))
    return out


def error_weight(
    shape: tuple[int, ...],
    scales: np.ndarray,
    axis: int | None,
    sensitivity: np.ndarray | None,
) -> np.ndarray:
    """Per-weight importance for the codecs: the cost of a one-level error at each weight.

    A level error of d changes the weight by d × scale[channel] and the layer output by that
    times the input, so the weight is scale × input sensitivity (1 without calibration data).
    """
    scale = along(scales, axis, len(shape))
    base = np.ones(shape, np.float32) if sensitivity is None else sensitivity
    return (base * scale).astype(np.float32)


def encoder_options(settings: TensorSettings, options: CompressOptions) -> EncodeOptions:
    """The encoder knobs for one tensor."""
    return EncodeOptions(
        seed=options.seed,
        effort=options.effort,
        patch_policy="importance" if settings.policy == "importance" else "all",
        error_budget=options.error_budget,
        dict_size=settings.dict_size,
        dict_group=options.dict_group,
        ebpc_word_width=options.ebpc_word_width,
        ebpc_block_size=options.ebpc_block_size,
    )


def encode_tensor(q: QuantTensor, settings: TensorSettings, options: CompressOptions) -> Encoded:
    """Stage encode: run the policy's encoder on one tensor."""
    encoder = ENCODERS.get(settings.policy)
    if encoder is None:
        raise UsageError(f"policy {settings.policy!r} is not available in this build")
    return encoder(q, encoder_options(settings, options))


def correct_biases(
    model: onnx_io.SourceModel,
    plan: list[PlannedTensor],
    quantized: list[QuantTensor],
    encoded: list[Encoded],
    stats: dict[str, calibrate.InputStats],
) -> None:
    """Stage bias correction: remove the mean output shift the weight changes cause.

    The shift is measured against the original float weights, so it covers pruning,
    quantization and the errors a lossy policy leaves. The corrected biases travel in the graph.
    """
    onnx_io.replace_initializers(model, corrected_biases(model, plan, quantized, encoded, stats))


def corrected_biases(
    model: onnx_io.SourceModel,
    plan: list[PlannedTensor],
    quantized: list[QuantTensor],
    encoded: list[Encoded],
    stats: dict[str, calibrate.InputStats],
) -> dict[str, np.ndarray]:
    """The corrected bias of every layer that has one (marks `bias_corrected` in the stats)."""
    new: dict[str, np.ndarray] = {}
    for p, q, e in zip(plan, quantized, encoded, strict=True):
        st = stats.get(q.name)
        if st is None or st.layer.bias is None or p.weight.dtype == "int8":
            continue
        delta = dequantize(e.decoded, q.scales, q.axis).astype(np.float64) - p.weight.array
        shift = calibrate.bias_shift(st, delta)
        if shift is None:
            continue
        bias = onnx_io.initializer(model, st.layer.bias).astype(np.float64)
        if bias.shape != shift.shape:
            continue
        new[st.layer.bias] = bias - shift
        e.stats["bias_corrected"] = True
    return new


CODEC_NAMES = {c.value: c.name.lower() for c in CodecId}


def stored_scales(q: QuantTensor, options: CompressOptions) -> tuple[str, bytes]:
    """The record's `scale_dtype` and `scales` stream: bfloat16 when asked for and exact
    (docs/format.md §3.4), float32 otherwise."""
    exact = options.scale_dtype == "bfloat16" and is_bfloat16(q.scales)
    dtype = "bfloat16" if exact else "float32"
    return dtype, encode_scales(q.scales, dtype)


def assemble(
    model: onnx_io.SourceModel,
    plan: list[PlannedTensor],
    quantized: list[QuantTensor],
    encoded: list[Encoded],
    options: CompressOptions,
    fmap: dict | None = None,
    extra_meta: dict | None = None,
) -> Container:
    """Stage: records, payload and stripped graph into one container."""
    scales = [stored_scales(q, options) for q in quantized]
    streams = [
        [(SCALES, data), *e.streams.items()] for (_, data), e in zip(scales, encoded, strict=True)
    ]
    payload, refs = layout_payload(streams)
    records = []
    for p, q, e, r, (dtype, _) in zip(plan, quantized, encoded, refs, scales, strict=True):
        records.append(
            TensorRecord(
                name=q.name,
                shape=q.shape,
                dtype=p.weight.dtype,
                bits=q.bits,
                axis=q.axis,
                codec=int(e.codec),
                codec_name=CODEC_NAMES.get(int(e.codec), str(e.codec)),
                policy=p.settings.policy,
                params=e.params,
                streams=r,
                n_weights=int(q.values.size),
                n_nonzero=int(np.count_nonzero(e.decoded)),
                digest=levels_digest(e.decoded),
                stats=e.stats,
                scale_dtype=dtype,
            )
        )
    graph = onnx_io.strip_weights(model, {q.name: i for i, q in enumerate(quantized)})
    meta = {
        "format": "xorc",
        "tool": "xorc",
        "tool_version": __version__,
        "source_sha256": model.sha256,
        "source_bytes": len(onnx_io.serialize(model)),
        "options": {**options.to_json(), "config_sha256": options.digest()},
        **(extra_meta or {}),
    }
    return Container(meta, tuple(records), graph, payload, fmap)
