"""The `CodecSpec` of codec `ebpc` as a weight codec (registered in `xorc.codecs.registry`)."""

from __future__ import annotations

from xorc.codecs import CodecId, CodecSpec, Hook
from xorc.codecs.ebpc import schema
from xorc.codecs.ebpc.options import EbpcOptions

SPEC = CodecSpec(
    id=CodecId.EBPC,
    name="ebpc",
    doc="docs/codecs/ebpc.md",
    options=EbpcOptions,
    parse=schema.parse,
    decode=Hook("xorc.codecs.ebpc.weights_decode", "decode"),
    datapath=Hook("xorc.datapath.pipelines.ebpc", "run"),
    area=Hook("xorc.datapath.pipelines.ebpc", "area"),
    max_weights_per_bit=4,
)
