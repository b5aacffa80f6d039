"""Area estimate of the decompressor against the 16 x 16 int8 MAC array (docs/datapath.md §6).

Counts are in gate equivalents (GE, one 2-input NAND). The XOR networks are counted exactly from
the blob's M (an XOR tree over t inputs is t - 1 XOR2 gates); everything else is an estimate from
the unit's structure with the per-cell sizes below, which are assumptions (typical of 65 nm
standard-cell libraries), not measurements. EBPC's figures are the published synthesis results
(Cavigelli et al., JETCAS 2019, Table II, UMC 65 nm; shared/notes/ebpc.md §4). The MAC array is
256 x the same paper's 8-bit MAC (842 um^2 at 1.44 um^2 per GE = 585 GE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xorc.codecs import CodecId
from xorc.codecs.dictionary import schema as dictionary_schema
from xorc.codecs.xor import schema as xor_schema
from xorc.codecs.xor.network import network
from xorc.datapath.config import DatapathConfig
from xorc.errors import BadRecord
from xorc.format import Container
from xorc.tensor import JSON

GE_XOR2 = 2.0
GE_AND2 = 1.33
GE_MUX2 = 2.33
GE_DFF = 5.0
GE_FULL_ADDER = 6.0

UM2_PER_GE = 1.44
"""UMC 65 nm, the EBPC paper's conversion."""
MAC8_UM2 = 842.0
"""One 8-bit MAC (EBPC paper, same process)."""
MAC8_GE = MAC8_UM2 / UM2_PER_GE

EBPC_PUBLISHED_GE = {
    8: {"decompressor": 3007, "compressor": 2833},
    16: {"decompressor": 5546, "compressor": 4778},
}
"""JETCAS 2019 Table II, block size 8 (decompressor total; footnote: without inverse zero-RLE)."""

DAC2023_AREA_OVERHEAD = 0.0039
"""Lee et al., DAC 2023: +0.39 % area for XOR decompression and error correction on Gemmini
(of the whole accelerator, SRAMs included)."""


@dataclass(frozen=True)
class AreaEstimate:
    """Gate counts per unit and the comparison with the MAC array."""

    units: dict[str, dict[str, JSON]]
    mac_array_ge: float
    mac_array_ge_structural: float
    notes: list[str] = field(default_factory=list)

    @property
    def total_ge(self) -> float:
        return float(sum(float(u["ge"]) for u in self.units.values()))

    def to_json(self) -> dict[str, JSON]:
        return {
            "units": self.units,
            "total_ge": round(self.total_ge, 1),
            "mac_array_ge": round(self.mac_array_ge, 1),
            "mac_array_ge_structural": round(self.mac_array_ge_structural, 1),
            "fraction_of_mac_array": round(self.total_ge / self.mac_array_ge, 5),
            "dac2023_reported_overhead_of_gemmini": DAC2023_AREA_OVERHEAD,
            "cell_ge": {
                "xor2": GE_XOR2,
                "and2": GE_AND2,
                "mux2": GE_MUX2,
                "dff": GE_DFF,
                "full_adder": GE_FULL_ADDER,
            },
            "notes": self.notes,
        }


def xor_network_gates(m_seed: int, n_out: int, n_in: int) -> int:
    """XOR2 gates of the network's output trees over seed columns 0 .. n_in - 1."""
    rows = network(m_seed, n_out)
    used = rows & np.uint64((1 << n_in) - 1 if n_in < 64 else 2**64 - 1)
    taps = np.bitwise_count(used).astype(np.int64)
    return int(np.maximum(taps - 1, 0).sum())


def _bits(x: int) -> int:
    return max(1, (max(x, 1) - 1).bit_length())


def _rice_decoder_ge(pointers: int) -> float:
    """64-bit window, leading-one detector, remainder shifter, position adder, read pointers."""
    window = 64 * GE_DFF + 64 * 6 * GE_MUX2 + 64 * 1.5
    adder = 32 * GE_FULL_ADDER
    return window + adder + pointers * 32 * GE_DFF


