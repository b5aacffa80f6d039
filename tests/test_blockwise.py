"""Block-by-block calibration (xorc/blockwise.py): the same bytes as one pass over every
layer, whatever the block budget; sequential reconstruction refused above its limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from models import write_matmul_chain

from xorc import api, blockwise, onnx_io
from xorc.config import CompressOptions
from xorc.errors import UsageError
from xorc.hsource import hessian_specs
from xorc.pipeline import plan_stage

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


def _blob(tmp: Path, name: str, model: Path, options: CompressOptions, calib: Path, **kw) -> bytes:
    out = tmp / f"{name}.xorc"
    api.compress(model, out, options, calib, **kw)
    return out.read_bytes()


def _blocks(model: Path, options: CompressOptions, mib: int) -> int:
    resolved = options.resolved(True)
    jobs, _ = plan_stage(onnx_io.load_model(model), resolved)
    return len(blockwise.plan_blocks(jobs, set(hessian_specs(jobs, resolved)), mib << 20))


def _unblocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blockwise, "applies", lambda options, calib: False)


def test_fashion_blocks_give_the_bytes_of_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OBS pruning, GPTQ and bias correction (kept or not by the fidelity check)."""
    model, calib = SAMPLES / "fashion_cnn.onnx", tmp_path / "calib.npz"
    np.savez(calib, input=np.load(SAMPLES / "fashion_calib.npz")["input"][:64])
    options = CompressOptions(bits=4, sparsity=0.5, policy="raw")
    assert _blocks(model, options, 1) > 2  # a 1 MiB budget forces several passes
    tiny = _blob(tmp_path, "tiny", model, options, calib, calib_memory=1)
    with monkeypatch.context() as m:
        _unblocked(m)
        whole = _blob(tmp_path, "whole", model, options, calib)
    assert tiny == whole


def test_external_data_chain_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = write_matmul_chain(tmp_path / "m", 256, 5, 0.5)
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(3).standard_normal((24, 256), np.float32))
    options = CompressOptions(bits=4, sparsity=0.9, policy="raw")
    assert _blocks(model, options, 1) == 3  # a 512 KiB H each: two per 1 MiB block
    tiny = _blob(tmp_path, "tiny", model, options, tmp_path / "c.npz", calib_memory=1)
    with monkeypatch.context() as m:
        _unblocked(m)
        whole = _blob(tmp_path, "whole", model, options, tmp_path / "c.npz")
    assert tiny == whole


def test_sequential_refused_above_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_matmul_chain(tmp_path / "m", 32, 2, 0.5)
    np.savez(tmp_path / "c.npz", x=np.ones((4, 32), np.float32))
    monkeypatch.setattr(blockwise, "SEQUENTIAL_MAX_BYTES", 1000)
    options = CompressOptions(reconstruct_order="sequential", policy="raw")
    with pytest.raises(UsageError, match="sequential or asymmetric holds every weight"):
        api.compress(model, tmp_path / "s.xorc", options, tmp_path / "c.npz")
