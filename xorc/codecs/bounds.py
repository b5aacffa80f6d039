"""Validate before allocate: the checks every decoder makes on counts that come from a file.

A record declares shapes, counts, bit lengths and Rice parameters; a decoder sizes arrays and
loops by them. Each check here compares such a count with what the stream can actually hold
(its bit length, the minimum cost of one value) and raises `CorruptStream` before anything is
allocated. They are shared by every codec's reference decoder and datapath pipeline, so that
one bound is written once (docs/format.md §5 step 7, "Decoded-size bound").
"""

from __future__ import annotations

from collections.abc import Mapping

from xorc.errors import CorruptStream

SLACK_WEIGHTS = 4096
"""Weights any record may hold whatever its streams' length (docs/format.md §5 step 7): small
tensors (a fully pruned bias-sized weight, a one-entry dictionary) legitimately code in 0 bits."""


def stream_bits(streams: Mapping[str, bytes]) -> int:
    """Bits in the codec streams of one record (all but `scales`)."""
    return 8 * sum(len(v) for v in streams.values())


def max_weights(streams: Mapping[str, bytes], per_bit: int) -> int:
    """The most weights a record of a codec expanding at most `per_bit` weights per stream bit
    may declare: ``per_bit * bits + SLACK_WEIGHTS``."""
    return per_bit * stream_bits(streams) + SLACK_WEIGHTS


def check_expansion(n: int, streams: Mapping[str, bytes], per_bit: int, codec: str) -> None:
    """A record of `n` weights does not exceed its codec's maximum expansion.

    Raises:
        CorruptStream: `n` is more than `max_weights(streams, per_bit)`.
    """
    limit = max_weights(streams, per_bit)
    if n > limit:
        raise CorruptStream(
            f"record declares {n} weights; {stream_bits(streams)} stream bits of codec "
            f"{codec!r} decode to at most {limit} ({per_bit} per bit + {SLACK_WEIGHTS})"
        )


def check_fits(count: int, min_bits: int, nbits: int, what: str) -> None:
    """`count` values costing at least `min_bits` bits each fit in `nbits` bits.

    Raises:
        CorruptStream: naming `what` (the stream), before anything is sized by `count`.
    """
    if count < 0 or count * min_bits > nbits:
        raise CorruptStream(
            f"stream {what!r}: {count} values of at least {min_bits} bits cannot fit in "
            f"{nbits} bits"
        )


def check_rice(count: int, k: int, nbits: int, what: str) -> None:
    """A Rice code of `count` values with parameter `k` fits in `nbits` bits: each value takes
    at least k + 1 bits (docs/format.md §1.1).

    Raises:
        CorruptStream: it cannot.
    """
    check_fits(count, k + 1, nbits, what)
