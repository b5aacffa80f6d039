"""Which constant tensors are weights, and how each kind is quantized: the one rule table.

A constant tensor (initializer or `Constant`, any graph) of a float type, int8 or uint8, with
at least `MIN_ELEMENTS` elements, is followed through shape-only operators (`SHAPE_OPS`:
Identity, Cast, Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Slice, Split, Concat) to the
operators that use it. `RULES` says, per operator and input position, what the tensor is there:

* `QUANTIZE`: a float weight; quantized per channel along the axis the rule names (mapped back
  through the shape operators to the tensor as stored), or per tensor where no axis fits;
* `PREQUANTIZED`: an int8/uint8 weight of an already quantized model (QDQ, QOperator,
  `*Integer`, `DynamicQuantizeLSTM`, weight-only Cast/Mul); stored losslessly (xorc.prequant);
* `FLOAT`: left as it is, for the reason the rule gives (biases, normalization parameters,
  quantization parameters, elementwise operands).

A tensor with several uses is a weight when any use says so; consumers that disagree on the
channel axis give per-tensor scales. An operator with no rule leaves the tensor as it is,
named in the summary ("left float: <op> input <i> has no rule"). docs/weights.md explains the
table row by row; tests/test_weight_rules.py has a test per row.

This module sees plain data (`Node`), never onnx protobufs: xorc.onnx_io builds the view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from math import prod

from xorc.weight_shapes import Origin, Shape, through

QUANTIZE = "quantize"
PREQUANTIZED = "prequantized"
FLOAT = "float"
MIN_ELEMENTS = 8
INTEGER_DTYPES = ("int8", "uint8")
SHAPE_OPS = (
    "Identity",
    "Cast",
    "Transpose",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Split",
    "Concat",
)

Attrs = dict[str, "int | float | str | tuple[int, ...]"]


@dataclass(frozen=True)
class Node:
    """An operator, as the rules see it: op type, domain, inputs, outputs and scalar attributes."""

    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Attrs = field(default_factory=dict)
    domain: str = ""


AxisRule = Callable[[int, int, Node], "int | None"]
"""(rank of the tensor the operator sees, input index, node) -> output-channel axis or None."""


def _fixed(axis: int) -> AxisRule:
    return lambda ndim, i, node: axis if ndim > axis else None


def _from_end(k: int) -> AxisRule:
    return lambda ndim, i, node: ndim - k if ndim >= 2 else None


def _gemm(ndim: int, i: int, node: Node) -> int | None:
    if ndim != 2:
        return None
    if i == 1:
        return 0 if node.attrs.get("transB", 0) else 1
    return 1 if node.attrs.get("transA", 0) else 0


def _conv_transpose(ndim: int, i: int, node: Node) -> int | None:
    """[C_in, C_out/group, k...]: axis 1, the output channel within a group; with group > 1,
    axis 0, whose rows pick the group (a depthwise one, [C, 1, k...], has one output channel
    per row: axis 1 would give the whole tensor one scale)."""
    if ndim < 2:
        return None
    return 0 if int(node.attrs.get("group", 1)) > 1 else 1  # type: ignore[arg-type]


def _gather(ndim: int, i: int, node: Node) -> int | None:
    axis = int(node.attrs.get("axis", 0))  # type: ignore[arg-type]
    axis = axis + ndim if axis < 0 else axis
    return axis if 0 <= axis < ndim else None


def _einsum(ndim: int, i: int, node: Node) -> int | None:
    """The weight's last subscript that only the output shares (its output channel)."""
    eq = str(node.attrs.get("equation", "")).replace(" ", "")
    if "->" not in eq or "." in eq:
        return None
    lhs, out = eq.split("->")
    specs = lhs.split(",")
    if i >= len(specs) or len(specs[i]) != ndim:
        return None
    others = "".join(s for k, s in enumerate(specs) if k != i)
    own = [k for k, c in enumerate(specs[i]) if c in out and c not in others]
    return own[-1] if own else None


@dataclass(frozen=True)
class Rule:
    """One row of the table.

    Attributes:
        op_type: the operator (with `domain`).
        inputs: the input positions the row covers; () means every input.
        kind: a short name for the summary and the record (`weight_kind`).
        treatment: QUANTIZE, PREQUANTIZED or FLOAT.
        axis: the output-channel axis rule (QUANTIZE), or None: per tensor.
        why: what the axis is (QUANTIZE, PREQUANTIZED) or why the tensor stays float (FLOAT).
        domain: the operator's domain ("" is ai.onnx).
        qparams: PREQUANTIZED rows: the inputs holding the scale and zero point (None: none),
            and the weight axis a per-channel scale / zero point runs along (negative: from
            the end; None: the node's `axis` attribute, default 1, as DequantizeLinear).
    """

    op_type: str
    inputs: tuple[int, ...]
    kind: str
    treatment: str
    axis: AxisRule | None
    why: str
    domain: str = ""
    qparams: tuple[int | None, int | None, int | None] = (None, None, 0)


