"""Everything that touches ONNX protobufs: the only package that imports `onnx`.

It turns a model file into plain numpy weights plus small metadata (`WeightInfo`), takes the
encoded weights out of the graph for the container (docs/format.md §3.3), puts decoded weights
back, and adds intermediate outputs for calibration and feature-map analysis.

| module | what |
|---|---|
| `load` | reading a model; external data read tensor by tensor (`load_model`, `tensor_array`) |
| `graph` | walking graphs and subgraphs; the element-type tables |
| `weights` | the constant tensors and what the rule table (xorc.weight_rules) makes of them |
| `store` | the stored graph: weights out as references, back in, or replaced |
| `analysis` | layers, MACs and activation outputs |
"""

from xorc.onnx_io.analysis import (
    Layer,
    activation_outputs,
    layer_macs,
    layers,
    prefix,
    stored_layers,
    suffix_model,
    with_outputs,
)
from xorc.onnx_io.graph import FLOAT_TYPES, INT_TYPES, WEIGHT_INPUTS, XORC_LOCATION
from xorc.onnx_io.load import (
    ExternalTensor,
    SourceModel,
    initializer,
    load_model,
    serialize,
    tensor_array,
    to_bytes,
)
from xorc.onnx_io.store import (
    dtype_of,
    rebuild,
    referenced_indices,
    strip_weights,
    substitute,
)
from xorc.onnx_io.weights import Consumer, WeightInfo, find_weights, rule_graph, zero_point

__all__ = [
    "FLOAT_TYPES",
    "INT_TYPES",
    "WEIGHT_INPUTS",
    "XORC_LOCATION",
    "Consumer",
    "ExternalTensor",
    "Layer",
    "SourceModel",
    "WeightInfo",
    "activation_outputs",
    "dtype_of",
    "find_weights",
    "initializer",
    "layer_macs",
    "layers",
    "load_model",
    "prefix",
    "rebuild",
    "referenced_indices",
    "rule_graph",
    "serialize",
    "stored_layers",
    "strip_weights",
    "substitute",
    "suffix_model",
    "tensor_array",
    "to_bytes",
    "with_outputs",
    "zero_point",
]
