"""Decoder lookup: codec id -> reference decoder, from the codec registry
(`xorc.codecs.registry`). Imports decoders only, never encoders."""

from __future__ import annotations

from xorc.codecs import Decoder
from xorc.codecs.registry import CODECS, codec_for

DECODERS: dict[int, Decoder] = {codec: spec.decode for codec, spec in CODECS.items()}


def decoder_for(codec: int, tensor: str) -> Decoder:
    """The decoder of a codec id, or BadRecord naming the tensor."""
    return codec_for(codec, tensor).decode
