"""One model per hardware unit of the decompressor (docs/datapath.md §3).

Each unit reads the bus words the DRAM reader delivers, computes its values with its own
implementation (never the reference decoders in `xorc/codecs/*/decode.py`) and returns its
cycle counts separately from the values.
"""
