"""Encoder registry: policy name -> encode function.

Policies `all` and `importance` both use the XOR codec; the patch policy reaches the encoder
through `EncodeOptions.patch_policy` (xorc.pipeline.encoder_options).
"""

from __future__ import annotations

from xorc.codecs import Encoder
from xorc.codecs.dictionary.encode import encode as dictionary_encode
from xorc.codecs.ebpc.weights_encode import encode as ebpc_encode
from xorc.codecs.raw.encode import encode as raw_encode
from xorc.codecs.xor.encode import encode as xor_encode

ENCODERS: dict[str, Encoder] = {
    "raw": raw_encode,
    "all": xor_encode,
    "importance": xor_encode,
    "dictionary": dictionary_encode,
    "ebpc": ebpc_encode,
}
LOSSLESS_POLICIES = ("raw", "all", "ebpc")
