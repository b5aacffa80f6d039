"""How a tensor's axes move through the shape operators (docs/weights.md §1): for each axis of
an operator's output, the axis of the stored tensor it is (or None), and the output's shape.

A companion of xorc.weight_rules, on the same plain `Node` data.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xorc.weight_rules import Node

Shape = tuple[int, ...] | None
Origin = tuple[int | None, ...] | None


def through(
    node: Node, shape: Shape, origin: Origin, consts: dict[str, tuple[int, ...]]
) -> tuple[Shape, Origin]:
    """The shape of a shape operator's output, and which stored axis each of its axes is."""
    if shape is None or origin is None:
        return None, None
    op = node.op_type
    if op in ("Identity", "Cast"):
        return shape, origin
    if op in ("Split", "Concat"):  # the axes stay; the split/concatenated one changes size
        a = int(node.attrs.get("axis", 0))  # type: ignore[arg-type]
        a = a + len(shape) if a < 0 else a
        return tuple(-1 if k == a else d for k, d in enumerate(shape)), origin
    if op == "Transpose":
        perm = node.attrs.get("perm") or tuple(reversed(range(len(shape))))
        perm = tuple(perm)  # type: ignore[arg-type]
        return tuple(shape[p] for p in perm), tuple(origin[p] for p in perm)
    if op in ("Squeeze", "Unsqueeze"):
        axes = _axes(node, consts)
        return _squeeze(shape, origin, axes) if op == "Squeeze" else _unsqueeze(shape, origin, axes)
    if op == "Slice":
        return _slice(node, shape, origin, consts)
    if op == "Flatten":
        a = int(node.attrs.get("axis", 1))  # type: ignore[arg-type]
        a = a + len(shape) if a < 0 else a
        return _reshaped(shape, origin, (prod(shape[:a]), prod(shape[a:])))
    target = consts.get(node.inputs[1]) if len(node.inputs) > 1 else None  # Reshape
    if target is None:
        return None, None
    return _reshaped(shape, origin, _resolve(shape, target, bool(node.attrs.get("allowzero"))))


def _axes(node: Node, consts: dict[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    if "axes" in node.attrs:
        return tuple(node.attrs["axes"])  # type: ignore[arg-type]
    if len(node.inputs) > 1 and node.inputs[1]:
        return consts.get(node.inputs[1])
    return None


def _squeeze(shape: tuple[int, ...], origin: tuple, axes: tuple[int, ...] | None) -> tuple:
    n = len(shape)
    gone = {a % n for a in axes} if axes is not None else {k for k, d in enumerate(shape) if d == 1}
    keep = [k for k in range(n) if k not in gone]
    return tuple(shape[k] for k in keep), tuple(origin[k] for k in keep)


def _unsqueeze(shape: tuple[int, ...], origin: tuple, axes: tuple[int, ...] | None) -> tuple:
    if axes is None:
        return None, None
    n = len(shape) + len(axes)
    new = {a % n for a in axes}
    dims, orig = iter(shape), iter(origin)
    out_shape = tuple(1 if k in new else next(dims) for k in range(n))
    out_origin = tuple(None if k in new else next(orig) for k in range(n))
    return out_shape, out_origin


def _slice(node: Node, shape: tuple[int, ...], origin: tuple, consts: dict) -> tuple:
    names = list(node.inputs[1:5]) + [""] * 4
    starts, ends, axes, steps = (consts.get(n) if n else None for n in names[:4])
    if "starts" in node.attrs:  # opset < 10
        starts, ends = node.attrs["starts"], node.attrs["ends"]  # type: ignore[assignment]
        axes = node.attrs.get("axes")  # type: ignore[assignment]
    if starts is None or ends is None:
        return None, origin
    axes = axes or tuple(range(len(starts)))
    steps = steps or (1,) * len(starts)
    out = list(shape)
    for s, e, a, st in zip(starts, ends, axes, steps, strict=False):
        a = a % len(shape)
        out[a] = len(range(*slice(s, e, st).indices(shape[a])))
    return tuple(out), origin


def _resolve(shape: tuple[int, ...], target: tuple[int, ...], allowzero: bool) -> tuple[int, ...]:
    dims = [
        shape[k] if d == 0 and not allowzero and k < len(shape) else d for k, d in enumerate(target)
    ]
    if -1 in dims:
        known = prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = prod(shape) // known if known else 0
    return tuple(dims)


def _reshaped(shape: tuple[int, ...], origin: tuple, out: tuple[int, ...]) -> tuple:
    """An axis survives a reshape when it stays a block of its own: same size, same product
    of the dimensions before it."""
    if min(shape, default=1) < 0 or prod(out) != prod(shape):
        return None, None
    before = {prod(shape[:i]): i for i in range(len(shape))}
    mapped = []
    for j, d in enumerate(out):
        i = before.get(prod(out[:j]))
        mapped.append(origin[i] if i is not None and shape[i] == d and d > 1 else None)
    return out, tuple(mapped)
