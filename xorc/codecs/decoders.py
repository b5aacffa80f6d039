"""Decoder registry: codec id -> decode function. Imports decoders only, never encoders."""

from __future__ import annotations

from xorc.codecs import CodecId, Decoder
from xorc.codecs.dictionary.decode import decode as dictionary_decode
from xorc.codecs.ebpc.weights_decode import decode as ebpc_decode
from xorc.codecs.raw.decode import decode as raw_decode
from xorc.codecs.xor.decode import decode as xor_decode
from xorc.errors import BadRecord

DECODERS: dict[int, Decoder] = {
    CodecId.RAW: raw_decode,
    CodecId.XOR: xor_decode,
    CodecId.DICTIONARY: dictionary_decode,
    CodecId.EBPC: ebpc_decode,
}


def decoder_for(codec: int, tensor: str) -> Decoder:
    """The decoder of a codec id, or BadRecord naming the tensor."""
    if codec not in DECODERS:
        raise BadRecord(f"tensor {tensor!r}: unknown codec id {codec}")
    return DECODERS[codec]
