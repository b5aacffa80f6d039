"""Area estimate of the decompressor against the 16 x 16 int8 MAC array (docs/datapath.md §6).

Counts are in gate equivalents (GE, one 2-input NAND), with the cell sizes of `gates.py`. Each
codec counts the units it adds (its `CodecSpec.area` hook, `pipelines/<name>.py`): the XOR
networks exactly from the blob's M (an XOR tree over t inputs is t - 1 XOR2 gates), EBPC from the
published synthesis results (Cavigelli et al., JETCAS 2019, Table II, UMC 65 nm;
shared/notes/ebpc.md §4), everything else as an estimate from the unit's structure. The MAC
array is 256 x the same paper's 8-bit MAC (842 um^2 at 1.44 um^2 per GE = 585 GE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xorc.codecs.registry import CODECS
from xorc.datapath.config import DatapathConfig
from xorc.datapath.gates import GE_AND2, GE_DFF, GE_FULL_ADDER, GE_MUX2, GE_XOR2, Units
from xorc.format import Container
from xorc.tensor import JSON

UM2_PER_GE = 1.44
"""UMC 65 nm, the EBPC paper's conversion."""
MAC8_UM2 = 842.0
"""One 8-bit MAC (EBPC paper, same process)."""
MAC8_GE = MAC8_UM2 / UM2_PER_GE

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


def codec_units(container: Container, config: DatapathConfig) -> Units:
    """The units every registered codec adds for its records in this blob, in codec id order."""
    units: Units = {}
    for spec in CODECS.values():
        if spec.area is not None:
            records = [r for r in container.tensors if r.codec == spec.id]
            units.update(spec.area(records, container, config))
    return units


def area_estimate(container: Container, config: DatapathConfig) -> AreaEstimate:
    """Gate counts of the units this blob needs, against the DIM x DIM int8 MAC array."""
    units = codec_units(container, config)
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
