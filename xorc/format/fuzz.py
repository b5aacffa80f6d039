"""Structural mutation of real blobs, for fuzzing the readers past the checksums.

A plain bit flip of a blob is caught by the CRCs (docs/format.md §5 step 5). `mutate` changes
what the records say instead: a field of META, TENSORS or FMAP, a record's shape with a matching
`n_weights`, a codec parameter set to an extreme, the bytes of one stream (with the PAYLOAD laid
out again, §3.4) or of a section; then it writes the sections again with every CRC and the file
digest computed afresh (`v1.write_sections`), so that the result reaches the record parser and
the codec decoders. Deterministic: the same blob and `random.Random` state give the same bytes.

Used by tests/test_fuzz.py (a bounded hypothesis run) and benchmarks/fuzz_container.py; the
runner that classifies the outcomes is `xorc.format.fuzz_run`.
"""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

from xorc.format import v1
from xorc.format.container import align

INF, NAN, DUP = "__XORC_FUZZ_INF__", "__XORC_FUZZ_NAN__", "__XORC_FUZZ_DUP__"
JSON_KINDS = (v1.Kind.META, v1.Kind.TENSORS, v1.Kind.FMAP)
BIG = (
    2**31 - 1,
    2**31,
    2**32,
    2**32 + 1,
    2**40,
    2**53 + 1,
    2**63,
    2**64,
    10**30,
    10**400,
    -(2**63),
)
MUTATOR_ERRORS = (TypeError, KeyError, IndexError, ValueError, AttributeError, OverflowError)
SCALE = (2, 3, 16, 1024, 2**16, 2**20, 2**24, 2**27)


def split(blob: bytes) -> tuple[list[tuple[int, int, bytes]], int]:
    """The (kind, flags, body) of every section of a valid blob, and its required flags."""
    layout = v1.read_layout(blob)
    bodies = [
        (s.kind, s.flags, bytes(blob[s.offset : s.offset + s.length])) for s in layout.sections
    ]
    return bodies, layout.required_flags


