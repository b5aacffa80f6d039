"""Large models: streamed compress (the same bytes as the in-memory path, for every --jobs and
executor), external data in and out, and the failures that leave nothing behind."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import SAMPLES
from models import write_matmul_chain

from xorc import api, errors, hsource, onnx_io, parallel, pipeline
from xorc.assemble import assemble
from xorc.cli import cli
from xorc.config import CompressOptions
from xorc.format import map_file, v1


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 x [256, 256] fp32 MatMul weights (1 MiB), 90 % zeros, all in external data."""
    return write_matmul_chain(tmp_path_factory.mktemp("chain"), 256, 4)


def in_memory_blob(model_path: Path, options: CompressOptions) -> bytes:
    """The blob of the path that holds every weight (plan, quantize, encode, assemble)."""
    model = onnx_io.load_model(model_path)
    options = options.resolved(False)
    jobs, left = pipeline.plan_stage(model, options)
    pipeline.quantize_stage(jobs, options, hsource.synthetic_stage(model, jobs, options))
    pipeline.encode_stage(jobs, options)
    for job in jobs:  # as compress_and_measure: how GPTQ on the prior H treated it
        if job.reconstruction is not None:
            stats = {**job.enc.stats, "reconstruction": job.reconstruction}
            job.encoded = dataclasses.replace(job.enc, stats=stats)
    return v1.write(assemble(model, jobs, options, {}, None, extra_meta={"uncompressed": left}))


@pytest.mark.parametrize("policy", ["raw", "importance"])
def test_streamed_blob_is_the_in_memory_blob(tmp_path: Path, policy: str) -> None:
    model = SAMPLES / "fashion_cnn_sparse.onnx"
    options = CompressOptions(policy=policy)
    api.compress(model, tmp_path / "s.xorc", options, jobs=1, min_fidelity=None)
    assert (tmp_path / "s.xorc").read_bytes() == in_memory_blob(model, options)


def test_jobs_give_the_same_bytes(tmp_path: Path, chain: Path) -> None:
    blobs = []
    for n in (1, 2):
        api.compress(chain, tmp_path / f"j{n}.xorc", CompressOptions(policy="raw"), jobs=n)
        blobs.append((tmp_path / f"j{n}.xorc").read_bytes())
    assert blobs[0] == blobs[1]
    assert blobs[0] == in_memory_blob(chain, CompressOptions(policy="raw"))


def test_external_data_is_not_read_at_load(chain: Path) -> None:
    model = onnx_io.load_model(chain)
    assert model.external and not any(t.raw_data for t in model.proto.graph.initializer)
    (w,) = [w for w in onnx_io.find_weights(model) if w.name == "w0"]
    assert w.shape == (256, 256) and w.nbytes == 256 * 256 * 4
    assert w._cache is None
    expect = np.fromfile(chain.parent / "chain.bin", np.float32, 256 * 256).reshape(256, 256)
    np.testing.assert_array_equal(w.array, expect)
    w.release()
    assert w._cache is None
    assert model.source_bytes == chain.stat().st_size + (chain.parent / "chain.bin").stat().st_size


@pytest.mark.parametrize("mode", ["always", "never", "auto"])
def test_decompress_external_data_runs_like_the_original(
    tmp_path: Path, chain: Path, mode: str
) -> None:
    summary = api.compress(chain, tmp_path / "c.xorc", CompressOptions(policy="raw"))
    assert summary.fidelity is not None and summary.fidelity["passed"]
    assert api.verify(tmp_path / "c.xorc").bit_exact
    out = api.decompress(tmp_path / "c.xorc", tmp_path / "d.onnx", mode)
    data = tmp_path / "d.onnx.data"
    assert data.exists() == (mode == "always")  # auto: 1 MiB of weights stays inline
    if mode == "always":
        proto = onnx.load(out, load_external_data=False)
        assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    from xorc import runtime

    x = np.random.default_rng(1).standard_normal((4, 256)).astype(np.float32)
    y0 = runtime.session(chain, "o").run(None, {"x": x})[0]
    y1 = runtime.session(Path(out), "d").run(None, {"x": x})[0]
    cos = (y0 * y1).sum() / np.linalg.norm(y0) / np.linalg.norm(y1)
    assert cos > 0.999


