"""The `CodecSpec` of codec `raw` (registered in `xorc.codecs.registry`)."""

from __future__ import annotations

from xorc.codecs import CodecId, CodecSpec, Hook
from xorc.codecs.raw import schema
from xorc.codecs.raw.options import RawOptions

SPEC = CodecSpec(
    id=CodecId.RAW,
    name="raw",
    doc="docs/format.md#41-codec-raw",
    options=RawOptions,
    parse=schema.parse,
    decode=Hook("xorc.codecs.raw.decode", "decode"),
    datapath=Hook("xorc.datapath.pipelines.raw", "run"),
)
