"""The rule table of xorc.weight_rules, a case per row, and the shape operators' axis mapping."""

from __future__ import annotations

import pytest

from xorc import weight_rules as wr
from xorc.weight_rules import FLOAT, PREQUANTIZED, QUANTIZE, Graph, Node

MS = "com.microsoft"

# (op, domain, weight input, dtype, shape, attributes, treatment, stored axis)
CASES = [
    ("Conv", "", 1, "float32", (8, 3, 3, 3), {}, QUANTIZE, 0),
    ("Conv", "", 2, "float32", (8, 2), {}, FLOAT, None),
    ("ConvTranspose", "", 1, "float32", (4, 8, 3, 3), {}, QUANTIZE, 1),
    ("ConvTranspose", "", 1, "float32", (8, 1, 2, 2), {"group": 8}, QUANTIZE, 0),  # depthwise
    ("ConvTranspose", "", 2, "float32", (8, 2), {}, FLOAT, None),
    ("Gemm", "", 1, "float32", (16, 8), {"transB": 1}, QUANTIZE, 0),
    ("Gemm", "", 0, "float32", (16, 8), {}, QUANTIZE, 0),
    ("Gemm", "", 2, "float32", (16,), {}, FLOAT, None),
    ("MatMul", "", 1, "float32", (16, 8), {}, QUANTIZE, 1),
    ("MatMul", "", 0, "float32", (16, 8), {}, QUANTIZE, 0),
    ("Gather", "", 0, "float32", (100, 8), {}, QUANTIZE, 0),
    ("Einsum", "", 1, "float32", (8, 16), {"equation": "bti,io->bto"}, QUANTIZE, 1),
    ("LSTM", "", 1, "float32", (2, 40, 12), {}, QUANTIZE, 1),
    ("GRU", "", 2, "float32", (1, 30, 10), {}, QUANTIZE, 1),
    ("RNN", "", 1, "float32", (1, 10, 12), {}, QUANTIZE, 1),
    ("LSTM", "", 3, "float32", (2, 80), {}, FLOAT, None),
    ("GRU", "", 3, "float32", (1, 60), {}, FLOAT, None),
    ("RNN", "", 5, "float32", (1, 2, 10), {}, FLOAT, None),
    ("DequantizeLinear", "", 0, "uint8", (8, 3, 3, 3), {}, PREQUANTIZED, None),
    ("QLinearConv", "", 3, "int8", (8, 3, 3, 3), {}, PREQUANTIZED, None),
    ("QLinearMatMul", "", 3, "int8", (16, 8), {}, PREQUANTIZED, None),
    ("ConvInteger", "", 1, "uint8", (8, 3, 3, 3), {}, PREQUANTIZED, None),
    ("MatMulInteger", "", 1, "uint8", (16, 8), {}, PREQUANTIZED, None),
    ("DynamicQuantizeLSTM", MS, 1, "int8", (2, 12, 40), {}, PREQUANTIZED, None),
    ("DynamicQuantizeLSTM", MS, 2, "int8", (2, 10, 40), {}, PREQUANTIZED, None),
    ("DynamicQuantizeLSTM", MS, 3, "float32", (2, 80), {}, FLOAT, None),
    ("MatMulIntegerToFloat", MS, 1, "int8", (16, 8), {}, PREQUANTIZED, None),
    ("DynamicQuantizeMatMul", MS, 1, "int8", (16, 8), {}, PREQUANTIZED, None),
    ("QGemm", MS, 3, "int8", (16, 8), {}, PREQUANTIZED, None),
    ("Cast", "", 0, "int8", (16, 8), {"to": 1}, PREQUANTIZED, None),
    ("DequantizeLinear", "", 1, "float32", (16,), {}, FLOAT, None),
    *(
        (op, "", 1, "float32", (16,), {}, FLOAT, None)
        for op in (
            "BatchNormalization",
            "LayerNormalization",
            "InstanceNormalization",
            "GroupNormalization",
            "RMSNormalization",
            "SimplifiedLayerNormalization",
            "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization",
        )
    ),
    *(
        (op, "", 1, "float32", (16, 8), {}, FLOAT, None)
        for op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "PRelu", "Sum", "Mean")
    ),
]


def _decide(op, domain, index, dtype, shape, attrs):
    inputs = [f"in{k}" for k in range(max(index + 1, 2))]
    inputs[index] = "w"
    graph = Graph([Node(op, "n", tuple(inputs), ("out",), attrs, domain)], {})
    return wr.decide(graph, "w", shape, dtype)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}:{c[2]}:{c[3]}" for c in CASES])
