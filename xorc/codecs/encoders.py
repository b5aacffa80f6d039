"""Encoder registry: policy name -> (encode function, patch policy handed to it)."""

from __future__ import annotations

from xorc.codecs import Encoder
from xorc.codecs.raw.encode import encode as raw_encode

ENCODERS: dict[str, Encoder] = {
    "raw": raw_encode,
}
LOSSLESS_POLICIES = ("raw", "all", "ebpc")
