"""Codec `insitu`: multi-level in-situ weight generation (MLG, Gu et al., ICCV 2021): low-bit
basis kernels and coefficients from which the levels are regenerated (docs/codecs/insitu.md)."""
