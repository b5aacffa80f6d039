"""Codec `dictionary` (id 2): per-tensor or per-channel-group codebooks of Q-bit levels, with
fixed-width or canonical-Huffman indices and pruned zeros as a reserved entry or a mask.

Spec: docs/codecs/dictionary.md. Modules: `options` (encoder knobs), `schema` (the record's
params checked, shared by the reference decoder and the datapath model), `decode` (with the
shared `huffman`), `encode` (with `kmeans`, `huffman_build`, `compensate`), `spec` (the
`CodecSpec`).
"""
