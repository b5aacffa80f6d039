"""The constant tensors of a model and what the rule table (xorc.weight_rules) makes of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from xorc import weight_rules
from xorc.errors import NotOnnx, UnsupportedModel
from xorc.onnx_io.graph import (
    FLOAT_TYPES,
    INT_TYPES,
    _located_tensors,
    _nodes,
)
from xorc.onnx_io.load import ExternalTensor, SourceModel, external_tensor, tensor_array


@dataclass(frozen=True)
class Consumer:
    """A node input that reads a tensor."""

    op_type: str
    node_name: str
    input_index: int


@dataclass
class WeightInfo:
    """A constant tensor of the model, as the pipeline sees it.

    Attributes:
        name: tensor name (for a Constant node: its output name).
        data: the values (float, or int8 for an already quantized weight), or where they lie in
            an external data file (`array` reads them on first use; `release` forgets them).
        dtype: the ONNX element type name to rebuild (docs/format.md §3.2 `dtype`).
        consumers: every node input that reads it.
        kind: "initializer" or "constant".
        graph: "main" or the path of the subgraph that holds it.
        axis: the output-channel axis for per-channel scales, None when none fits.
        treatment: what xorc.weight_rules decided: "quantize", "prequantized" or "float".
        role: the rule's kind ("conv", "embedding", "recurrent", ...).
        reason: why it is left as it is (treatment "float"), or a note.
    """

    name: str
    data: NDArray[np.generic] | ExternalTensor
    dtype: str
    consumers: list[Consumer] = field(default_factory=list)
    kind: str = "initializer"
    graph: str = "main"
    axis: int | None = None
    treatment: str = weight_rules.FLOAT
    role: str = "other"
    reason: str = ""
    _cache: NDArray[np.generic] | None = field(default=None, repr=False, compare=False)

    @property
    def array(self) -> NDArray[np.generic]:
        """The values (read from the external data file on first use, and checked finite)."""
        if not isinstance(self.data, ExternalTensor):
            return self.data
        if self._cache is None:
            self._cache = self.data.read()
            _check_finite(self, self._cache, self.data.path)
        return self._cache

    @property
    def shape(self) -> tuple[int, ...]:
        data = self.data
        return data.shape if isinstance(data, ExternalTensor) else tuple(data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the values as the model stores them."""
        data = self.data
        return data.length if isinstance(data, ExternalTensor) else int(data.nbytes)

    def release(self) -> None:
        """Forget values read from an external data file (they are read again when needed)."""
        self._cache = None

    @property
    def compressible(self) -> bool:
        """A weight by the rule table (xorc.weight_rules): float to quantize, or int8/uint8."""
        return self.treatment != weight_rules.FLOAT

    @property
    def node_names(self) -> list[str]:
        return [c.node_name for c in self.consumers]


def find_weights(model: SourceModel) -> list[WeightInfo]:
    """Every float, int8 or uint8 constant tensor with its consumers and what the rule table
    (xorc.weight_rules) makes of it, in graph order."""
    consumers: dict[str, list[Consumer]] = {}
    for node, _ in _nodes(model.proto.graph, "main"):
        for i, name in enumerate(node.input):
            if name:
                consumers.setdefault(name, []).append(Consumer(node.op_type, node.name, i))
    view = rule_graph(model)
    weights = []
    for name, tensor, kind, path in _located_tensors(model.proto.graph):
        dtype = FLOAT_TYPES.get(tensor.data_type) or INT_TYPES.get(tensor.data_type)
        if dtype is None:
            continue
        if any(d < 0 for d in tensor.dims):
            raise NotOnnx(
                f"{model.path}: tensor {name!r} has a negative dimension {list(tensor.dims)}"
            )
        data: NDArray[np.generic] | ExternalTensor | None = external_tensor(model, tensor)
        if data is None:
            try:
                data = numpy_helper.to_array(tensor)
            except Exception as exc:
                raise NotOnnx(f"{model.path}: tensor {name!r} cannot be read ({exc})") from None
        info = WeightInfo(name, data, dtype, consumers.get(name, []), kind, path)
        d = weight_rules.decide(view, name, info.shape, dtype)
        info.axis, info.treatment, info.role, info.reason = d.axis, d.treatment, d.kind, d.reason
        if not isinstance(data, ExternalTensor):  # external data: checked when read
            _check_finite(info, data, model.path)
        weights.append(info)
    return weights


