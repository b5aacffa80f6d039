"""The `CodecSpec` of codec `insitu` (registered in `xorc.codecs.registry`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xorc.codecs import CodecId, CodecSpec, Hook
from xorc.codecs.insitu import schema
from xorc.codecs.insitu.options import InsituOptions


def notes(details: Mapping[str, Any]) -> list[str]:
    """The `inspect` notes of an `insitu` tensor's stats: ranks, bit-widths, error, MACs."""
    if "bo" not in details:
        return []
    err = details.get("relative_error")
    return [
        f"Bi={details['bi']} Bo={details['bo']} q={details['qb']}/{details['qu']}/{details['qv']}",
        f"{details.get('error_metric')} err={err:.2g}" if isinstance(err, float) else "",
        f"{details.get('macs_per_weight', 0):.1f} MAC/w",
    ]


SPEC = CodecSpec(
    id=CodecId.INSITU,
    name="insitu",
    doc="docs/codecs/insitu.md",
    options=InsituOptions,
    parse=schema.parse,
    decode=Hook("xorc.codecs.insitu.decode", "decode"),
    datapath=Hook("xorc.datapath.pipelines.insitu", "run"),
    area=Hook("xorc.datapath.pipelines.insitu", "area"),
    notes=notes,
    max_weights_per_bit=64,
)