_MS = "com.microsoft"
_NORMS = (
    "BatchNormalization",
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "RMSNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
)
_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "PRelu", "Sum", "Mean")

RULES: tuple[Rule, ...] = (
    Rule("Conv", (1,), "conv", QUANTIZE, _fixed(0), "[C_out, C_in/group, k...]: axis 0"),
    Rule("Conv", (2,), "bias", FLOAT, None, "bias"),
    Rule(
        "ConvTranspose",
        (1,),
        "conv_transpose",
        QUANTIZE,
        _conv_transpose,
        "[C_in, C_out/g, k]: axis 1; group > 1: axis 0",
    ),
    Rule("ConvTranspose", (2,), "bias", FLOAT, None, "bias"),
    Rule("Gemm", (0, 1), "gemm", QUANTIZE, _gemm, "the operand's output axis, after transA/B"),
    Rule("Gemm", (2,), "bias", FLOAT, None, "bias"),
    Rule("MatMul", (1,), "matmul", QUANTIZE, _from_end(1), "B [.., K, N]: axis N (the last)"),
    Rule("MatMul", (0,), "matmul_first", QUANTIZE, _from_end(2), "A [.., M, K]: axis M"),
    Rule("Gather", (0,), "embedding", QUANTIZE, _gather, "a table read by rows: per row"),
    Rule("Einsum", (), "einsum", QUANTIZE, _einsum, "the subscript only the output shares"),
    Rule("LSTM", (1, 2), "recurrent", QUANTIZE, _fixed(1), "W/R [dirs, 4H, I]: per gate row"),
    Rule("GRU", (1, 2), "recurrent", QUANTIZE, _fixed(1), "W/R [dirs, 3H, I]: per gate row"),
    Rule("RNN", (1, 2), "recurrent", QUANTIZE, _fixed(1), "W/R [dirs, H, I]: per gate row"),
    Rule("LSTM", (3, 5, 6, 7), "recurrent_bias", FLOAT, None, "recurrent bias or initial state"),
    Rule("GRU", (3, 5), "recurrent_bias", FLOAT, None, "recurrent bias or initial state"),
    Rule("RNN", (3, 5), "recurrent_bias", FLOAT, None, "recurrent bias or initial state"),
    Rule("DequantizeLinear", (0,), "qdq", PREQUANTIZED, None, "QDQ", "", (1, 2, None)),
    Rule("QLinearConv", (3,), "qlinear_conv", PREQUANTIZED, None, "QOperator", "", (4, 5, 0)),
    Rule("QLinearMatMul", (3,), "qlinear_matmul", PREQUANTIZED, None, "QOperator", "", (4, 5, -1)),
    Rule("ConvInteger", (1,), "conv_integer", PREQUANTIZED, None, "integer", "", (None, 3, 0)),
    Rule("MatMulInteger", (1,), "matmul_integer", PREQUANTIZED, None, "integer", "", (None, 3, -1)),
    Rule("DynamicQuantizeLSTM", (1,), "quantized_lstm", PREQUANTIZED, None, "W", _MS, (8, 9, -1)),
    Rule("DynamicQuantizeLSTM", (2,), "quantized_lstm", PREQUANTIZED, None, "R", _MS, (10, 11, -1)),
    Rule("MatMulIntegerToFloat", (1,), "matmul_integer", PREQUANTIZED, None, "B", _MS, (3, 5, -1)),
    Rule("DynamicQuantizeMatMul", (1,), "matmul_integer", PREQUANTIZED, None, "B", _MS, (2, 3, -1)),
    Rule("QGemm", (3,), "qgemm", PREQUANTIZED, None, "QOperator", _MS, (4, 5, 0)),
    Rule("Cast", (0,), "cast_dequantize", PREQUANTIZED, None, "weight-only: Cast, Sub, Mul"),
    Rule("DynamicQuantizeLSTM", (3, 5, 6, 7), "recurrent_bias", FLOAT, None, "bias", _MS),
    Rule("DequantizeLinear", (1, 2), "quant_param", FLOAT, None, "quantization parameter"),
    *(Rule(op, (), "norm", FLOAT, None, "normalization parameter") for op in _NORMS),
    *(Rule(op, (), "elementwise", FLOAT, None, "elementwise operand") for op in _ELEMENTWISE),
)
"""The table. `Cast` is a shape operator for a float tensor; for an int8/uint8 one it is the
first step of a weight-only dequantization (Cast, then Sub/Mul), so that row applies only to
integer tensors."""


def rule_for(node: Node, index: int) -> Rule | None:
    """The row for input `index` of `node`, or None when the table has none."""
    for r in RULES:
        if (
            r.op_type == node.op_type
            and r.domain == node.domain
            and (not r.inputs or index in r.inputs)
        ):
            return r
    return None


