"""Shared helpers for the sample-model build scripts in this folder.

Not part of the ``xorc`` package: only the ``scripts/make_*.py`` scripts import it,
and they run in the separate model-building venv described in
``scripts/requirements-models.txt``::

    python3 -m venv /work/tvenv
    /work/tvenv/bin/pip install -r scripts/requirements-models.txt

Everything here writes files atomically (temporary file in the same folder, then
``os.replace``) so an interrupted run never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "sample_models"


def seed_everything(seed: int, threads: int = 2) -> None:
    """Fix every RNG we use and pin torch to ``threads`` CPU threads."""
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - torch and its helpers read the global state
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` into memory, then an atomic write."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _atomic_write_bytes(path, buf.getvalue())


def atomic_save_onnx(path: Path, model) -> None:
    """Serialise an ``onnx.ModelProto`` (all weights inline) atomically."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    _atomic_write_bytes(path, model.SerializeToString())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_logits(sess, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """Run ``sess`` on ``x`` in batches (input ``input``, output ``logits``)."""
    outs = [sess.run(["logits"], {"input": x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def describe_onnx(path: Path) -> dict:
    """Opset, op histogram, weight count and the I/O signature of an ONNX file."""
    from collections import Counter

    import onnx

    m = onnx.load(str(path))
    ops = Counter(n.op_type for n in m.graph.node)
    n_params = 0
    for init in m.graph.initializer:
        n = 1
        for d in init.dims:
            n *= d
        n_params += n

    def sig(vi):
        dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
        return f"{vi.name}{dims}"

    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    return {
        "opset": opset,
        "ops": dict(sorted(ops.items())),
        "n_nodes": len(m.graph.node),
        "n_initializer_params": n_params,
        "inputs": [sig(v) for v in m.graph.input],
        "outputs": [sig(v) for v in m.graph.output],
        "size_bytes": os.path.getsize(path),
    }


def check_io_contract(path: Path, in_rank: int) -> None:
    """Assert: one float input ``input`` with a symbolic batch dim, one output ``logits``."""
    import onnx

    m = onnx.load(str(path))
    init_names = {i.name for i in m.graph.initializer}
    inputs = [v for v in m.graph.input if v.name not in init_names]
    assert [v.name for v in inputs] == ["input"], [v.name for v in inputs]
    assert [v.name for v in m.graph.output] == ["logits"], [v.name for v in m.graph.output]
    t = inputs[0].type.tensor_type
    assert t.elem_type == onnx.TensorProto.FLOAT
    assert len(t.shape.dim) == in_rank
    assert t.shape.dim[0].dim_param, "batch dimension must be dynamic"
    out0 = m.graph.output[0].type.tensor_type.shape.dim[0]
    assert out0.dim_param, "output batch dimension must be dynamic"


def preprocess_view(img: np.ndarray, short: int, fx: float, fy: float, flip: bool) -> np.ndarray:
    """uint8 HxWx3 -> int16 3x224x224 pixel values (before scaling)."""
    from PIL import Image

    pil = Image.fromarray(img)
    w, h = pil.size
    if w <= h:
        nw, nh = short, round(h * short / w)
    else:
        nw, nh = round(w * short / h), short
    pil = pil.resize((nw, nh), Image.BILINEAR)
    left = round(fx * (nw - 224))
    top = round(fy * (nh - 224))
    pil = pil.crop((left, top, left + 224, top + 224))
    if flip:
        pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
    arr = np.asarray(pil, dtype=np.uint8)
    assert arr.shape == (224, 224, 3), arr.shape
    return arr.transpose(2, 0, 1).astype(np.int16)
