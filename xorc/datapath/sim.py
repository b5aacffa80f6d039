"""Wiring and counters: run a tensor (or a whole blob) through the decompressor model
(docs/datapath.md §4-§5).

`simulate_tensor` fetches the streams through the DRAM reader, runs the codec's pipeline of
units (its `CodecSpec.datapath` hook in `xorc.codecs.registry`, `pipelines/<name>.py`) and
combines the units' cycle counts (kept apart from the values) into the tensor's counters.
`simulate` does that for every record of a container, adds the scales, the per-layer comparison
against the compute time, the totals and the feature-map traffic (`fmap_traffic.py`). The text
report is `render.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from xorc.codecs.bounds import check_expansion
from xorc.codecs.common import n_elements
from xorc.codecs.registry import CODECS
from xorc.datapath.access import access
from xorc.datapath.config import DatapathConfig
from xorc.datapath.dram import DramReader
from xorc.datapath.fmap_traffic import FmapLayer, fmap_layers, ratio
from xorc.datapath.timing import Timing, write_rows
from xorc.errors import BadRecord, CorruptStream
from xorc.format import Container
from xorc.format.container import levels_digest
from xorc.tensor import JSON
from xorc.tiles import PRESENCE, coded_shape, unpack


@dataclass(frozen=True)
class TensorCounters:
    """What decoding one tensor costs (docs/datapath.md §5).

    Attributes:
        n_weights: weights decoded (one int8 each in the scratchpad).
        stream_bytes: exact bytes of the streams fetched (including the scales when given).
        dram_bytes: bytes moved on the bus: whole beats.
        dram_beats: bus words.
        dram_requests: DMA requests of `dma_max_bytes`.
        uncompressed_bytes: the same weights as int8, one byte each.
        uncompressed_cycles: cycles to load them uncompressed (bus-bound, one row write per cycle).
        cycles: cycles from the first request to the last row written.
        write_cycles: cycles the scratchpad writes alone take (one row of DIM weights each).
        stall_cycles: cycles in which no row was written (cycles - write_cycles).
        bound: the unit (or `bus`, `write`) that sets the cycle count.
        unit_cycles: cycles each unit needs for the whole tensor on its own.
        setup_cycles: serial set-up before streaming (codebook load, Huffman table).
        patch_flips: bit flips the patch unit applied.
        patch_stall_cycles: cycles the XOR array waited for the patch unit.
        patch_fifo_peak: high-water mark of the patch FIFO (entries).
        patch_max_slice_flips: most flips in one slice (all planes).
    """

    n_weights: int
    stream_bytes: int
    dram_bytes: int
    dram_beats: int
    dram_requests: int
    uncompressed_bytes: int
    uncompressed_cycles: int
    cycles: int
    write_cycles: int
    stall_cycles: int
    bound: str
    unit_cycles: dict[str, int] = field(default_factory=dict)
    setup_cycles: int = 0
    patch_flips: int = 0
    patch_stall_cycles: int = 0
    patch_fifo_peak: int = 0
    patch_max_slice_flips: int = 0
    details: dict[str, JSON] = field(default_factory=dict)

    def to_json(self) -> dict[str, JSON]:
        return {
            "n_weights": self.n_weights,
            "stream_bytes": self.stream_bytes,
            "dram_bytes": self.dram_bytes,
            "dram_beats": self.dram_beats,
            "dram_requests": self.dram_requests,
            "uncompressed_bytes": self.uncompressed_bytes,
            "uncompressed_cycles": self.uncompressed_cycles,
            "traffic_ratio": ratio(self.uncompressed_bytes, self.dram_bytes),
            "cycles": self.cycles,
            "write_cycles": self.write_cycles,
            "stall_cycles": self.stall_cycles,
            "bound": self.bound,
            "unit_cycles": dict(sorted(self.unit_cycles.items())),
            "setup_cycles": self.setup_cycles,
            "patch_flips": self.patch_flips,
            "patch_stall_cycles": self.patch_stall_cycles,
            "patch_fifo_peak": self.patch_fifo_peak,
            "patch_max_slice_flips": self.patch_max_slice_flips,
            "details": self.details,
        }


def uncompressed_cycles(n: int, config: DatapathConfig) -> int:
    """Loading n int8 weights without compression: bus beats vs one row write per cycle."""
    beats = -(-n * config.input_bits // config.dma_bus_bits)
    bus = int(np.ceil(beats * config.bus_bytes / config.dram_bytes_per_cycle)) if beats else 0
    return config.dram_latency * (n > 0) + max(bus, write_rows(n, config))


def simulate_tensor(
    record_shape: tuple[int, ...],
    bits: int,
    codec: int,
    params: Mapping[str, JSON],
    streams: Mapping[str, bytes],
    config: DatapathConfig,
    *,
    scale_bytes: int = 0,
) -> tuple[NDArray[np.int16], TensorCounters]:
    """Decode one tensor on the datapath model: its levels (record shape, int16) and counters.

    `streams` are the codec's streams (all but `scales`); `scale_bytes` is the length of the
    record's `scales` stream, which the DMA also reads.

    Raises:
        BadRecord: unknown codec id or a bad param.
        CorruptStream: a stream that does not decode.
    """
    shape = tuple(record_shape)
    n = n_elements(shape)
    dram = DramReader(config)
    if scale_bytes:
        dram.account("scales", scale_bytes)
    spec = CODECS.get(codec)
    if spec is None:
        raise BadRecord(f"unknown codec id {codec!r}")
    if spec.datapath is None:
        raise BadRecord(f"codec {spec.name!r} has no datapath model (host-only)")
    check_expansion(n, streams, spec.max_weights_per_bit, spec.name)
    levels, timing = spec.datapath(shape, bits, params, streams, dram, config)
    if levels.shape != shape:
        raise CorruptStream(f"decoded shape {levels.shape} is not the record's {shape}")
    return levels, _counters(n, dram, timing, config)


def _counters(n: int, dram: DramReader, timing: Timing, config: DatapathConfig) -> TensorCounters:
    bounds = {"bus": dram.bus_cycles(), **timing.bounds}
    bound = max(bounds, key=lambda k: (bounds[k], k == "write"))
    streaming = bounds[bound]
    latency = config.dram_latency if dram.beats else 0
    cycles = latency + timing.setup + streaming
    write = bounds.get("write", write_rows(n, config))
    p = timing.patch
    return TensorCounters(
        n_weights=n,
        stream_bytes=dram.stream_bytes,
        dram_bytes=dram.bus_bytes,
        dram_beats=dram.beats,
        dram_requests=dram.requests,
        uncompressed_bytes=n * config.input_bits // 8,
        uncompressed_cycles=uncompressed_cycles(n, config),
        cycles=cycles,
        write_cycles=write,
        stall_cycles=cycles - write,
        bound=bound,
        unit_cycles=bounds,
        setup_cycles=timing.setup,
        patch_flips=p.flips if p else 0,
        patch_stall_cycles=p.stall_cycles if p else 0,
        patch_fifo_peak=p.fifo_peak if p else 0,
        patch_max_slice_flips=p.max_slice_flips if p else 0,
        details=dict(timing.extra),
    )


# --- whole blobs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorReport:
    """One record's simulation: identity, counters, the layer comparison, the digest check."""

    name: str
    codec: int
    codec_name: str
    policy: str
    shape: tuple[int, ...]
    bits: int
    counters: TensorCounters
    digest_match: bool
    macs: int | None
    compute_cycles: int | None
    access: dict[str, JSON] | None = None

    @property
    def load_bound(self) -> bool | None:
        """True when loading the weights takes longer than computing with them."""
        if self.compute_cycles is None:
            return None
        return self.counters.cycles > self.compute_cycles

    def to_json(self) -> dict[str, JSON]:
        c = self.counters
        layer: dict[str, JSON] = {
            "macs": self.macs,
            "compute_cycles": self.compute_cycles,
            "weight_load_cycles": c.cycles,
            "uncompressed_load_cycles": c.uncompressed_cycles,
            "load_bound": self.load_bound,
            "layer_cycles": None
            if self.compute_cycles is None
            else max(c.cycles, self.compute_cycles),
            "uncompressed_layer_cycles": None
            if self.compute_cycles is None
            else max(c.uncompressed_cycles, self.compute_cycles),
        }
        return {
            "name": self.name,
            "codec": self.codec,
            "codec_name": self.codec_name,
            "policy": self.policy,
            "shape": list(self.shape),
            "bits": self.bits,
            "digest_match": self.digest_match,
            "counters": c.to_json(),
            "layer": layer,
            "access": self.access,
        }


