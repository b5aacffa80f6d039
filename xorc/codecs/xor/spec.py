"""The `CodecSpec` of codec `xor` (registered in `xorc.codecs.registry`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xorc.codecs import CodecId, CodecSpec, Hook
from xorc.codecs.xor import schema
from xorc.codecs.xor.options import XorOptions


def notes(details: Mapping[str, Any]) -> list[str]:
    """The `inspect` notes of an `xor` tensor's stats: network, patches, bit split."""
    if "n_in" not in details:
        return []
    split = details.get("bits_per_weight", {})
    parts = [
        f"n_out={details['n_out']} n_in={'/'.join(map(str, details['n_in']))}",
        f"patches={sum(details.get('patches', []))}",
        f"left={sum(details.get('errors_left', []))}",
    ]
    variant = details.get("variant", 1)
    if variant in (2, 3):
        eff = [f"{e:.2f}" if isinstance(e, int | float) else "-" for e in details["efficiency"]]
        parts.insert(0, f"variant={variant}")
        shape = (
            f"N_s={'/'.join(map(str, details['stages']))}"
            if variant == 2
            else f"rate={'/'.join(map(str, details['rate']))}"
        )
        parts.append(
            f"{shape} T={details['stream_len']} "
            f"modes={'/'.join(m[0] for m in details['plane_mode'])} eff={'/'.join(eff)}"
        )
    elif "n_in" in details:
        parts.insert(0, "variant=1")
    if split:
        parts.append(
            f"planes/patches/mask={split['planes']:.2f}/{split['patches']:.2f}/"
            f"{split['mask']:.2f} b/w"
        )
    return parts


SPEC = CodecSpec(
    id=CodecId.XOR,
    name="xor",
    doc="docs/codecs/xor.md",
    options=XorOptions,
    parse=schema.parse,
    decode=Hook("xorc.codecs.xor.decode", "decode"),
    datapath=Hook("xorc.datapath.pipelines.xor", "run"),
    area=Hook("xorc.datapath.pipelines.xor", "area"),
    notes=notes,
    max_weights_per_bit=16,
)