def test_rule_row(case) -> None:
    op, domain, index, dtype, shape, attrs, treatment, axis = case
    d = _decide(op, domain, index, dtype, shape, attrs)
    assert (d.treatment, d.axis) == (treatment, axis)
    if treatment == FLOAT:
        assert d.reason


def test_every_row_has_a_case() -> None:
    covered = {(c[0], c[1], c[2]) for c in CASES}
    for rule in wr.RULES:
        assert any((rule.op_type, rule.domain, i) in covered for i in (rule.inputs or range(8))), (
            f"no test case for rule {rule.op_type} {rule.inputs}"
        )


def test_an_operator_without_a_rule_is_named() -> None:
    d = _decide("TopK", "", 0, "float32", (16, 8), {})
    assert d.treatment == FLOAT and d.reason == "TopK input 0 has no rule"


def test_small_unused_and_float_int_tensors() -> None:
    assert _decide("MatMul", "", 1, "float32", (2, 3), {}).kind == "small"
    assert wr.decide(Graph([], {}), "w", (16, 8), "float32").kind == "unused"
    zp = _decide("DequantizeLinear", "", 2, "uint8", (16,), {})  # a zero point stays
    assert zp.treatment == FLOAT


def test_einsum_without_an_output_only_subscript_is_per_tensor() -> None:
    d = _decide("Einsum", "", 1, "float32", (8, 8), {"equation": "ij,ij->i"})
    assert (d.treatment, d.axis) == (QUANTIZE, None)


def _chain(*nodes: Node, consts: dict | None = None) -> Graph:
    return Graph(list(nodes), consts or {})


@pytest.mark.parametrize(
    ("shape_op", "consts", "shape", "axis"),
    [
        (Node("Transpose", "t", ("w",), ("v",), {"perm": (1, 0)}), {}, (6, 5), 0),
        (Node("Transpose", "t", ("w",), ("v",)), {}, (6, 5), 0),  # default perm reverses
        (Node("Reshape", "r", ("w", "s"), ("v",)), {"s": (6, 6)}, (3, 2, 6), 2),
        (Node("Reshape", "r", ("w", "s"), ("v",)), {"s": (0, -1)}, (5, 6), 1),
        (Node("Unsqueeze", "u", ("w", "a"), ("v",)), {"a": (0,)}, (5, 6), 1),
        (Node("Identity", "i", ("w",), ("v",)), {}, (5, 6), 1),
        (Node("Cast", "c", ("w",), ("v",), {"to": 1}), {}, (5, 6), 1),
        (Node("Flatten", "f", ("w",), ("v",), {"axis": 1}), {}, (5, 2, 3), None),
        (
            Node("Slice", "s", ("w", "b", "e", "x"), ("v",)),
            {"b": (0,), "e": (3,), "x": (1,)},
            (5, 6),
            1,
        ),
    ],
)
def test_axis_through_shape_operators(shape_op: Node, consts: dict, shape: tuple, axis) -> None:
    """The MatMul reads [K, N] after the shape operator; its output axis N, in stored axes."""
    graph = _chain(shape_op, Node("MatMul", "mm", ("x", "v"), ("y",)), consts=consts)
    d = wr.decide(graph, "w", shape, "float32")
    assert (d.treatment, d.axis) == (QUANTIZE, axis)


def test_squeeze_and_concat_keep_the_gate_axis() -> None:
    """Silero VAD's LSTM: W [4H, I] sliced into gates, concatenated, unsqueezed to [1, 4H, I]."""
    graph = _chain(
        Node("Slice", "s", ("w", "b", "e", "x"), ("g",)),
        Node("Concat", "c", ("g", "g2"), ("wc",), {"axis": 0}),
        Node("Unsqueeze", "u", ("wc", "a"), ("wu",)),
        Node("LSTM", "l", ("x", "wu", "r"), ("y",)),
        consts={"b": (0,), "e": (8,), "x": (0,), "a": (0,)},
    )
    assert wr.decide(graph, "w", (32, 12), "float32").axis == 0


def test_tied_embedding_agrees_and_disagreeing_consumers_are_per_tensor() -> None:
    tied = _chain(
        Node("Gather", "g", ("w", "ids"), ("e",)),
        Node("Transpose", "t", ("w",), ("wt",), {"perm": (1, 0)}),
        Node("MatMul", "mm", ("h", "wt"), ("y",)),
    )
    assert wr.decide(tied, "w", (50, 16), "float32").axis == 0
    both = _chain(Node("MatMul", "a", ("x", "w"), ("y",)), Node("MatMul", "b", ("w", "x"), ("z",)))
    d = wr.decide(both, "w", (16, 8), "float32")
    assert (d.treatment, d.axis) == (QUANTIZE, None) and "disagree" in d.reason
