"""Codec `raw` (id 0): bit-packed Q-bit sign-magnitude values, plus the pruning mask.

Spec: docs/format.md, "Codec raw". Modules: `options`, `schema` (the record's params checked,
shared by the reference decoder and the datapath model), `decode`, `encode`, `spec` (the
`CodecSpec`).
"""
