"""The per-tensor summary that `compress` and `inspect` print, as JSON and as a text table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xorc.format import v1
from xorc.format.container import SCALES, TensorRecord

SCHEMA_VERSION = 1
FP32_BYTES = 4  # the second figure compares against fp32
SOURCE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1}
"""Bytes per weight of each record dtype in the source model (the first ratio's base)."""


@dataclass
class SectionStatus:
    name: str
    offset: int
    length: int
    crc_ok: bool


@dataclass
class Summary:
    """What `inspect` knows about a blob (JSON field names are fixed: README.md, "JSON")."""

    format_version: str
    blob_bytes: int
    meta: dict[str, Any]
    tensors: tuple[TensorRecord, ...]
    sections: list[SectionStatus] = field(default_factory=list)
    footer_ok: bool = True
    fidelity: dict[str, Any] | None = None  # compress's fidelity check (None from inspect)

    @property
    def damaged(self) -> list[str]:
        bad = [f"section {s.name}: CRC32 mismatch" for s in self.sections if not s.crc_ok]
        if not self.footer_ok:
            bad.append("footer: file SHA-256 mismatch")
        return bad

    def tensor_rows(self) -> list[dict[str, Any]]:
        rows = []
        for t in self.tensors:
            payload = sum(s.length for s in t.streams)
            rows.append(
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "codec": t.codec_name,
                    "policy": t.policy,
                    "bits": t.bits,
                    "sparsity": _ratio(t.n_weights - t.n_nonzero, t.n_weights) or 0.0,
                    "n_weights": t.n_weights,
                    "payload_bytes": payload,
                    "scale_bytes": next(s.length for s in t.streams if s.name == SCALES),
                    "scale_dtype": t.scale_dtype,
                    "group_size": t.group_size,
                    "bits_per_weight": _ratio(8 * payload, t.n_weights),
                    "details": t.stats,
                }
            )
        return rows

    def totals(self) -> dict[str, Any]:
        """Sizes and ratios; a ratio with nothing to divide by is None (JSON null)."""
        n = sum(t.n_weights for t in self.tensors)
        payload = sum(s.length for t in self.tensors for s in t.streams)
        original = sum(SOURCE_BYTES.get(t.dtype, FP32_BYTES) * t.n_weights for t in self.tensors)
        left = self.uncompressed()
        n_left = left.get("n_params", 0)
        return {
            "n_tensors": len(self.tensors),
            "n_weights": n,
            "original_bytes": original,
            "fp32_bytes": FP32_BYTES * n,
            "blob_bytes": self.blob_bytes,
            "weight_payload_bytes": payload,
            "bits_per_weight": _ratio(8 * payload, n),
            "compression_ratio": _ratio(original, payload),
            "compression_ratio_fp32": _ratio(FP32_BYTES * n, payload),
            "uncompressed_params": n_left,
            "share_compressed": _ratio(n, n + n_left) if "uncompressed" in self.meta else None,
            "source_model_bytes": _count(self.meta.get("source_bytes")),
            "blob_ratio": _ratio(_count(self.meta.get("source_bytes")) or 0, self.blob_bytes),
        }

    def uncompressed(self) -> dict[str, Any]:
        """META `uncompressed` (docs/format.md §3.1): what stayed as it is, by reason; {} for
        blobs written before it was recorded."""
        return _clean_uncompressed(self.meta.get("uncompressed"))

    def warnings(self) -> list[str]:
        """What `compress` should tell the user about this blob (stderr lines)."""
        out = []
        if not self.tensors:
            out.append("no weight to compress; the blob holds the graph only")
        requant = [t.name for t in self.tensors if _prequant(t).get("mode") == "requantized"]
        if requant:
            out.append(
                f"--requantize re-quantized {len(requant)} already quantized tensor(s) "
                f"(lossy), e.g. {requant[0]!r}"
            )
        out.extend(
            f"{g['n_tensors']} tensor(s) left as they are: {g['reason']}, e.g. {g['largest'][0]!r}"
            for g in self.uncompressed().get("groups", [])
            if "--requantize" in str(g.get("reason"))
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "format_version": self.format_version,
            "tool_version": self.meta.get("tool_version"),
            "source_sha256": self.meta.get("source_sha256"),
            "options": self.meta.get("options"),
            "search": self.meta.get("search"),
            "sections": [s.__dict__ for s in self.sections],
            "integrity_ok": not self.damaged,
            "damaged": self.damaged,
            "tensors": self.tensor_rows(),
            "uncompressed": self.uncompressed().get("groups"),
            "totals": self.totals(),
            "fidelity": self.fidelity,
        }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _prequant(t: TensorRecord) -> dict[str, Any]:
    note = t.stats.get("prequantized")
    return note if isinstance(note, dict) else {}


