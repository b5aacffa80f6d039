"""The simulator's text report: the per-layer table, the totals and the feature-map traffic
(docs/datapath.md §5), for people; `SimResult.to_json` is the machine form."""

from __future__ import annotations

from xorc.datapath.sim import SimResult, TensorReport
from xorc.tensor import JSON

_COLUMNS = (
    ("tensor", 32),
    ("codec", -10),
    ("weights", 9),
    ("DRAM B", 9),
    ("int8 B", 9),
    ("ratio", 6),
    ("cycles", 9),
    ("stalls", 8),
    ("fifo", 4),
    ("compute", 9),
    ("bound", -12),
    ("exact", -5),
)
"""Table columns: header and width (negative: left-aligned; the first column is too)."""


def _row(cells: list[object]) -> str:
    out = []
    for k, ((_, width), cell) in enumerate(zip(_COLUMNS, cells, strict=True)):
        text = str(cell)
        out.append(text.ljust(abs(width)) if width < 0 or k == 0 else text.rjust(width))
    return " ".join(out).rstrip()


def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "?"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _tensor_row(t: TensorReport) -> list[object]:
    c = t.counters
    ratio = c.uncompressed_bytes / c.dram_bytes if c.dram_bytes else None
    verdict = {None: c.bound, True: f"load:{c.bound}", False: "compute"}
    bound = verdict[t.load_bound]
    name = t.name if len(t.name) <= 32 else "…" + t.name[-31:]
    return [
        name, t.codec_name, c.n_weights, c.dram_bytes, c.uncompressed_bytes, _fmt(ratio),
        c.cycles, c.stall_cycles, c.patch_fifo_peak, _fmt(t.compute_cycles), bound,
        "yes" if t.digest_match else "NO",
    ]  # fmt: skip


def _fmap_lines(result: SimResult, tot: dict[str, JSON]) -> list[str]:
    head = f"{'raw B':>11} {'EBPC B':>11} {'ratio':>6} {'DRAM raw':>11} {'DRAM EBPC':>11}"
    lines = [f"{'feature map':<32} {head}"]
    for f in result.fmap or ():
        r = f.raw_bytes / f.compressed_bytes if f.compressed_bytes else None
        lines.append(
            f"{f.name[-32:]:<32} {f.raw_bytes:>11.0f} {f.compressed_bytes:>11.0f} {_fmt(r):>6} "
            f"{f.raw_dram_bytes:>11} {f.compressed_dram_bytes:>11}"
        )
    lines.append(
        f"feature-map traffic (write + read): {tot['fmap_compressed_dram_bytes']} B with EBPC "
        f"vs {tot['fmap_raw_dram_bytes']} B raw"
    )
    return lines


def render_text(result: SimResult) -> str:
    """The per-layer table and the totals, for people."""
    cfg = result.config
    lines = [
        f"datapath {cfg.name}: {cfg.dim}x{cfg.dim} int8 array, {cfg.dma_bus_bits}-bit DMA bus, "
        f"{cfg.xor_arrays} XOR array(s), patch unit P={cfg.patch_per_cycle} "
        f"D={cfg.patch_fifo_depth}",
        _row([h for h, _ in _COLUMNS]),
    ]
    lines += [_row(_tensor_row(t)) for t in result.tensors]
    tot = result.totals()
    lines.append(
        _row([
            "total", "", tot["n_weights"], tot["dram_bytes"], tot["uncompressed_bytes"],
            _fmt(tot["traffic_ratio"]), tot["weight_load_cycles"], tot["stall_cycles"],
            tot["patch_fifo_peak"], _fmt(tot["compute_cycles"]), "",
            "yes" if tot["bit_exact"] else "NO",
        ])
    )  # fmt: skip
    lines.append(
        f"weight loading: {tot['weight_load_cycles']} cycles compressed, "
        f"{tot['uncompressed_load_cycles']} as int8"
    )
    if tot["compute_cycles"] is not None:
        lines.append(
            f"layers with MACs: {tot['layers_with_macs']}, load-bound: "
            f"{tot['load_bound_layers']}; sum of max(load, compute): {tot['layer_cycles']} "
            f"cycles, {tot['uncompressed_layer_cycles']} as int8"
        )
    if result.fmap is not None:
        lines += _fmap_lines(result, tot)
    return "\n".join(lines)
