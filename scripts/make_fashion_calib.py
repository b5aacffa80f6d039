"""Make sample_models/fashion_calib.npz: 2,000 labelled Fashion-MNIST *training* images.

    apt-get install -y dataset-fashion-mnist && python scripts/make_fashion_calib.py

Calibration data for `xorc compress --calib` (input statistics, bias correction, --max-drop
searches), kept apart from the test images in fashion_test.npz so that a search tuned on it is
judged on data it has not seen. Same preprocessing as the models: pixel / 255, float32,
[N, 1, 28, 28]. A fixed seed picks the images, so the file is the same on every run.
numpy only; no torch needed.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

DATA = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).resolve().parent.parent / "sample_models" / "fashion_calib.npz"
COUNT = 2000
SEED = 20261122


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    magic, n = struct.unpack_from(">II", raw, 0)
    dims = [n] + [struct.unpack_from(">I", raw, 8 + 4 * i)[0] for i in range((magic & 0xFF) - 1)]
    offset = 4 + 4 * len(dims)
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def main() -> None:
    images = read_idx(DATA / "train-images-idx3-ubyte.gz")
    labels = read_idx(DATA / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    pick = np.sort(np.random.default_rng(SEED).choice(images.shape[0], COUNT, replace=False))
    x = (images[pick].astype(np.float32) / 255.0)[:, None, :, :]
    y = labels[pick].astype(np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, input=x, labels=y)
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, OUT)
    counts = np.bincount(y, minlength=10)
    print(
        f"wrote {OUT.name}: {COUNT} training images, per class {counts.tolist()}, "
        f"{OUT.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
