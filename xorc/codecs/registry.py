"""The codec registry: codec id -> `CodecSpec`, one line per codec (docs/adding-a-codec.md).

The reference decoder (`xorc.decode`), the datapath simulator, its area estimate and the
`inspect` notes all look codecs up here. Loading it loads only the specs, options and record
schemas: decoders and datapath pipelines are named by `Hook`s and imported on first use, and no
encoder is ever imported.
"""

from __future__ import annotations

from xorc.codecs import CodecId, CodecSpec
from xorc.codecs.dictionary.spec import SPEC as DICTIONARY
from xorc.codecs.ebpc.spec import SPEC as EBPC
from xorc.codecs.insitu.spec import SPEC as INSITU
from xorc.codecs.raw.spec import SPEC as RAW
from xorc.codecs.xor.spec import SPEC as XOR
from xorc.errors import BadRecord

CODECS: dict[int, CodecSpec] = {
    CodecId.RAW: RAW,
    CodecId.XOR: XOR,
    CodecId.DICTIONARY: DICTIONARY,
    CodecId.EBPC: EBPC,
    CodecId.INSITU: INSITU,
}


def codec_for(codec: int, tensor: str) -> CodecSpec:
    """The spec of a codec id, or BadRecord naming the tensor."""
    spec = CODECS.get(codec)
    if spec is None:
        raise BadRecord(f"tensor {tensor!r}: unknown codec id {codec}")
    return spec
