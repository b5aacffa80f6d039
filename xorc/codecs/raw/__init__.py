"""Codec `raw` (id 0): bit-packed Q-bit sign-magnitude values, plus the pruning mask.

Spec: docs/format.md, "Codec raw".
"""
