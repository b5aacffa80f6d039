"""Cycle-aware model of the decompressor between DRAM and a Gemmini-style scratchpad.

The second model of every decoder (docs/datapath.md): it reads a blob's streams in bus words,
decodes them with its own unit models, bit-exact with the reference decoders, and counts DRAM
traffic and cycles. It never imports an encoder.

    from xorc.datapath import load_config, simulate, render_text
    result = simulate(container, load_config(None, "gemmini-default"))
    print(render_text(result))
"""

from xorc.datapath.area import AreaEstimate, area_estimate, render_area
from xorc.datapath.config import PRESETS, DatapathConfig, get_preset, load_config
from xorc.datapath.fmap_traffic import FmapLayer
from xorc.datapath.render import render_text
from xorc.datapath.sim import SimResult, TensorCounters, TensorReport, simulate, simulate_tensor

__all__ = [
    "PRESETS",
    "AreaEstimate",
    "DatapathConfig",
    "FmapLayer",
    "SimResult",
    "TensorCounters",
    "TensorReport",
    "area_estimate",
    "get_preset",
    "load_config",
    "render_area",
    "render_text",
    "simulate",
    "simulate_tensor",
]
