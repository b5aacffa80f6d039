"""Encoder options of codec `xor` (docs/codecs/xor.md §9). Shared by the encoder and the policy
registry; the decoder needs none of them (everything it reads is in the record)."""

from __future__ import annotations

from dataclasses import dataclass

PATCH_POLICIES = ("all", "importance")
VARIANTS = (1, 2, 3)
DEFAULT_VARIANT = 1
"""Variant 1 stays the default: variants 2 and 3 are smaller on every benchmark row (README
"Measured"), but their encoders need the optional compiled solver (numba, `xorc[fast]`) to be
fast: without numba their numpy solvers give the same blobs but about 50 x (variant 2) and 75 x
(variant 3) slower than variant 1 (docs/codecs/xor.md §11.4, §12.6, §12.7)."""


@dataclass(frozen=True)
class XorOptions:
    """Knobs of the XOR encoder.

    Attributes:
        seed: seed of the solver's random restarts (recorded in the blob's options).
        effort: solver restarts (1 = a single pass).
        patch_policy: "all" patches every error; "importance" ranks errors by importance and
            may leave some uncorrected within `error_budget`.
        error_budget: with "importance", at most f x E errors stay uncorrected, E being the
            number the correct-all encoding patches (f may exceed 1; None or 0 corrects all).
        variant: 1 (non-sequential network), 2 (shift-register windows, docs/codecs/xor.md
            §11) or 3 (mask-adaptive seed widths, §12).
    """

    seed: int = 0
    effort: int = 1
    patch_policy: str = "all"
    error_budget: float | None = None
    variant: int = DEFAULT_VARIANT

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown XOR variant {self.variant!r}; expected one of {VARIANTS}")
        if self.patch_policy not in PATCH_POLICIES:
            raise ValueError(
                f"unknown patch policy {self.patch_policy!r}; expected one of {PATCH_POLICIES}"
            )
