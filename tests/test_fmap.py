"""Feature-map analysis (xorc/fmap.py): quantizers, baseline sizes, ratios, the result record."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xorc.fmap as fmap
from xorc.codecs.ebpc import encode
from xorc.errors import BitMismatch, UsageError


def relu_maps(batch: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Smooth, sparse post-ReLU-like maps of two conv layers and one FC layer."""
    rng = np.random.default_rng(seed)

    def field(shape: tuple[int, ...]) -> np.ndarray:
        x = np.cumsum(np.cumsum(rng.normal(size=shape), axis=-1), axis=-2)
        return np.maximum(x - 2, 0).astype(np.float32)

    return {
        "conv1": field((batch, 8, 16, 16)),
        "conv2": field((batch, 16, 8, 8)) * 3,
        "fc": np.maximum(rng.normal(size=(batch, 64)), 0).astype(np.float32),
    }


def test_paper_quantizer() -> None:
    x = {"a": np.array([[0.0, 1.0, 2.0, 4.0]], dtype=np.float32)}
    scales = fmap.paper_scales(x, 8)
    assert scales["a"] == pytest.approx(4.0 / (0.75 * 127))
    q = fmap.quantize(x["a"], scales["a"], 8, "paper")
    assert q.dtype == np.int8
    assert q.tolist() == [[0, 23, 47, 95]]  # trunc(0.75 * 127 * x / 4)
    assert fmap.quantize(np.array([-4.0]), scales["a"], 8, "paper").tolist() == [-95]


def test_deploy_quantizer() -> None:
    rng = np.random.default_rng(1)
    x = {"a": np.abs(rng.normal(size=(4, 10000))).astype(np.float32)}
    scales = fmap.calibrate(x, 8)
    p = float(np.percentile(np.abs(x["a"]), 99.99))
    assert scales["a"] == pytest.approx(p / 127)
    q = fmap.quantize(x["a"], scales["a"], 8, "deploy")
    assert q.max() == 127 and q.min() == 0
    np.testing.assert_array_equal(q, np.clip(np.rint(x["a"] / scales["a"]), -127, 127))
    q12 = fmap.quantize(x["a"], fmap.calibrate(x, 12)["a"], 12, "deploy")
    assert q12.dtype == np.int16 and q12.max() == 2047


def test_baseline_sizes_by_hand() -> None:
    values = np.array([5, 0, 0, 7] + [0] * 17, dtype=np.int8)
    e = encode(values)
    # ZNZ: 1, 0 0001 (run 2), 1, 0 1111 (16 zeros), 0 0000 (1 zero) = 1 + 5 + 1 + 5 + 5
    assert e.znz_bitlen == 17
    assert fmap.zero_rle_bits(e.znz_bitlen, 2, 8) == 17 + 16
    assert fmap.zvc_bits(values.size, 2, 8) == 21 + 16


def test_analyze_counts_every_map() -> None:
    maps = relu_maps()
    calls: list[int] = []
    result = fmap.analyze(maps, 8, "paper", progress=calls.append)
    assert calls == [1, 2, 3]
    assert result.n_inputs == 3 and result.word_width == 8
    assert [layer.name for layer in result.layers] == ["conv1", "conv2", "fc"]
    scales = fmap.paper_scales(maps, 8)
    for layer in result.layers:
        for i in range(3):
            q = fmap.quantize(maps[layer.name][i], scales[layer.name], 8, "paper")
            e = encode(q.ravel())
            z = int(np.count_nonzero(q))
            assert layer.sizes["ebpc"][i] == e.compressed_bits
            assert layer.sizes["ebpc_padded"][i] == e.padded_bits
            assert layer.sizes["zero_rle"][i] == e.znz_bitlen + 8 * z
            assert layer.sizes["zvc"][i] == q.size + 8 * z
            assert layer.raw_bits[i] == q.size * 8
    raw = np.sum([layer.raw_bits for layer in result.layers], axis=0)
    comp = np.sum([layer.sizes["ebpc"] for layer in result.layers], axis=0)
    assert result.network_ratio("ebpc") == pytest.approx(float(np.mean(raw / comp)))
    assert result.layers[0].ratio("zvc") == pytest.approx(
        float(np.mean(np.array(result.layers[0].raw_bits) / result.layers[0].sizes["zvc"]))
    )


def test_to_json_is_plain() -> None:
    result = fmap.analyze(relu_maps(2), 8, "deploy")
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["method"] == "deploy" and doc["n_inputs"] == 2
    assert set(doc["network"]["ratios"]) == set(fmap.CODINGS)
    assert len(doc["network"]["per_input"]["ebpc"]) == 2
    layer = doc["layers"][0]
    for key in ("name", "scale", "bits", "method", "ratio", "raw_bits", "compressed_bits"):
        assert key in layer
    assert layer["raw_bits"] == 2 * 8 * 16 * 16 * 8
    rows = fmap.summary_rows(result)
    assert rows[-1][0] == "network" and len(rows) == 4


def test_ebpc_beats_sparsity_coders_on_smooth_maps() -> None:
    result = fmap.analyze(relu_maps(2, seed=4), 8, "paper")
    assert result.ebpc_gain > 0


def test_streaming_accumulator_matches_analyze() -> None:
    maps = relu_maps(2)
    scales = fmap.calibrate(maps, 12)
    acc = fmap.FmapAccumulator(scales, 12, "deploy", block_size=16)
    for i in range(2):
        acc.add({k: v[i] for k, v in maps.items()})
    streamed = acc.result()
    whole = fmap.analyze(maps, 12, "deploy", block_size=16)
    assert streamed.word_width == 16
    assert streamed.to_json() == whole.to_json()


def test_separate_calibration_maps() -> None:
    maps = relu_maps(2)
    calib = {k: v * 2 for k, v in maps.items()}
    result = fmap.analyze(maps, 8, "deploy", calibration=calib)
    assert result.layers[0].scale == pytest.approx(fmap.calibrate(calib, 8)["conv1"])


def test_mismatch_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(records: list) -> list:
        return [np.zeros(r.n_words, dtype=np.int8) for r in records]

    monkeypatch.setattr(fmap, "decode_many", broken)
    with pytest.raises(BitMismatch, match="conv1"):
        fmap.analyze(relu_maps(1), 8)


def test_bad_arguments() -> None:
    maps = relu_maps(1)
    with pytest.raises(UsageError):
        fmap.analyze(maps, 8, "magic")
    with pytest.raises(UsageError):
        fmap.analyze(maps, 1)
    with pytest.raises(UsageError):
        fmap.analyze({"a": np.zeros((2, 4)), "b": np.zeros((3, 4))}, 8)
    with pytest.raises(UsageError):
        fmap.FmapAccumulator({"a": 1.0}, 8, "paper", block_size=16)