def _dumps(obj: Any) -> bytes:
    """JSON with the markers turned into what `json.dumps` cannot write: 1e400, NaN, and a
    key written twice."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    text = text.replace(f'"{INF}"', "1e400").replace(f'"{NAN}"', "NaN")
    marker = f'"{DUP}":"'
    at = text.find(marker)
    while at >= 0:  # the marker key holds the name of the key it duplicates
        start = at + len(marker) - 1
        end = text.find('"', start + 1)
        text = text[:at] + text[start : end + 1] + ":0" + text[end + 1 :]
        at = text.find(marker)
    return text.encode("ascii")


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in a JSON tree (dict keys and list indices)."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:64]):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(obj, path[:-1])[path[-1]] = value
    return obj


def hostile_value(v: Any, rng: random.Random) -> Any:
    """A replacement for the JSON value `v`: a near miss, an extreme, or a wrong type."""
    common = [None, True, 0, -1, "", [], {}, INF, NAN, 1.5, "x" * 5000, "\ud800", "\x00"]
    if isinstance(v, bool):
        choices = [not v, 0, 1, "true"]
    elif isinstance(v, int):
        as_float = float(v) if abs(v) < 2**1000 else INF  # a 400-digit int has no float
        choices = [v + 1, v - 1, v * 2, v // 2, v * 1000, -v, as_float, str(v), [v], *BIG]
    elif isinstance(v, float):
        choices = [INF, NAN, -v, 1e308, 0.0, -1e-320, int(v)]
    elif isinstance(v, str):
        choices = ["", v * 3 if len(v) < 10_000 else v, v[:1], v + "\x7f", v.upper(), "1e400", 12]
    elif isinstance(v, list):
        choices = [
            [],
            v + v if len(v) < 1000 else v,
            v[:-1],
            v[::-1],
            [*v, *(v[:1] or [0])],
            [BIG[2]] * max(1, len(v)),
        ]
        choices += [[rng.choice(BIG), *v[1:]], len(v), [v]]
    elif isinstance(v, dict):
        keys = list(v)
        dropped = {k: x for k, x in v.items() if keys and k != rng.choice(keys)}
        choices = [{}, dropped, {**v, "zz_unknown": 1}, [v]]
        if keys:
            choices.append({**v, DUP: rng.choice(keys)})
    else:
        choices = [0, {}, [], "null"]
    return rng.choice(choices if rng.random() < 0.8 else common)


def mutate_json(doc: Any, rng: random.Random) -> Any:
    """One value somewhere in the JSON tree replaced by `hostile_value`."""
    path = rng.choice(_paths(doc))
    return _set(doc, path, hostile_value(_get(doc, path), rng))


def _product(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def to_bound(rec: dict[str, Any]) -> bool:
    """Grow a non-channel dimension of the record (and `n_weights`) to the most weights its
    codec's decoded-size bound allows for its streams (docs/format.md §5 step 7): the largest
    tensor a hostile blob of this size can make a reader decode. False when it cannot."""
    from xorc.codecs.bounds import SLACK_WEIGHTS
    from xorc.codecs.registry import CODECS

    try:
        shape, n, axis = rec["shape"], rec["n_weights"], rec["axis"]
        bits = 8 * sum(s["length"] for s in rec["streams"][1:])
        limit = CODECS[rec["codec"]].max_weights_per_bit * bits + SLACK_WEIGHTS
        dim = next(i for i in range(len(shape)) if i != axis)
    except (KeyError, TypeError, IndexError, StopIteration):
        return False
    if not isinstance(n, int) or not 0 < n <= limit // 2 or type(shape[dim]) is not int:
        return False
    shape[dim] *= limit // n
    rec["n_weights"] = _product(shape)
    return True


def mutate_record(rec: dict[str, Any], rng: random.Random) -> None:
    """A targeted change that keeps the record self-consistent where the reader checks it
    (shape and `n_weights` together), so that the codec's own checks are reached."""
    op = rng.randrange(5)
    if op == 4 and to_bound(rec):
        return
    shape = rec.get("shape")
    if op == 0 and isinstance(shape, list) and shape and all(type(d) is int for d in shape):
        i = rng.randrange(len(shape))
        shape[i] = 0 if rng.random() < 0.1 else shape[i] * rng.choice(SCALE)
        rec["n_weights"] = _product(shape)
        if rng.random() < 0.5:
            rec["n_nonzero"] = min(rec.get("n_nonzero", 0) or 0, rec["n_weights"])
        return
    params = rec.get("params")
    if op <= 2 and isinstance(params, dict) and params:
        key = rng.choice(sorted(params))
        old = params[key]
        if isinstance(old, list) and old:
            j = rng.randrange(len(old))
            old[j] = rng.choice([0, 1, 24, 32, 33, 64, 4096, 2**24, 2**40, old[j] * 2 + 1])
        else:
            params[key] = rng.choice([0, 1, 2, 24, 32, 33, 64, 256, 4096, 2**24, 2**40])
        return
    structure = rec.get("structure")
    if isinstance(structure, dict) and structure and rng.random() < 0.5:  # docs/format.md §3.6
        field = rng.choice(sorted(structure))
        structure[field] = rng.choice([0, 1, 3, 4096, 4097, 2**31, "crossbar", None])
        return
    key = rng.choice(["codec", "bits", "axis", "n_nonzero", "scale_dtype"])
    rec[key] = rng.choice(
        {
            "codec": [0, 1, 2, 3, 4, 5],
            "bits": [2, 3, 4, 8, 9],
            "axis": [None, 0, 1, 3],
            "n_nonzero": [0, rec.get("n_weights", 0)],
            "scale_dtype": ["float32", "bfloat16", "pow2"],
        }[key]
    )