MAX_COUNT = 2**63
"""Largest informational count shown; beyond it (a hostile 400-digit integer) it is left out."""


def _clean_uncompressed(left: Any) -> dict[str, Any]:
    """META `uncompressed` as far as it is well formed (untrusted: any JSON value): {} unless
    it is an object with a valid `n_params`; groups with a field of the wrong type left out."""
    if not isinstance(left, dict) or _count(left.get("n_params")) is None:
        return {}
    raw = left.get("groups")
    groups = [
        g
        for g in (raw if isinstance(raw, list) else [])
        if isinstance(g, dict)
        and isinstance(g.get("reason"), str)
        and _count(g.get("n_tensors")) is not None
        and _count(g.get("n_params")) is not None
        and isinstance(g.get("largest"), list)
        and len(g["largest"]) > 0
        and all(isinstance(name, str) for name in g["largest"])
    ]
    return {"n_params": left["n_params"], "groups": groups}


def _count(value: Any) -> int | None:
    """An informational META or stats count (untrusted: any JSON value), or None unless it is
    a non-negative integer."""
    return value if type(value) is int and 0 <= value <= MAX_COUNT else None


NOTE_ERRORS = (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError)
"""What a codec's notes hook may raise on stats of the wrong shape (stats are untrusted)."""


def summarize(data: bytes) -> Summary:
    """The blob's header, sections (with CRC status), footer status and records: docs/format.md
    §5 steps 1 to 6 as `inspect` walks them (a damaged GRAPH, PAYLOAD or FMAP is reported, not
    raised: `xorc.format.v1.walk`)."""
    reading = v1.walk(data, inspect=True)
    layout = reading.layout
    sections = [
        SectionStatus(s.name, s.offset, s.length, ok)
        for s, ok in zip(layout.sections, reading.crc_ok, strict=True)
    ]
    return Summary(
        f"{layout.version[0]}.{layout.version[1]}",
        layout.file_size,
        reading.meta,
        reading.tensors,
        sections,
        reading.footer_ok,
    )


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_text(summary: Summary) -> str:
    """The human-readable table."""
    rows = summary.tensor_rows()
    header = (
        "tensor",
        "shape",
        "codec",
        "policy",
        "bits",
        "sparsity",
        "payload",
        "bits/w",
        "notes",
    )
    lines = []
    body = [
        (
            r["name"],
            "x".join(map(str, r["shape"])) or "scalar",
            r["codec"],
            r["policy"],
            str(r["bits"]),
            f"{100 * r['sparsity']:.1f}%",
            _fmt_bytes(r["payload_bytes"]),
            "n/a" if r["bits_per_weight"] is None else f"{r['bits_per_weight']:.3f}",
            _group_note(r["group_size"]) + _notes(r["details"]),
        )
        for r in rows
    ]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    meta = summary.meta
    lines.append(
        f"xorc blob v{summary.format_version}, written by xorc {meta.get('tool_version')}, "
        f"{_fmt_bytes(summary.blob_bytes)} ({summary.blob_bytes} bytes)"
    )
    lines.append("")
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body
    )
    lines.append("")
    lines.extend(_totals_lines(summary))
    lines.extend(f"DAMAGED: {problem}" for problem in summary.damaged)
    if summary.fidelity is not None:
        lines.append(_fidelity_line(summary.fidelity))
    return "\n".join(lines)