@dataclass(frozen=True)
class SimResult:
    """Everything `simulate` measured. `levels` is filled only when asked for."""

    config: DatapathConfig
    tensors: tuple[TensorReport, ...]
    fmap: tuple[FmapLayer, ...] | None
    levels: dict[str, NDArray[np.int16]] = field(default_factory=dict)

    @property
    def bit_exact(self) -> bool:
        """Every tensor decoded to the levels its record's digest names."""
        return all(t.digest_match for t in self.tensors)

    def totals(self) -> dict[str, JSON]:
        ts = [t.counters for t in self.tensors]
        known = [t for t in self.tensors if t.compute_cycles is not None]
        out: dict[str, JSON] = {
            "tensors": len(ts),
            "n_weights": sum(c.n_weights for c in ts),
            "stream_bytes": sum(c.stream_bytes for c in ts),
            "dram_bytes": sum(c.dram_bytes for c in ts),
            "uncompressed_bytes": sum(c.uncompressed_bytes for c in ts),
            "traffic_ratio": ratio(
                sum(c.uncompressed_bytes for c in ts), sum(c.dram_bytes for c in ts)
            ),
            "weight_load_cycles": sum(c.cycles for c in ts),
            "uncompressed_load_cycles": sum(c.uncompressed_cycles for c in ts),
            "stall_cycles": sum(c.stall_cycles for c in ts),
            "patch_flips": sum(c.patch_flips for c in ts),
            "patch_stall_cycles": sum(c.patch_stall_cycles for c in ts),
            "patch_fifo_peak": max((c.patch_fifo_peak for c in ts), default=0),
            "bit_exact": self.bit_exact,
            "layers_with_macs": len(known),
            "compute_cycles": sum(t.compute_cycles or 0 for t in known) if known else None,
            "load_bound_layers": sum(1 for t in known if t.load_bound) if known else None,
            "layer_cycles": sum(max(t.counters.cycles, t.compute_cycles or 0) for t in known)
            if known
            else None,
            "uncompressed_layer_cycles": sum(
                max(t.counters.uncompressed_cycles, t.compute_cycles or 0) for t in known
            )
            if known
            else None,
        }
        if self.fmap is not None:
            out["fmap_raw_dram_bytes"] = sum(f.raw_dram_bytes for f in self.fmap)
            out["fmap_compressed_dram_bytes"] = sum(f.compressed_dram_bytes for f in self.fmap)
        return out

    def to_json(self) -> dict[str, JSON]:
        """Plain dicts and lists with stable keys (levels are not included)."""
        return {
            "config": self.config.to_json(),
            "tensors": [t.to_json() for t in self.tensors],
            "totals": self.totals(),
            "fmap": None if self.fmap is None else [f.to_json() for f in self.fmap],
        }


