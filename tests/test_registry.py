"""The codec registry (xorc/codecs/registry.py; docs/adding-a-codec.md): every registered codec
is complete, and the simulator, the area estimate and the `inspect` notes find codecs only
through it."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xorc import report
from xorc.codecs import CodecId, CodecSpec, Hook
from xorc.codecs.decoders import DECODERS, decoder_for
from xorc.codecs.registry import CODECS, codec_for
from xorc.datapath import DatapathConfig, area_estimate, simulate_tensor
from xorc.datapath.timing import Timing
from xorc.errors import BadRecord
from xorc.format import Container, read_bytes
from xorc.tensor import JSON

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden"
CONFIG = DatapathConfig()
NAMES = [spec.name for spec in CODECS.values()]

Vector = tuple[tuple[int, ...], int, dict[str, JSON], dict[str, bytes], list[int]]
"""shape, bits, params, streams, expected levels (C order)."""


# --- golden vectors, one loader per codec ------------------------------------------------------


def _raw() -> Iterator[Vector]:
    container = read_bytes((GOLDEN_DIR / "containers" / "tiny_raw.xorc").read_bytes())
    expected = json.loads((GOLDEN_DIR / "containers" / "tiny_raw.levels.json").read_text())
    for rec in container.tensors:
        streams = container.codec_streams(rec)
        yield tuple(rec.shape), rec.bits, rec.params, streams, expected[rec.name]
    full = read_bytes((GOLDEN_DIR / "containers" / "tiny_full_range.xorc").read_bytes())
    doc = json.loads((GOLDEN_DIR / "containers" / "tiny_full_range.levels.json").read_text())
    (rec,) = full.tensors  # raw `full_range`: the negative-zero code is -128
    yield tuple(rec.shape), rec.bits, rec.params, full.codec_streams(rec), doc["levels"]


def _hex(streams: Mapping[str, str]) -> dict[str, bytes]:
    return {name: bytes.fromhex(data) for name, data in streams.items()}


def _xor() -> Iterator[Vector]:
    for path in sorted((GOLDEN_DIR / "xor").glob("*.json")):
        doc = json.loads(path.read_text())
        levels = np.asarray(doc["values"]).ravel().tolist()
        yield tuple(doc["shape"]), doc["bits"], doc["params"], _hex(doc["streams"]), levels


def _cases(codec: str) -> Iterator[Vector]:
    """The `cases.json` vectors of `tests/golden/<codec>/` (dictionary, insitu)."""
    for case in json.loads((GOLDEN_DIR / codec / "cases.json").read_text()):
        yield (
            tuple(case["shape"]),
            case["bits"],
            case["params"],
            _hex(case["streams"]),
            case["expected"],
        )


def _ebpc() -> Iterator[Vector]:
    """The RTL vectors whose words are 8-bit levels (|v| <= 127), as one-transmission records."""
    for path in sorted((GOLDEN_DIR / "ebpc").glob("ebpc_*_cases.json")):
        doc = json.loads(path.read_text())
        for case in doc["cases"]:
            words = case["input"]
            if not words or max(abs(v) for v in words) > 127:
                continue
            params: dict[str, JSON] = {
                "word_width": doc["word_width"],
                "block_size": doc["block_size"],
                "max_zero_run": doc["max_zero_run"],
                "n_words": [len(words)],
                "znz_bitlen": [case["znz_bitlen"]],
                "bpc_bitlen": [case["bpc_bitlen"]],
            }
            streams = {"znz": case["znz_hex"], "bpc": case["bpc_hex"]}
            yield (len(words),), 8, params, _hex(streams), words


GOLDEN: dict[str, Callable[[], Iterator[Vector]]] = {
    "raw": _raw,
    "xor": _xor,
    "dictionary": functools.partial(_cases, "dictionary"),
    "ebpc": _ebpc,
    "insitu": functools.partial(_cases, "insitu"),
}
"""Where each codec's golden vectors live and how to read them (docs/adding-a-codec.md)."""


# --- every registered codec is complete ---------------------------------------------------------


def test_ids_are_unique_and_match_codec_id() -> None:
    assert len({spec.id for spec in CODECS.values()}) == len(CODECS)
    for key, spec in CODECS.items():
        assert key == spec.id
        assert CodecId(spec.id).name.lower() == spec.name
    assert set(CODECS) == set(CodecId)


@pytest.mark.parametrize("name", NAMES)
def test_spec_document_exists_and_names_the_codec(name: str) -> None:
    spec = _spec(name)
    path = ROOT / spec.doc.split("#")[0]
    assert path.is_file(), spec.doc
    text = path.read_text()
    assert f"`{name}`" in text
    if spec.datapath is None:
        assert "host-only" in text


