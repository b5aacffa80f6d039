"""Helpers shared by the tests of codec `xor`'s sequential variants (2 and 3)."""

from __future__ import annotations

import numpy as np
import pytest

from xorc.codecs import CodecId
from xorc.codecs.xor.decode import decode
from xorc.codecs.xor.encode import finish, solve_tensor
from xorc.codecs.xor.options import XorOptions
from xorc.datapath import DatapathConfig, simulate_tensor
from xorc.errors import CorruptStream
from xorc.tensor import Encoded, QuantTensor


def make_q(shape: tuple[int, ...], bits: int, sparsity: float, seed: int) -> QuantTensor:
    """Uniform random levels (none 0 before pruning), pruned at random, random importance."""
    rng = np.random.default_rng(seed)
    top = 2 ** (bits - 1) - 1
    v = rng.integers(-top, top + 1, size=shape).astype(np.int16)
    v[v == 0] = 1
    v[rng.random(shape) < sparsity] = 0
    imp = rng.random(shape).astype(np.float32)
    return QuantTensor("t", v, bits, np.ones(1, np.float32), None, imp)


def xor_only(q: QuantTensor, options: XorOptions) -> Encoded:
    """The XOR encoding, never the raw fallback."""
    return finish(solve_tensor(q, options), None, fallback=False)


def both(q: QuantTensor, params: dict, streams: dict) -> list[np.ndarray]:
    """Decode with the reference decoder and the datapath model."""
    ref = decode(q.shape, q.bits, params, streams)
    sim = simulate_tensor(q.shape, q.bits, CodecId.XOR, params, streams, DatapathConfig())[0]
    return [ref, sim]


def check_bad_stream_length(q: QuantTensor, e: Encoded, name: str, change: str) -> None:
    """Stream `name` one byte short ("truncate") or long ("extend"): CorruptStream naming it
    from the reference decoder, CorruptStream from the datapath model."""
    streams = dict(e.streams)
    streams[name] = streams[name][:-1] if change == "truncate" else streams[name] + b"\x00"
    with pytest.raises(CorruptStream, match=name):
        decode(q.shape, q.bits, e.params, streams)
    with pytest.raises(CorruptStream):
        simulate_tensor(q.shape, q.bits, CodecId.XOR, e.params, streams, DatapathConfig())
