"""The per-tensor summary that `compress` and `inspect` print, as JSON and as a text table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xorc.format import v1
from xorc.format.container import SCALES, TensorRecord

SCHEMA_VERSION = 1
ORIGINAL_BYTES_PER_WEIGHT = 4  # totals compare against fp32


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
                    "sparsity": _ratio(t.n_weights - t.n_nonzero, t.n_weights),
                    "n_weights": t.n_weights,
                    "payload_bytes": payload,
                    "scale_bytes": next(s.length for s in t.streams if s.name == SCALES),
                    "scale_dtype": t.scale_dtype,
                    "bits_per_weight": _ratio(8 * payload, t.n_weights),
                    "details": t.stats,
                }
            )
        return rows

    def totals(self) -> dict[str, Any]:
        n = sum(t.n_weights for t in self.tensors)
        payload = sum(s.length for t in self.tensors for s in t.streams)
        original = ORIGINAL_BYTES_PER_WEIGHT * n
        return {
            "n_tensors": len(self.tensors),
            "n_weights": n,
            "original_bytes": original,
            "blob_bytes": self.blob_bytes,
            "weight_payload_bytes": payload,
            "bits_per_weight": _ratio(8 * payload, n),
            "compression_ratio": _ratio(original, payload),
            "source_model_bytes": _count(self.meta.get("source_bytes")),
            "blob_ratio": _ratio(_count(self.meta.get("source_bytes")) or 0, self.blob_bytes),
        }

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
            "totals": self.totals(),
        }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


MAX_COUNT = 2**63
"""Largest informational count shown; beyond it (a hostile 400-digit integer) it is left out."""


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
            f"{r['bits_per_weight']:.3f}",
            _notes(r["details"]),
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
    t = summary.totals()
    lines.append("")
    lines.append(
        f"totals: {t['n_tensors']} tensors, {t['n_weights']:,} weights; "
        f"fp32 {_fmt_bytes(t['original_bytes'])} -> weight payload "
        f"{_fmt_bytes(t['weight_payload_bytes'])} ({t['bits_per_weight']:.3f} bits/weight, "
        f"{t['compression_ratio']:.2f}x); blob {_fmt_bytes(t['blob_bytes'])}"
        + (
            f"; source model {_fmt_bytes(t['source_model_bytes'])} "
            f"({t['blob_ratio']:.2f}x the blob)"
            if t["blob_ratio"]
            else ""
        )
    )
    lines.extend(f"DAMAGED: {problem}" for problem in summary.damaged)
    return "\n".join(lines)


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
    if details.get("bias_corrected"):
        parts.append("bias-corrected")
    return " ".join(parts)