def _fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}x"


def _totals_lines(summary: Summary) -> list[str]:
    """The totals and the list of what stayed uncompressed, with its share of parameters."""
    t = summary.totals()
    bpw = "n/a" if t["bits_per_weight"] is None else f"{t['bits_per_weight']:.3f}"
    lines = [
        f"totals: {t['n_tensors']} tensors, {t['n_weights']:,} weights; source "
        f"{_fmt_bytes(t['original_bytes'])} -> weight payload "
        f"{_fmt_bytes(t['weight_payload_bytes'])} ({bpw} bits/weight, "
        f"{_fmt_ratio(t['compression_ratio'])} its own bytes, "
        f"{_fmt_ratio(t['compression_ratio_fp32'])} fp32); blob {_fmt_bytes(t['blob_bytes'])}"
        + (
            f"; source model {_fmt_bytes(t['source_model_bytes'])} "
            f"({t['blob_ratio']:.2f}x the blob)"
            if t["blob_ratio"]
            else ""
        )
    ]
    left = summary.uncompressed()
    if t["share_compressed"] is not None:
        total = t["n_weights"] + t["uncompressed_params"]
        lines.append(
            f"compressed {100 * t['share_compressed']:.1f}% of {total:,} parameters; "
            f"left as they are: {t['uncompressed_params']:,}"
        )
        for g in left.get("groups", []):
            share = 100 * g["n_params"] / total if total else 0.0
            names = ", ".join(g["largest"][:3]) + (", ..." if g["n_tensors"] > 3 else "")
            lines.append(
                f"  {share:5.1f}%  {g['n_params']:,} in {g['n_tensors']} tensor(s): "
                f"{g['reason']} ({names})"
            )
    return lines


def _fidelity_line(fid: dict[str, Any]) -> str:
    """compress's one summary line of the fidelity check."""
    inputs = fid["inputs"]
    if not inputs.get("measured"):
        return f"fidelity: not measured ({inputs.get('reason')})"
    parts = []
    for o in fid["outputs"]:
        if "cosine" not in o:
            parts.append(f"{o['name']} match {o['match']:.4f}")
            continue
        cos = "non-finite" if o["cosine"] is None else f"cosine {o['cosine']:.4f}"
        sqnr = "" if o["sqnr_db"] is None else f", SQNR {o['sqnr_db']:.1f} dB"
        if o["cosine"] is not None and o["sqnr_db"] is None:
            sqnr = ", identical"
        parts.append(f"{o['name']} {cos}{sqnr}")
    return f"fidelity on {inputs['n_samples']} {inputs['source']} inputs: " + "; ".join(parts)


def _group_note(group_size: int | None) -> str:
    """The text table's note of group scales (docs/format.md §3.4)."""
    return "" if group_size is None else f"scales per {group_size} "


def _notes(details: dict[str, Any]) -> str:
    """A short line of codec details for the text table (the JSON has them all): each
    registered codec's `notes` hook, in codec id order (xorc.codecs.registry)."""
    from xorc.codecs.registry import CODECS

    if details.get("fallback"):
        return f"fallback {details['fallback']}"
    parts: list[str] = []
    for spec in CODECS.values():
        if spec.notes is None:
            continue
        try:
            parts.extend(str(part) for part in spec.notes(details))
        except NOTE_ERRORS:
            parts.append(f"({spec.name} stats unreadable)")
    pre = details.get("prequantized")
    if isinstance(pre, dict):
        parts.append(f"{pre.get('source_dtype')} {pre.get('mode')}")
    if details.get("bias_corrected"):
        parts.append("bias-corrected")
    return " ".join(parts)
