"""Codec `dictionary` (id 2): per-tensor or per-channel-group codebooks of Q-bit levels, with
fixed-width or canonical-Huffman indices and pruned zeros as a reserved entry or a mask.

Spec: docs/codecs/dictionary.md.
"""