@pytest.mark.parametrize("name", NAMES)
def test_options_are_a_frozen_dataclass(name: str) -> None:
    options = _spec(name).options
    assert dataclasses.is_dataclass(options)
    assert options.__dataclass_params__.frozen  # type: ignore[attr-defined]
    options()  # every knob has a default


@pytest.mark.parametrize("name", NAMES)
def test_hooks_resolve_to_functions(name: str) -> None:
    spec = _spec(name)
    assert spec.datapath is not None, "every codec so far has a datapath model"
    for hook in (spec.parse, spec.decode, spec.datapath, spec.area, spec.notes):
        if isinstance(hook, Hook):
            assert callable(hook.load()), hook
        else:
            assert hook is None or callable(hook)


@pytest.mark.parametrize("name", NAMES)
def test_golden_vectors_decode_in_both_models(name: str) -> None:
    spec = _spec(name)
    vectors = list(GOLDEN[name]())
    assert vectors, f"no golden vector for codec {name!r}"
    for shape, bits, params, streams, expected in vectors:
        ref = spec.decode(shape, bits, params, streams)
        sim, _ = simulate_tensor(shape, bits, spec.id, params, streams, CONFIG)
        assert ref.shape == sim.shape == shape
        assert ref.ravel().tolist() == expected
        assert np.array_equal(ref, sim)


def test_every_codec_has_golden_vectors() -> None:
    assert set(GOLDEN) == set(NAMES)


def test_decoder_lookup_comes_from_the_registry() -> None:
    assert set(DECODERS) == set(CODECS)
    assert codec_for(CodecId.XOR, "t") is CODECS[CodecId.XOR]
    assert decoder_for(CodecId.XOR, "t") is CODECS[CodecId.XOR].decode
    with pytest.raises(BadRecord, match="tensor 't': unknown codec id 99"):
        decoder_for(99, "t")


def test_datapath_hooks_load_no_reference_decoder_and_no_encoder() -> None:
    """The pipelines are loaded on first use; loading all of them still loads no module of a
    reference decoder (the datapath is a second model) and no encoder."""
    code = (
        "import sys, xorc.datapath\n"
        "from xorc.codecs.registry import CODECS\n"
        "hooks = [h.load() for s in CODECS.values() for h in (s.datapath, s.area) if h]\n"
        "print(','.join(m for m in sys.modules if m.startswith('xorc.codecs.') and "
        "m.rsplit('.', 1)[-1] in ('decode', 'weights_decode', 'core_decode', 'huffman', "
        "'patches', 'mask', 'encode', 'weights_encode', 'solve', 'kmeans', 'huffman_build', "
        "'core_encode')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


# --- the simulator, the area estimate and the notes use the registry only -----------------------


def _toy_run(shape, bits, params, streams, dram, config):  # type: ignore[no-untyped-def]
    dram.fetch("values", streams["values"])
    return np.full(shape, 1, dtype=np.int16), Timing({"toy": 7, "write": 1})


def _toy_area(records, container, config) -> dict[str, dict[str, JSON]]:  # type: ignore[no-untyped-def]
    return {"toy_unit": {"ge": 10.0 + len(records), "formula": "one toy"}}


def _toy_notes(details: Mapping[str, Any]) -> list[str]:
    return ["toy!"] if "toy" in details else []


TOY = CodecSpec(
    id=99,
    name="toy",
    doc="docs/adding-a-codec.md",
    options=dataclasses.make_dataclass("ToyOptions", [], frozen=True),
    parse=lambda shape, bits, params: None,
    decode=lambda shape, bits, params, streams: np.ones(shape, dtype=np.int16),
    datapath=_toy_run,
    area=_toy_area,
    notes=_toy_notes,
)


def test_a_registered_codec_is_simulated_estimated_and_noted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(BadRecord):
        simulate_tensor((3,), 8, TOY.id, {}, {"values": b"\x01"}, CONFIG)
    monkeypatch.setitem(CODECS, TOY.id, TOY)
    levels, counters = simulate_tensor((3,), 8, TOY.id, {}, {"values": b"\x01"}, CONFIG)
    assert levels.tolist() == [1, 1, 1]
    assert counters.bound == "toy"
    assert counters.stream_bytes == 1
    est = area_estimate(Container({}, (), b"", b""), CONFIG)
    assert est.units["toy_unit"]["ge"] == 10.0
    assert report._notes({"toy": 1}) == "toy!"
    monkeypatch.setitem(CODECS, TOY.id, dataclasses.replace(TOY, datapath=None))
    with pytest.raises(BadRecord, match="no datapath model"):
        simulate_tensor((3,), 8, TOY.id, {}, {"values": b"\x01"}, CONFIG)


def _spec(name: str) -> CodecSpec:
    return next(spec for spec in CODECS.values() if spec.name == name)