def hostile_bytes(data: bytes, rng: random.Random) -> bytes:
    """`data` damaged: bits flipped, cut, extended, or replaced."""
    op = rng.randrange(7)
    if op == 0 and data:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if op == 1:
        return data[: rng.randrange(len(data) + 1)]
    if op == 2:
        return data + bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 7, 64))))
    if op == 3:
        return b"\0" * len(data)
    if op == 4:
        return b"\xff" * len(data)
    if op == 5:
        return bytes(rng.getrandbits(8) for _ in range(len(data)))
    return b""


def _relayout(tensors: list[Any], streams: list[list[bytes]]) -> bytes:
    """PAYLOAD again (docs/format.md §3.4), with every record's offsets and lengths set."""
    parts, offset = [], 0
    for rec, datas in zip(tensors, streams, strict=True):
        for ref, data in zip(rec["streams"], datas, strict=True):
            ref["offset"], ref["length"] = offset, len(data)
            parts.append(data + b"\0" * (align(len(data), 8) - len(data)))
            offset = align(offset + len(data), 8)
    return b"".join(parts)


def _mutate_stream(doc: dict[str, Any], payload: bytes, rng: random.Random) -> bytes | None:
    """One stream's bytes damaged and the PAYLOAD laid out again; None when there is none."""
    tensors = doc.get("tensors")
    if not isinstance(tensors, list) or not tensors:
        return None
    streams = [
        [payload[s["offset"] : s["offset"] + s["length"]] for s in t["streams"]] for t in tensors
    ]
    t = rng.randrange(len(tensors))
    candidates = [i for i in range(len(streams[t])) if i or rng.random() < 0.1]
    if not candidates:
        return None
    i = rng.choice(candidates)
    streams[t][i] = hostile_bytes(streams[t][i], rng)
    return _relayout(tensors, streams)


def mutate(blob: bytes, rng: random.Random, rounds: int = 1) -> bytes:
    """`blob` (valid) with `rounds` structural changes, CRCs and digest fixed."""
    bodies, flags = split(blob)
    found = {kind: i for i, (kind, _, _) in enumerate(bodies)}
    docs = {k: json.loads(bodies[found[k]][2]) for k in JSON_KINDS if k in found}
    payload = bodies[found[v1.Kind.PAYLOAD]][2]
    raw_changes: dict[int, bytes] = {}
    for _ in range(rounds):
        # a round that meets what an earlier one broke does nothing
        with contextlib.suppress(*MUTATOR_ERRORS):
            op = rng.choices(("record", "stream", "json", "section", "flags"), (5, 4, 4, 1, 0.2))[0]
            doc = docs[v1.Kind.TENSORS]
            tensors = doc.get("tensors") if isinstance(doc, dict) else None
            if op == "record" and isinstance(tensors, list) and tensors:
                rec = rng.choice(tensors)
                if isinstance(rec, dict):
                    mutate_record(rec, rng)
            elif op == "stream" and isinstance(doc, dict):
                # an earlier round may have broken the records' layout: then nothing to lay out
                with contextlib.suppress(
                    KeyError, TypeError, IndexError, ValueError, AttributeError
                ):
                    payload = _mutate_stream(doc, payload, rng) or payload
            elif op == "json":
                kind = rng.choice(sorted(docs))
                docs[kind] = mutate_json(docs[kind], rng)
            elif op == "section":
                kind = rng.choice([v1.Kind.GRAPH, v1.Kind.PAYLOAD, *docs])
                raw_changes[kind] = hostile_bytes(bodies[found[kind]][2], rng)
            else:
                flags ^= v1.BF16_SCALES
    out = []
    for kind, f, body in bodies:
        if kind in raw_changes:
            body = raw_changes[kind]
        elif kind in docs:
            body = _dumps(docs[kind])
        elif kind == v1.Kind.PAYLOAD:
            body = payload
        out.append((kind, f, body))
    return v1.write_sections(out, flags)