def _check_finite(info: WeightInfo, array: NDArray[np.generic], label: str) -> None:
    if info.compressible and info.dtype in FLOAT_TYPES.values() and not np.isfinite(array).all():
        raise UnsupportedModel(
            f"{label}: weight {info.name!r} holds {int((~np.isfinite(array)).sum())} NaN or "
            "infinite values; xorc quantizes finite weights only"
        )


def plain_node(node: onnx.NodeProto) -> weight_rules.Node:
    """An operator as plain data: op type, name, inputs, outputs, scalar attributes, domain."""
    attrs: weight_rules.Attrs = {}
    for a in node.attribute:
        if a.type in (onnx.AttributeProto.INT, onnx.AttributeProto.STRING):
            v = onnx.helper.get_attribute_value(a)
            attrs[a.name] = v.decode(errors="replace") if isinstance(v, bytes) else v
        elif a.type == onnx.AttributeProto.INTS:
            attrs[a.name] = tuple(int(x) for x in a.ints)
    domain = "" if node.domain == "ai.onnx" else node.domain
    return weight_rules.Node(
        node.op_type, node.name, tuple(node.input), tuple(node.output), attrs, domain
    )


def rule_graph(model: SourceModel) -> weight_rules.Graph:
    """The model's operators (every graph) and small integer constants, as plain data."""
    nodes = [plain_node(node) for node, _ in _nodes(model.proto.graph, "main")]
    ints: dict[str, tuple[int, ...]] = {}
    for name, tensor, _, _ in _located_tensors(model.proto.graph):
        n = int(np.prod(tensor.dims)) if tensor.dims else 1
        if tensor.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and n <= 16:
            ints[name] = tuple(int(x) for x in tensor_array(model, tensor).reshape(-1))
    return weight_rules.Graph(nodes, ints)


def zero_point(
    model: SourceModel, weight: WeightInfo
) -> tuple[NDArray[np.generic] | None, int | None]:
    """The zero point an already quantized weight is read with (None: none, i.e. zero) and the
    weight axis a 1-D per-channel zero point runs along (xorc.weight_rules `qparams`)."""
    view = rule_graph(model)
    consts = {name: t for name, t, _, _ in _located_tensors(model.proto.graph)}
    for use in view.uses(weight.name, weight.shape, weight.dtype):
        rule = weight_rules.rule_for(use.node, use.index)
        if rule is None or rule.treatment != weight_rules.PREQUANTIZED:
            continue
        if rule.op_type == "Cast":  # weight-only: Cast, then Sub(zero point), then Mul(scale)
            for reader, i in view.readers.get(use.node.outputs[0], []):
                if reader.op_type == "Sub" and i == 0 and reader.inputs[1] in consts:
                    return tensor_array(model, consts[reader.inputs[1]]), None
            return None, None
        _, zp_index, axis = rule.qparams
        if axis is None:
            axis = int(use.node.attrs.get("axis", 1))  # type: ignore[arg-type]
        ndim = len(weight.shape)
        axis = axis + ndim if axis < 0 else axis
        name = (
            use.node.inputs[zp_index]
            if zp_index is not None and zp_index < len(use.node.inputs)
            else ""
        )
        if not name:
            return None, axis
        if name not in consts:
            raise UnsupportedModel(
                f"{model.path}: tensor {weight.name!r}: its zero point {name!r} is not a constant"
            )
        return tensor_array(model, consts[name]), axis
    return None, None