def test_a_full_disk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(container: object, f: object) -> int:
        f.write(b"x" * 100)  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(v1, "write_to", full)
    out = tmp_path / "out" / "m.xorc"
    out.parent.mkdir()
    model = str(SAMPLES / "digits_mlp.onnx")
    result = CliRunner().invoke(cli, ["compress", model, "-o", str(out), "--policy", "raw"])
    assert result.exit_code == 2
    assert "no space left on device" in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(out.parent.iterdir()) == []


def test_a_graph_over_the_protobuf_limit_is_one_line(
    tmp_path: Path, chain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.compress(chain, tmp_path / "c.xorc", CompressOptions(policy="raw"), min_fidelity=None)
    monkeypatch.setattr(onnx_io.load, "PROTOBUF_LIMIT", 100_000)
    out = tmp_path / "d" / "d.onnx"
    out.parent.mkdir()
    args = ["decompress", str(tmp_path / "c.xorc"), "-o", str(out), "--external-data", "never"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 5 and "2 GB" in result.stderr
    assert list(out.parent.iterdir()) == []


def _die(_: int) -> int:
    os._exit(3)


def test_a_dead_worker_is_a_named_error() -> None:
    pool = parallel.Pool(2)
    try:
        with pytest.raises(errors.WorkerDied, match="tensor 'a'"):
            list(pool.map(_die, [1, 2], ["a", "b"]))
    finally:
        pool.close()


def test_dask_blob_is_the_local_blob(
    tmp_path: Path, chain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    root = str(Path(__file__).resolve().parent.parent)  # the workers import this xorc
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )
    options = CompressOptions(policy="raw")
    api.compress(chain, tmp_path / "local.xorc", options, jobs=1, min_fidelity=None)
    with distributed.LocalCluster(
        host="127.0.0.1", n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        executor = f"dask:{cluster.scheduler_address}"
        api.compress(chain, tmp_path / "dask.xorc", options, executor=executor, min_fidelity=None)
    assert (tmp_path / "dask.xorc").read_bytes() == (tmp_path / "local.xorc").read_bytes()
    assert map_file(tmp_path / "dask.xorc")[:8] == v1.MAGIC


def test_cli_jobs_and_external_data(tmp_path: Path, chain: Path) -> None:
    blob, out = tmp_path / "c.xorc", tmp_path / "d.onnx"
    run = CliRunner().invoke
    result = run(cli, ["compress", str(chain), "-o", str(blob), "--policy", "raw", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    result = run(cli, ["decompress", str(blob), "-o", str(out), "--external-data", "always"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.onnx.data").stat().st_size >= 4 * 256 * 256 * 4
    again = run(cli, ["decompress", str(blob), "-o", str(tmp_path / "e.onnx")])
    assert again.exit_code == 0 and not (tmp_path / "e.onnx.data").exists()


def test_verify_accuracy_runs_an_external_data_model_from_its_files(
    tmp_path: Path, chain: Path
) -> None:
    api.compress(chain, tmp_path / "c.xorc", CompressOptions(policy="raw"), min_fidelity=None)
    x = np.random.default_rng(2).standard_normal((16, 256)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x)
    report = api.verify(tmp_path / "c.xorc", model=chain, data=tmp_path / "data.npz")
    assert report.bit_exact and report.accuracy is not None
    assert report.accuracy.output_cosine > 0.999


def test_jobs_need_the_streamed_path(tmp_path: Path) -> None:
    model = SAMPLES / "fashion_cnn_sparse.onnx"
    with pytest.raises(errors.UsageError, match="--jobs"):
        api.compress(
            model,
            tmp_path / "x.xorc",
            CompressOptions(policy="raw"),
            calib=SAMPLES / "fashion_calib.npz",
            jobs=2,
        )


def test_calibration_never_inlines_external_data(
    tmp_path: Path, chain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--calib on a model with external data: the original runs in onnxruntime as its graph
    (the weights read from its folder), GPTQ uses the statistics, the fidelity check runs from
    files; the whole model is never serialized."""

    def whole_model(model: onnx_io.SourceModel) -> bytes:
        raise AssertionError(f"{model.path} serialized with its external data inlined")

    x = np.random.default_rng(3).standard_normal((32, 256)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    monkeypatch.setattr(onnx_io, "serialize", whole_model)
    options = CompressOptions(policy="raw", bits=4)
    summary = api.compress(chain, tmp_path / "c.xorc", options, calib=tmp_path / "calib.npz")
    fid = summary.fidelity
    assert fid is not None and fid["inputs"]["source"] == "calib", fid
    methods = [t["details"]["reconstruction"]["method"] for t in summary.to_json()["tensors"]]
    assert methods == ["gptq"] * 4, methods
