"""The record schema of codec `xor` (docs/codecs/xor.md §8, §11.2): params checked into `XorParams`.

Shared by the reference decoder (`decode.py`) and the datapath model
(`xorc/datapath/pipelines/xor.py`), so one check serves both; everything after the record
(streams, network, patches) each model decodes on its own. Imports no decoder module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xorc.codecs.common import n_elements, param_int
from xorc.codecs.xor.network import MAX_N_IN, MAX_N_OUT
from xorc.errors import BadRecord, CorruptStream
from xorc.tensor import JSON

VARIANT = 1
"""The non-sequential variant (docs/codecs/xor.md §1-§9)."""
VARIANT_SEQ = 2
"""The sequential (shift-register) variant (docs/codecs/xor.md §11)."""
VARIANT_ADAPT = 3
"""The sequential variant with mask-adaptive seed widths (docs/codecs/xor.md §12)."""
VARIANTS = (VARIANT, VARIANT_SEQ, VARIANT_ADAPT)
MAX_RATE = 16384
"""Largest variant-3 rate (1/256 seed bits per care bit)."""
MAX_STREAM_LEN = 2**31 - 1
MASK_CODINGS = ("all", "bitmap", "rice-kept", "rice-pruned")
STREAMS = ("mask", "seeds", "patches")
MAX_BITS = 1 << 62
"""Upper bound of the bit-length params (any real stream is far shorter)."""


@dataclass(frozen=True)
class XorParams:
    """The validated params of one `xor` tensor record (docs/codecs/xor.md §8)."""

    n_out: int
    m_seed: int
    m_crc32: int
    n_in: list[int]
    n_kept: int
    mask_coding: str
    mask_k: int
    mask_bits: int
    patches: list[int]
    patch_k: list[int]
    patch_bits: list[int]
    variant: int = VARIANT
    stages: list[int] | None = None
    invert: list[int] | None = None
    stream_len: int = 0
    rate: list[int] | None = None

    def plane_stages(self) -> list[int]:
        """Register stages per plane (1 everywhere for variant 1)."""
        return list(self.stages) if self.stages is not None else [1] * len(self.n_in)

    def plane_invert(self) -> list[int]:
        """Output inversion per plane (0 everywhere for variant 1)."""
        return list(self.invert) if self.invert is not None else [0] * len(self.n_in)

    def check_network(self, crc: int) -> None:
        """`crc` is the CRC32 of the network M that `m_seed` and `n_out` generate.

        Raises:
            BadRecord: it is not the record's `m_crc32`.
        """
        if crc != self.m_crc32:
            raise BadRecord("codec parameter 'm_crc32' does not match the XOR network of 'm_seed'")


def check_streams(names: Iterable[str]) -> None:
    """Only the codec's streams (`STREAMS`) are present.

    Raises:
        CorruptStream: naming the others.
    """
    extra = set(names) - set(STREAMS)
    if extra:
        raise CorruptStream(f"unexpected stream(s) {sorted(extra)!r}")


def _int_list(params: Mapping[str, JSON], key: str, length: int, lo: int, hi: int) -> list[int]:
    value = params.get(key)
    if (
        not isinstance(value, list)
        or len(value) != length
        or any(type(v) is not int or not lo <= v <= hi for v in value)
    ):
        raise BadRecord(
            f"codec parameter {key!r} must be a list of {length} integers in [{lo}, {hi}], "
            f"got {value!r}"
        )
    return list(value)  # type: ignore[arg-type]


def parse(shape: tuple[int, ...], bits: int, params: Mapping[str, JSON]) -> XorParams:
    """Check every param against the shape and bit width.

    Raises:
        BadRecord: a param is missing, of the wrong type or out of range.
    """
    if type(bits) is not int or not 2 <= bits <= 8:
        raise BadRecord(f"bit width must be an integer in [2, 8], got {bits!r}")
    n = n_elements(shape)
    variant = param_int(params, "variant", VARIANT, VARIANT_ADAPT)
    coding = params.get("mask_coding")
    if coding not in MASK_CODINGS:
        raise BadRecord(
            f"codec parameter 'mask_coding' must be one of {MASK_CODINGS}, got {coding!r}"
        )
    n_kept = param_int(params, "n_kept", 0, n)
    n_in = _int_list(params, "n_in", bits, 0, MAX_N_IN)
    seq: dict[str, object] = {}
    if variant == VARIANT_SEQ:
        seq = _sequential(params, bits, n_in)
    elif variant == VARIANT_ADAPT:
        seq = _adaptive(params, bits, n_in)
    return XorParams(
        n_out=param_int(params, "n_out", 1, MAX_N_OUT),
        m_seed=param_int(params, "m_seed", 0, 2**32 - 1),
        m_crc32=param_int(params, "m_crc32", 0, 2**32 - 1),
        n_in=n_in,
        n_kept=n_kept,
        mask_coding=str(coding),
        mask_k=param_int(params, "mask_k", 0, 32),
        mask_bits=param_int(params, "mask_bits", 0, MAX_BITS),
        patches=_int_list(params, "patches", bits, 0, n_kept),
        patch_k=_int_list(params, "patch_k", bits, 0, 32),
        patch_bits=_int_list(params, "patch_bits", bits, 0, MAX_BITS),
        variant=variant,
        **seq,  # type: ignore[arg-type]
    )


def _sequential(params: Mapping[str, JSON], bits: int, n_in: list[int]) -> dict[str, object]:
    """The variant-2 keys (docs/codecs/xor.md §11.2).

    Raises:
        BadRecord: missing, out of range, or a window wider than 64 bits.
    """
    stages = _int_list(params, "stages", bits, 1, MAX_N_IN)
    for i, (s, w) in enumerate(zip(stages, n_in, strict=True)):
        if s * w > MAX_N_IN:
            raise BadRecord(
                f"codec parameters 'stages' x 'n_in' of plane {i} is {s} x {w} = {s * w} "
                f"window bits, more than {MAX_N_IN}"
            )
    return {
        "stages": stages,
        "invert": _int_list(params, "invert", bits, 0, 1),
        "stream_len": param_int(params, "stream_len", 1, MAX_STREAM_LEN),
    }


def _adaptive(params: Mapping[str, JSON], bits: int, n_in: list[int]) -> dict[str, object]:
    """The variant-3 keys (docs/codecs/xor.md §12.3).

    Raises:
        BadRecord: missing, out of range, or a register width without a rate (or the reverse).
    """
    rate = _int_list(params, "rate", bits, 0, MAX_RATE)
    for i, (r, w) in enumerate(zip(rate, n_in, strict=True)):
        if (r == 0) != (w == 0):
            raise BadRecord(
                f"codec parameters 'rate' and 'n_in' of plane {i} are {r} and {w}: "
                "a plane has both a rate and a register width, or neither"
            )
    return {
        "rate": rate,
        "invert": _int_list(params, "invert", bits, 0, 1),
        "stream_len": param_int(params, "stream_len", 1, MAX_STREAM_LEN),
    }
