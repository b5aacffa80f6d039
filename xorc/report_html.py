"""`xorc analyze --html`: one self-contained page (inline SVG plots, no script, no network).

Plots are drawn with matplotlib (the optional extra `report`; docs/sensitivity.md says why)
and embedded as inline SVG: error against bits/weight per layer, the chosen setting per layer,
and the bits each layer spends at that choice. The ranked table follows.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from xorc.analysis_report import Choice, columns, to_json
from xorc.errors import UsageError
from xorc.format import atomic_write
from xorc.sensitivity import Analysis, LayerSensitivity

GRID_COLUMNS = 6


def check_available() -> None:
    """UsageError unless matplotlib (the `report` extra) is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--html needs the optional extra 'report' (pip install 'xorc[report]')"
        ) from None


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _worst(point: Any) -> float:
    values = [v for v in point.sqnr_db.values() if v is not None]
    return min(values) if values else float("nan")


def _layer_axes(ax: Any, ly: LayerSensitivity, choice: Choice) -> None:
    by_sparsity: dict[float, list] = {}
    for p in ly.points:
        if p.setting.bits is not None:
            by_sparsity.setdefault(p.setting.sparsity, []).append(p)
    for s, pts in sorted(by_sparsity.items()):
        pts.sort(key=lambda p: p.bits_per_weight)
        ax.plot(
            [p.bits_per_weight for p in pts], [_worst(p) for p in pts], marker="o", ms=2.5,
            lw=1, label=f"s={s:g}",
        )  # fmt: skip
    pick = choice.layers.get(ly.name)
    if pick is not None and pick.setting.bits is not None:
        ax.plot([pick.bits_per_weight], [_worst(pick)], "k*", ms=9, label="chosen")
    ax.set_title(ly.name if len(ly.name) < 34 else "…" + ly.name[-32:], fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)


def error_plot(analysis: Analysis, choice: Choice) -> str:
    """Small multiples, most sensitive first: worst-output SQNR (dB) against bits/weight."""
    from matplotlib.figure import Figure

    layers = analysis.ranked()
    ncols = max(1, min(GRID_COLUMNS, len(layers)))
    rows = max(1, -(-len(layers) // ncols))
    fig = Figure(figsize=(2.6 * ncols + 0.8, 2.1 * rows + 0.6))
    axes = fig.subplots(rows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(layers):
            _layer_axes(ax, layers[k], choice)
        else:
            ax.set_axis_off()
    axes.flat[0].legend(fontsize=6)
    fig.supxlabel("bits/weight (streams and scales)")
    fig.supylabel("SQNR, worst output (dB)")
    fig.tight_layout()
    return _svg(fig)


def choice_plots(analysis: Analysis, choice: Choice) -> tuple[str, str]:
    """Bar charts in graph order: the chosen bits (hatched: sparse) and the kbits spent."""
    from matplotlib.figure import Figure

    names = [ly.name for ly in analysis.layers if ly.name in choice.layers]
    picks = [choice.layers[n] for n in names]
    x = list(range(len(names)))
    width = max(8.0, 0.22 * len(names))
    fig = Figure(figsize=(width, 3.2))
    ax = fig.subplots()
    bars = ax.bar(x, [p.setting.bits or 0 for p in picks], color="tab:blue")
    for bar, p in zip(bars, picks, strict=True):
        if p.setting.sparsity > 0:
            bar.set_hatch("//")
            bar.set_color("tab:orange")
        ax.text(bar.get_x() + 0.4, bar.get_height() + 0.1, f"{p.setting.sparsity:g}", fontsize=5,
                ha="center")  # fmt: skip
    ax.set_ylabel("bits (label: sparsity)")
    ax.set_xticks(x, [str(i) for i in x], fontsize=6)
    ax.set_xlabel("layer (graph order, see the table)")
    chosen = _svg(fig)
    fig = Figure(figsize=(width, 3.2))
    ax = fig.subplots()
    ax.bar(x, [8 * p.payload_bytes / 1000 for p in picks], color="tab:green")
    ax.set_ylabel("kbit in the blob")
    ax.set_xticks(x, [str(i) for i in x], fontsize=6)
    ax.set_xlabel("layer (graph order, see the table)")
    return chosen, _svg(fig)


def _table(analysis: Analysis, choice: Choice) -> str:
    cols = columns(analysis)
    order = {ly.name: i for i, ly in enumerate(analysis.layers)}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["rank", "#", "layer", "op", "weights", *(c.label for c in cols), "chosen",
                    "bits/w"])  # fmt: skip
    rows = []
    for rank, ly in enumerate(analysis.ranked(), 1):
        cells = [str(rank), str(order[ly.name]), ly.name, ly.op_type, str(ly.n_weights)]
        for c in cols:
            p = ly.at(c)
            cells.append("-" if p is None else f"{_worst(p):.1f}")
        pick = choice.layers.get(ly.name)
        cells += [pick.setting.label, f"{pick.bits_per_weight:.2f}"] if pick else ["-", "-"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:110em}"
    "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
    "td:nth-child(n+5){text-align:right}figure{margin:1em 0}svg{max-width:100%;height:auto}"
)


def render_html(analysis: Analysis, choice: Choice) -> str:
    """The page as text."""
    summary = to_json(analysis, choice)["chosen"]
    errors = error_plot(analysis, choice)
    chosen, spent = choice_plots(analysis, choice)
    title = f"xorc analyze: {html.escape(Path(analysis.model).name)}"
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>Policy {html.escape(analysis.policy)}; {analysis.samples} calibration inputs per "
        f"trial; outputs {html.escape(', '.join(analysis.outputs))}; {analysis.seconds:.1f} s. "
        f"Chosen within {choice.max_bits_per_weight:g} bits/weight: "
        f"{summary['bits_per_weight']} bits/weight, predicted NSR {summary['predicted_nsr']}.</p>"
        f"<h2>Error against bits/weight, per layer</h2><figure id='errors'>{errors}</figure>"
        f"<h2>Chosen setting per layer</h2><figure id='chosen'>{chosen}</figure>"
        f"<h2>Bits spent per layer</h2><figure id='spent'>{spent}</figure>"
        f"<h2>Ranked layers (SQNR dB of the worst output)</h2>{_table(analysis, choice)}"
        "</body></html>\n"
    )


def write_html(analysis: Analysis, choice: Choice, out: str | Path) -> None:
    """Write the page atomically."""
    atomic_write(out, render_html(analysis, choice).encode("utf-8"))
