"""What `xorc analyze` prints: the ranked sensitivity table, the per-layer choice at a size
target, and their JSON (README.md, "JSON"). The HTML page is xorc/report_html.py."""

from __future__ import annotations

from dataclasses import dataclass

from xorc import mixed
from xorc.sensitivity import Analysis, Point, Setting

SCHEMA_VERSION = 1


@dataclass
class Choice:
    """The per-layer settings the greedy path picks for a size target (no extra measurement:
    `predicted_nsr` is the sum of the layers' measured NSRs)."""

    max_bits_per_weight: float
    layers: dict[str, Point]
    n_weights: int

    @property
    def payload_bytes(self) -> int:
        return sum(p.payload_bytes for p in self.layers.values())

    def to_json(self) -> dict[str, object]:
        n = self.n_weights
        return {
            "max_bits_per_weight": self.max_bits_per_weight,
            "payload_bytes": self.payload_bytes,
            "bits_per_weight": round(8 * self.payload_bytes / n, 4) if n else 0.0,
            "predicted_nsr": float(f"{sum(p.nsr for p in self.layers.values()):.6g}"),
            "layers": {name: p.setting.to_json() for name, p in self.layers.items()},
        }


def choose(analysis: Analysis, max_bits_per_weight: float) -> Choice:
    """The greedy per-layer choice (xorc/mixed.py) within `max_bits_per_weight`."""
    n = sum(ly.n_weights for ly in analysis.layers)
    layers, _, _, _ = mixed.fit(analysis.layers, int(max_bits_per_weight * n / 8))
    return Choice(max_bits_per_weight, layers, n)


def to_json(analysis: Analysis, choice: Choice) -> dict[str, object]:
    return {
        "schema_version": SCHEMA_VERSION,
        "analysis": analysis.to_json(),
        "chosen": choice.to_json(),
    }


def _worst_sqnr(p: Point | None) -> str:
    if p is None:
        return "-"
    values = [v for v in p.sqnr_db.values() if v is not None]
    return "exact" if not values else f"{min(values):.1f}"


def columns(analysis: Analysis) -> list[Setting]:
    """The table's settings: every dense bits, then each sparsity at the largest bits."""
    bits = sorted(analysis.grid["bits"], reverse=True)
    dense = [Setting(int(b)) for b in bits]
    sparse = [Setting(int(bits[0]), float(s)) for s in analysis.grid["sparsity"] if s > 0]
    return dense + sparse


def render_text(analysis: Analysis, choice: Choice) -> str:
    """The ranked table: worst-output SQNR (dB) of each layer at each column's setting."""
    cols = columns(analysis)
    head = ["#", "layer", "op", "weights", *(c.label for c in cols), "chosen", "bits/w"]
    rows = [head]
    for i, ly in enumerate(analysis.ranked(), 1):
        pick = choice.layers.get(ly.name)
        rows.append(
            [
                str(i),
                ly.name,
                ly.op_type,
                str(ly.n_weights),
                *(_worst_sqnr(ly.at(c)) for c in cols),
                pick.setting.label if pick else "-",
                f"{pick.bits_per_weight:.2f}" if pick else "-",
            ]
        )
    widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if k in (1, 2) else c.rjust(w)
            for k, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    cj = choice.to_json()
    lines += [
        "",
        f"SQNR in dB of the worst output ({', '.join(analysis.outputs)}) with only that layer "
        f"compressed; ranked by NSR at {analysis.reference.label}; "
        f"{analysis.samples} calibration inputs, {analysis.seconds:.1f} s",
        f"chosen within {choice.max_bits_per_weight:g} bits/weight: {cj['bits_per_weight']} "
        f"bits/weight, predicted NSR {cj['predicted_nsr']}",
    ]
    lines += [f"skipped {name}: {why}" for name, why in analysis.skipped.items()]
    return "\n".join(lines)