@dataclass(frozen=True)
class Use:
    """Where a traced tensor ends up: the node and input, and the tensor's axes as it arrives
    there (`origin[j]`: the stored tensor's axis that arrives as axis j, or None)."""

    node: Node
    index: int
    shape: tuple[int, ...] | None
    origin: tuple[int | None, ...] | None


@dataclass(frozen=True)
class Decision:
    """What a constant tensor is and how it is treated.

    Attributes:
        treatment: QUANTIZE, PREQUANTIZED or FLOAT ("keep": left as it is).
        kind: the rule's kind ("conv", "embedding", ...) or "unused" / "small" / "other".
        axis: the stored tensor's output-channel axis, None for per-tensor.
        reason: why it is left as it is (FLOAT), or a note ("consumers disagree on the axis").
        uses: (op type, input index) of every operator that reads it, after shape operators.
    """

    treatment: str
    kind: str
    axis: int | None
    reason: str
    uses: tuple[tuple[str, int], ...] = ()


class Graph:
    """The operators of a model (every graph, flattened) and its small integer constants."""

    def __init__(self, nodes: Iterable[Node], int_consts: dict[str, tuple[int, ...]]) -> None:
        self.readers: dict[str, list[tuple[Node, int]]] = {}
        for node in nodes:
            for i, name in enumerate(node.inputs):
                if name:
                    self.readers.setdefault(name, []).append((node, i))
        self.consts = int_consts

    def uses(self, name: str, shape: tuple[int, ...], dtype: str) -> list[Use]:
        """Every non-shape operator input the tensor reaches, through shape operators."""
        out: list[Use] = []
        todo: list[tuple[str, Shape, Origin]] = [(name, shape, tuple(range(len(shape))))]
        seen = {name}
        while todo:
            cur, cur_shape, cur_origin = todo.pop()
            for node, i in self.readers.get(cur, []):
                if not _passes(node, i, dtype):
                    out.append(Use(node, i, cur_shape, cur_origin))
                    continue
                nxt_shape, nxt_origin = through(node, cur_shape, cur_origin, self.consts)
                for o in node.outputs:
                    if o and o not in seen:
                        seen.add(o)
                        todo.append((o, nxt_shape, nxt_origin))
        return out


def _passes(node: Node, index: int, dtype: str) -> bool:
    """Whether the tensor goes on through `node` (a shape operator's data input)."""
    if node.domain != "" or node.op_type not in SHAPE_OPS:
        return False
    if node.op_type == "Cast" and dtype in INTEGER_DTYPES:
        return False
    return index == 0 or node.op_type == "Concat"


def decide(graph: Graph, name: str, shape: tuple[int, ...], dtype: str) -> Decision:
    """The table applied to one constant tensor (docstring of this module)."""
    uses = graph.uses(name, shape, dtype)
    seen = tuple((u.node.op_type, u.index) for u in uses)
    if not uses:
        return Decision(FLOAT, "unused", None, "read by no operator", seen)
    if prod(shape) < MIN_ELEMENTS:
        return Decision(FLOAT, "small", None, f"fewer than {MIN_ELEMENTS} elements", seen)
    rules = [(u, rule_for(u.node, u.index)) for u in uses]
    weight = [(u, r) for u, r in rules if r is not None and r.treatment != FLOAT]
    if dtype in INTEGER_DTYPES:
        if weight:
            return Decision(PREQUANTIZED, weight[0][1].kind, None, weight[0][1].why, seen)
        return Decision(FLOAT, "other", None, _float_reason(rules), seen)
    weight = [(u, r) for u, r in weight if r.treatment == QUANTIZE]
    if not weight:
        return Decision(FLOAT, _float_kind(rules), None, _float_reason(rules), seen)
    axes = {_stored_axis(u, r) for u, r in weight}
    note = ""
    if len(axes) > 1:
        axes, note = {None}, "consumers disagree on the channel axis: per-tensor scales"
    return Decision(QUANTIZE, weight[0][1].kind, axes.pop(), note, seen)


def _stored_axis(use: Use, rule: Rule) -> int | None:
    if rule.axis is None or use.origin is None:
        return None
    j = rule.axis(len(use.origin), use.index, use.node)
    return None if j is None else use.origin[j]


def _float_kind(rules: list[tuple[Use, Rule | None]]) -> str:
    known = [r.kind for _, r in rules if r is not None]
    return known[0] if known else "other"


def _float_reason(rules: list[tuple[Use, Rule | None]]) -> str:
    for u, r in rules:
        if r is None:
            return f"{u.node.op_type} input {u.index} has no rule"
    reasons = sorted({r.why for _, r in rules if r is not None})
    return "; ".join(reasons)