def _xor_units(container: Container, config: DatapathConfig) -> dict[str, dict[str, JSON]]:
    recs = []
    for r in container.tensors:
        if r.codec == CodecId.XOR:
            try:
                recs.append((r, xor_schema.parse(r.shape, r.bits, r.params)))
            except BadRecord as exc:
                raise BadRecord(f"tensor {r.name!r}: {exc}") from None
    if not recs:
        return {}
    n_out = max(p.n_out for _, p in recs)
    n_in = max(max(p.n_in) for _, p in recs)
    q = max(r.bits for r, _ in recs)
    seeds = sorted({p.m_seed for _, p in recs})
    n_max = max(int(np.prod(r.shape, dtype=np.int64)) for r, _ in recs)
    arrays = config.xor_arrays
    gates = sum(xor_network_gates(s, n_out, n_in) for s in seeds)
    gates_full = sum(xor_network_gates(s, n_out, config.xor_max_n_in) for s in seeds)
    units: dict[str, dict[str, JSON]] = {
        "xor_network": {
            "ge": arrays * gates * GE_XOR2,
            "xor2": arrays * gates,
            "n_out": n_out,
            "n_in": n_in,
            "networks": len(seeds) * arrays,
            "xor2_at_config_n_in": arrays * gates_full,
            "rule_of_thumb_xor2": arrays * len(seeds) * n_out * (n_in // 2 - 1),
            "formula": "sum over rows of (taps in the first n_in columns - 1), exact from M",
        },
        "xor_seed_and_gating": {
            "ge": arrays * n_in * (GE_DFF + GE_AND2),
            "formula": "n_in seed flip-flops + n_in AND2 tie-offs (rate prefixes) per array",
        },
        "transpose_buffer": {
            "ge": q * n_out * GE_DFF,
            "bits": q * n_out,
            "formula": "Q x n_out flip-flops (plane slices to weight rows)",
        },
    }
    pos_bits = _bits(n_max)
    depth, per = config.patch_fifo_depth, config.patch_per_cycle
    fifo = depth * (_bits(q) + pos_bits) * GE_DFF
    applier = (
        per * (n_out * GE_AND2 + (pos_bits - _bits(n_out)) * (GE_XOR2 + GE_AND2)) + n_out * GE_XOR2
    )
    units["patch_unit"] = {
        "ge": fifo + applier + _rice_decoder_ge(2 * q),
        "fifo_entries": depth,
        "entry_bits": _bits(q) + pos_bits,
        "formula": (
            "FIFO depth x (plane + position bits) flip-flops; per flip port a one-hot offset "
            "decoder (n_out AND2) and a slice comparator; n_out XOR2 flippers; Rice decoder with "
            "2 pointers per plane"
        ),
    }
    if any(p.mask_coding.startswith("rice") for _, p in recs):
        units["mask_rice_decoder"] = {"ge": _rice_decoder_ge(2), "formula": "one Rice decoder"}
    return units


def _dictionary_units(container: Container, config: DatapathConfig) -> dict[str, dict[str, JSON]]:
    recs = []
    for r in container.tensors:
        if r.codec == CodecId.DICTIONARY:
            try:
                recs.append((r, dictionary_schema.parse(r.shape, r.bits, r.params)))
            except BadRecord as exc:
                raise BadRecord(f"tensor {r.name!r}: {exc}") from None
    if not recs:
        return {}
    k = max(p.k for _, p in recs)
    q = max(r.bits for r, _ in recs)
    units: dict[str, dict[str, JSON]] = {
        "codebook_lut": {
            "ge": k * q * GE_DFF + config.dim * (k - 1) * q * GE_MUX2,
            "k": k,
            "formula": "K x Q flip-flops + DIM read ports of (K - 1) x Q MUX2",
        }
    }
    if any(p.huffman for _, p in recs):
        units["huffman_decoder"] = {
            "ge": 15 * 15 * 3.0 + 32 * GE_DFF + 32 * 5 * GE_MUX2 + 16 * (GE_DFF + GE_FULL_ADDER),
            "formula": (
                "per-length first-code comparators (15 x 15 bits), 32-bit window and "
                "shifter, count/offset registers"
            ),
        }
    return units


def _ebpc_units(container: Container) -> dict[str, dict[str, JSON]]:
    units: dict[str, dict[str, JSON]] = {}
    widths = set()
    for r in container.tensors:
        if r.codec == CodecId.EBPC:
            w = r.params.get("word_width", 8)
            widths.add(w if w in EBPC_PUBLISHED_GE else 8)
    for w in sorted(widths):
        units[f"ebpc_decompressor_w{w}"] = {
            "ge": EBPC_PUBLISHED_GE[w]["decompressor"],
            "formula": "published (JETCAS 2019 Table II, UMC 65 nm, block 8)",
        }
    if container.fmap is not None:
        units["ebpc_fmap_codec_w8"] = {
            "ge": EBPC_PUBLISHED_GE[8]["decompressor"] + EBPC_PUBLISHED_GE[8]["compressor"],
            "formula": "published compressor + decompressor for feature maps (W = 8)",
        }
    return units


def area_estimate(container: Container, config: DatapathConfig) -> AreaEstimate:
    """Gate counts of the units this blob needs, against the DIM x DIM int8 MAC array."""
    units = {
        **_xor_units(container, config),
        **_dictionary_units(container, config),
        **_ebpc_units(container),
    }
    macs = config.dim * config.dim
    # structural PE: 8x8 array multiplier (64 AND2 + 56 FA), 20-bit accumulate adder, registers
    # for the input, the weight and the partial sum (8 + 8 + 20 bits)
    pe = 64 * GE_AND2 + (56 + 20) * GE_FULL_ADDER + 36 * GE_DFF
    notes = [
        "XOR2 counts are exact for the blob's M; other units are structural estimates "
        "with the cell sizes given",
        "MAC array = DIM^2 x 585 GE (EBPC paper's 8-bit MAC, 842 um^2 / 1.44 um^2 per GE)",
        "DAC 2023's +0.39 % is relative to all of Gemmini (SRAMs included), not to the MAC array",
    ]
    return AreaEstimate(units, macs * MAC8_GE, macs * pe, notes)


def render_area(est: AreaEstimate) -> str:
    """A small table of the estimate."""
    lines = [f"{'unit':<28} {'GE':>10} {'% of MAC array':>15}"]
    for name, u in est.units.items():
        ge = float(u["ge"])
        lines.append(f"{name:<28} {ge:>10.0f} {100 * ge / est.mac_array_ge:>14.2f}%")
    lines.append(
        f"{'total':<28} {est.total_ge:>10.0f} {100 * est.total_ge / est.mac_array_ge:>14.2f}%"
    )
    lines.append(
        f"MAC array {est.mac_array_ge:.0f} GE (published MAC; structural estimate "
        f"{est.mac_array_ge_structural:.0f} GE); DAC 2023 reports "
        f"+{100 * DAC2023_AREA_OVERHEAD:.2f} % of all of Gemmini"
    )
    return "\n".join(lines)
