"""The policy registry (xorc/policies.py) and the pipeline's per-tensor jobs (xorc/pipeline.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from models import tiny_cnn, tiny_inputs

from xorc import api, bias, hsource, onnx_io, pipeline, policies
from xorc.assemble import assemble
from xorc.codecs import CodecId
from xorc.config import CompressOptions
from xorc.errors import ConfigError, UsageError
from xorc.policies import POLICIES, Policy
from xorc.quantize import quantize
from xorc.tensor import QuantTensor


def _tensor(seed: int = 0) -> QuantTensor:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(16, 24)).astype(np.float32)
    w[rng.random(w.shape) < 0.8] = 0
    levels, scales = quantize(w, 6, 0, "float32")
    return QuantTensor("w", levels, 6, scales, 0, importance=np.ones(w.shape, np.float32))


def test_names_are_the_options_and_the_cli_choices() -> None:
    from xorc.cli import compress

    (choice,) = [p for p in compress.params if p.name == "policy"]
    assert tuple(choice.type.choices) == policies.NAMES == tuple(POLICIES)
    for name in policies.NAMES:
        assert CompressOptions(policy=name).policy == name
    with pytest.raises(ConfigError, match="one of raw, all"):
        CompressOptions(policy="nope")
    with pytest.raises(UsageError, match="unknown policy 'nope'"):
        policies.get("nope")


@pytest.mark.parametrize("name", policies.NAMES)
def test_every_policy_encodes_with_its_codec(name: str) -> None:
    p = POLICIES[name]
    options = CompressOptions(policy=name)
    settings = options.settings_for("w", [])
    codec_options = p.codec_options(settings, options)
    assert dataclasses.is_dataclass(codec_options)
    assert type(codec_options).__module__ == f"xorc.codecs.{CodecId(p.codec).name.lower()}.options"
    q = _tensor()
    e = p.encode(q, settings, options)
    assert e.codec in (p.codec, CodecId.RAW)  # a codec may fall back to raw per tensor
    if p.lossless:
        np.testing.assert_array_equal(e.decoded, q.values)


@pytest.mark.parametrize("name", policies.SEARCHABLE)
def test_search_knob_builds_trials_that_shrink(name: str) -> None:
    knob = POLICIES[name].search
    assert knob is not None and list(knob.grid) == sorted(knob.grid)
    options = CompressOptions(policy=name)
    codec_options = POLICIES[name].codec_options(options.settings_for("w", []), options)
    q = _tensor(1)
    encode_at = knob.make([q], [codec_options], [None])
    size = [sum(map(len, encode_at(v)[0].streams.values())) for v in (knob.grid[0], knob.grid[-1])]
    assert size[1] <= size[0]


def test_lossless_and_searchable_follow_the_records() -> None:
    assert set(policies.LOSSLESS) == {"raw", "all", "ebpc"}
    assert set(policies.SEARCHABLE) == {"importance", "dictionary", "insitu"}
    assert [p.name for p in POLICIES.values() if p.records_fmap] == ["ebpc"]


def _tiny(tmp_path: Path) -> tuple[Path, Path]:
    model, calib = tmp_path / "m.onnx", tmp_path / "c.npz"
    onnx.save(tiny_cnn(), model)
    np.savez(calib, x=tiny_inputs(64, seed=5))
    return model, calib


def test_compress_leaves_the_source_model_unchanged(tmp_path: Path) -> None:
    """Bias correction returns the new biases; the stored graph gets them, the source does
    not (it used to be edited in place)."""
    model, calib = _tiny(tmp_path)
    source = onnx_io.load_model(model)
    before = source.proto.SerializeToString(deterministic=True)
    options = CompressOptions(policy="all", bits=4, sparsity=0.5)
    jobs = pipeline.plan_tensors(source, options)
    stats = hsource.calibration_stage(source, jobs, calib)
    pipeline.quantize_stage(jobs, options, stats)
    pipeline.encode_stage(jobs, options)
    biases = bias.bias_stage(source, jobs, stats)
    assert biases and any(j.bias_corrected for j in jobs)
    container = assemble(source, jobs, options, biases)
    assert source.proto.SerializeToString(deterministic=True) == before
    stored = onnx.load_from_string(container.graph)
    name = next(iter(biases))
    (init,) = [i for i in stored.graph.initializer if i.name == name]
    np.testing.assert_allclose(onnx.numpy_helper.to_array(init), biases[name], rtol=1e-6)
    corrected = {r.name for r in container.tensors if r.stats.get("bias_corrected")}
    assert corrected == {j.name for j in jobs if j.bias_corrected}


def test_a_new_policy_is_one_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy registered in POLICIES alone compresses, is recorded in the blob, and the blob
    reads and verifies (readers never interpret the policy's name)."""
    raw = POLICIES["raw"]
    toy = dataclasses.replace(raw, name="toy-raw", summary="raw under another name")
    monkeypatch.setitem(POLICIES, "toy-raw", toy)
    model, _ = _tiny(tmp_path)
    blob = tmp_path / "t.xorc"
    summary = api.compress(model, blob, CompressOptions(policy="toy-raw"))
    assert {t.policy for t in summary.tensors} == {"toy-raw"}
    monkeypatch.delitem(POLICIES, "toy-raw")  # a reader that never heard of it
    assert {t.policy for t in api.inspect(blob).tensors} == {"toy-raw"}
    assert api.verify(blob).bit_exact


def test_plan_refuses_a_lossy_policy_on_int8_weights(tmp_path: Path) -> None:
    from models import quantized_matmul

    from xorc.errors import UnsupportedModel

    path = tmp_path / "q.onnx"
    onnx.save(quantized_matmul(), path)
    source = onnx_io.load_model(path)
    with pytest.raises(UnsupportedModel, match="policy 'dictionary' is lossy"):
        pipeline.plan_tensors(source, CompressOptions(policy="dictionary"))
    jobs = pipeline.plan_tensors(source, CompressOptions(policy="ebpc"))
    assert jobs and all(j.prequantized and j.policy is POLICIES["ebpc"] for j in jobs)


def test_policy_records_are_frozen() -> None:
    p: Policy = POLICIES["all"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lossless = False  # type: ignore[misc]
