"""Codec `xor` (id 1): bit-planes rebuilt by a fixed XOR-gate network, plus patches and mask.

Spec: docs/codecs/xor.md. Modules:

* `options` - the encoder's knobs (`XorOptions`); `schema` - the record's params checked
  (`parse`), shared by the reference decoder and the datapath model; `spec` - the `CodecSpec`.
* `network` - the XOR network M (SplitMix64 rows) and its evaluation; shared.
* `mask`, `patches` - the mask and patch stream formats; shared.
* `decode` - the reference decoder (imports only the shared modules).
* `solve` - the encoder's batched GF(2) Gauss-Jordan solver.
* `encode` - the encoder: `encode`, and `solve_tensor` + `finish` for cheap budget searches.
* variant 2: `seqsolve` / `seqsolve_jit` (solver), `seqencode` (encoder); variant 3: `adaptive`
  (seed widths and registers; shared), `adaptsolve` (solver), `adaptencode` (encoder).
"""