def simulate(
    container: Container,
    config: DatapathConfig,
    layer_macs: Mapping[str, int] | None = None,
    *,
    keep_levels: bool = False,
) -> SimResult:
    """Decode every tensor of a blob on the datapath model.

    `layer_macs` maps tensor names to the MACs of the layer that uses them (the CLI computes them
    from the ONNX graph); layers without an entry report their compute time as unknown.

    Raises:
        BadRecord, CorruptStream: as the reference decoders, with the tensor named.
    """
    macs = dict(layer_macs or {})
    reports = []
    levels_out: dict[str, NDArray[np.int16]] = {}
    for rec in container.tensors:
        try:
            presence = container.stream(rec, PRESENCE) if rec.structure is not None else b""
            shape, mask = coded_shape(rec.shape, rec.axis, rec.structure, presence)  # §3.6
            levels, counters = simulate_tensor(
                shape, rec.bits, rec.codec, rec.params, container.codec_streams(rec), config,
                scale_bytes=len(container.stream(rec, "scales")),
            )  # fmt: skip
            if mask is not None and rec.axis is not None:
                levels = unpack(levels, mask, rec.axis)
        except (BadRecord, CorruptStream) as exc:
            raise type(exc)(f"tensor {rec.name!r}: {exc}") from None
        m = macs.get(rec.name)
        compute = None if m is None else -(-int(m) // config.macs_per_cycle)
        reports.append(
            TensorReport(
                name=rec.name,
                codec=int(rec.codec),
                codec_name=rec.codec_name,
                policy=rec.policy,
                shape=tuple(rec.shape),
                bits=rec.bits,
                counters=counters,
                digest_match=levels_digest(levels) == rec.digest,
                macs=None if m is None else int(m),
                compute_cycles=compute,
                access=access(
                    rec.stats.get("weight_kind"), tuple(rec.shape), counters.dram_bytes, config
                ),
            )
        )
        if keep_levels:
            levels_out[rec.name] = levels
    fmap = None if container.fmap is None else fmap_layers(container.fmap, config)
    return SimResult(config, tuple(reports), fmap, levels_out)
