"""The clipping search of GPTQ (xorc/reconstruct.py) and per-layer sparsity with OBS pruning
(xorc/allocate.py, `--sparsity-scope global`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xorc import allocate, api, hessian, reconstruct
from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.format import read_bytes, read_file
from xorc.hessian import Hessian
from xorc.quantize import dequantize

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "sample_models" / "digits_mlp.onnx"


def _layer(seed: int, f: int = 40, rows: int = 16) -> tuple[np.ndarray, Hessian, np.ndarray]:
    """Heavy-tailed weights (Student t, as trained layers have) and correlated inputs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, f)) @ (np.eye(f) + 0.3 * rng.normal(size=(f, f)))
    held = rng.normal(size=(2000, f)) @ (np.eye(f) + 0.3 * rng.normal(size=(f, f)))
    w = rng.standard_t(3, size=(rows, f)).astype(np.float32)
    return w, Hessian((x.T @ x / len(x))[None], len(x)), held


def _row_errors(w: np.ndarray, levels: np.ndarray, scales: np.ndarray, h: Hessian) -> np.ndarray:
    d = dequantize(levels, scales, 0).astype(np.float64) - w
    return np.einsum("rf,fk,rk->r", d, h.moment[0], d)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("bits", [3, 4])
def test_clip_search_never_worse_per_row_and_better_overall(bits: int, per_channel: bool) -> None:
    w, h, _ = _layer(bits)
    plain = reconstruct.reconstruct(w, 0, per_channel, h, reconstruct.Method(bits))
    clipped = reconstruct.reconstruct(w, 0, per_channel, h, reconstruct.Method(bits, clip=True))
    e_plain, e_clip = _row_errors(w, *plain[:2], h), _row_errors(w, *clipped[:2], h)
    if per_channel:
        assert (e_clip <= e_plain + 1e-12).all()
    assert e_clip.sum() < 0.9 * e_plain.sum()
    assert clipped[2]["clip"]["ratios"] == list(reconstruct.CLIP_RATIOS)
    assert clipped[2]["clip"]["mean_ratio"] < 1.0
    top = (1 << (bits - 1)) - 1
    assert np.abs(clipped[0]).max() <= top


def test_clip_search_is_off_at_8_bits_and_without_rounding() -> None:
    w, h, _ = _layer(0)
    for method in (
        reconstruct.Method(8, clip=True),
        reconstruct.Method(4, clip=True, rounding=False),
    ):
        _, _, info = reconstruct.reconstruct(w, 0, True, h, method)
        assert "clip" not in info


def test_choose_takes_the_cheapest_zeros_first_and_meets_the_target() -> None:
    # layer "a": 100 weights, cheap to prune; "b": 10 weights, costly
    size = {"a": 100, "b": 10}
    cost = {"a": 0.01, "b": 1.0}

    def run(name: str, s: float) -> allocate.Trial:
        zeros = int(np.ceil(s * size[name]))
        return allocate.Trial(cost[name] * s * s, zeros, None)

    chosen = allocate.choose(["a", "b"], 55, run)
    assert chosen["b"][0] == 0.0 and chosen["a"][0] == pytest.approx(0.6)
    assert sum(t.zeros for _, t in chosen.values()) >= 55
    full = allocate.choose(["a", "b"], 10**6, run, allocate.grid_for(0.99))
    assert {s for s, _ in full.values()} == {0.99}


def test_needed_zeros_counts_those_elsewhere() -> None:
    assert allocate.needed_zeros(0.5, 101, 0) == 51
    assert allocate.needed_zeros(0.5, 101, 60) == 0


@pytest.fixture(scope="module")
def digits_calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = np.load(ROOT / "sample_models" / "digits_test.npz")
    path = tmp_path_factory.mktemp("alloc") / "calib.npz"
    np.savez(path, **{k: v[:128] for k, v in data.items() if k != "labels"})
    return path


def test_global_obs_keeps_the_overall_fraction_and_records_each_layer(
    digits_calib: Path, tmp_path: Path
) -> None:
    blob = tmp_path / "g.xorc"
    options = CompressOptions(bits=8, sparsity=0.6, sparsity_scope="global", policy="raw")
    api.compress(DIGITS, blob, options, calib=digits_calib)
    c = read_bytes(read_file(blob))
    recs = {r.name: r for r in c.tensors}
    chosen = {n: r.stats["reconstruction"]["sparsity"] for n, r in recs.items()}
    assert all(r.stats["reconstruction"]["allocation"] == "global" for r in recs.values())
    assert len(set(chosen.values())) > 1  # not one setting for all
    sizes = {n: int(np.prod(r.shape)) for n, r in recs.items()}
    assert sum(chosen[n] * sizes[n] for n in recs) >= 0.6 * sum(sizes.values()) - 1


def test_global_obs_with_sequential_order_is_a_usage_error() -> None:
    options = CompressOptions(
        sparsity=0.5, sparsity_scope="global", prune="obs", reconstruct_order="sequential"
    )
    with pytest.raises(UsageError):
        options.resolved(True)
    assert CompressOptions(sparsity=0.5, sparsity_scope="global").resolved(True).prune == "obs"
    assert CompressOptions(sparsity=0.5, sparsity_scope="global").resolved(False).prune == (
        "magnitude"
    )


def test_relative_error_matches_the_definition() -> None:
    w, h, _ = _layer(5)
    d = np.random.default_rng(1).normal(size=w.shape) * 0.01
    num = np.einsum("rf,fk,rk->", d, h.moment[0], d)
    den = np.einsum("rf,fk,rk->", w, h.moment[0], w)
    assert hessian.relative_error(w, d, 0, h) == pytest.approx(num / den)
    assert hessian.relative_error(w[:, :5], d[:, :5], 0, h) is None
