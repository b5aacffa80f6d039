"""The `CodecSpec` of codec `dictionary` (registered in `xorc.codecs.registry`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xorc.codecs import CodecId, CodecSpec, Hook
from xorc.codecs.dictionary import schema
from xorc.codecs.dictionary.options import DictionaryOptions


def notes(details: Mapping[str, Any]) -> list[str]:
    """The `inspect` notes of a `dictionary` tensor's stats: K, codebook size, index coding."""
    if "k" not in details:
        return []
    return [
        f"K={details['k']} idx={details.get('index_bits')}b",
        f"codebook={details.get('codebook_bytes')}B",
        "huffman" if details.get("entropy_coded") else "fixed-width",
    ]


SPEC = CodecSpec(
    id=CodecId.DICTIONARY,
    name="dictionary",
    doc="docs/codecs/dictionary.md",
    options=DictionaryOptions,
    parse=schema.parse,
    decode=Hook("xorc.codecs.dictionary.decode", "decode"),
    datapath=Hook("xorc.datapath.pipelines.dictionary", "run"),
    area=Hook("xorc.datapath.pipelines.dictionary", "area"),
    notes=notes,
    max_weights_per_bit=16,
)
