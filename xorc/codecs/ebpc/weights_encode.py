"""Weight-codec adapter of EBPC (codec id 3, policy `ebpc`; docs/codecs/ebpc.md, "Container
record"): the signed levels, flattened in C order, coded losslessly as RTL EBPC transmissions."""

from __future__ import annotations

from xorc.codecs import CodecId
from xorc.codecs.ebpc.core_encode import encode_transmissions
from xorc.codecs.ebpc.options import EbpcOptions
from xorc.codecs.ebpc.streams import MAX_ZERO_RUN, format_error
from xorc.errors import UsageError
from xorc.tensor import Encoded, QuantTensor


def encode(q: QuantTensor, options: EbpcOptions) -> Encoded:
    """EBPC-code the levels with W = options.word_width and N = options.block_size.

    Raises:
        UsageError: W/N is not an RTL format, or the levels do not fit W bits.
    """
    w, n = options.word_width, options.block_size
    problem = format_error(w, n, False)
    if problem:
        raise UsageError(f"ebpc: {problem}")
    flat = q.values.ravel()
    if flat.size and max(abs(int(flat.min())), int(flat.max())) >= 1 << (w - 1):
        raise UsageError(f"ebpc: tensor {q.name!r} has levels that do not fit {w}-bit words")
    parts = encode_transmissions(flat, w, n)
    params = {
        "word_width": w,
        "block_size": n,
        "max_zero_run": MAX_ZERO_RUN,
        "n_words": [p.n_words for p in parts],
        "znz_bitlen": [p.znz_bitlen for p in parts],
        "bpc_bitlen": [p.bpc_bitlen for p in parts],
    }
    streams = {"znz": b"".join(p.znz for p in parts), "bpc": b"".join(p.bpc for p in parts)}
    raw_bits = flat.size * w
    unpadded = sum(p.compressed_bits for p in parts)
    padded = 8 * (len(streams["znz"]) + len(streams["bpc"]))
    stats = {
        "transmissions": len(parts),
        "n_nonzero": int((flat != 0).sum()),
        "znz_bits": sum(p.znz_bitlen for p in parts),
        "bpc_bits": sum(p.bpc_bitlen for p in parts),
        "ratio": raw_bits / unpadded if unpadded else None,
        "ratio_padded": raw_bits / padded if padded else None,
    }
    return Encoded(CodecId.EBPC, params, streams, q.values, stats)
