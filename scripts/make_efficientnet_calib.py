#!/usr/bin/env python3
"""Build ``sample_models/efficientnet_calib.npz``: calibration data for EfficientNet-Lite0 that
shares no image with ``photos.npz`` (the evaluation views), for ``xorc compress --calib``.

Images: ten pictures bundled in the scikit-image 0.26.0 wheel (skimage/data/) whose docstrings
state CC0, public domain or no known copyright restrictions (copied verbatim to
``sample_models/LICENSE.efficientnet-calib``): brick, clock, coins, grass, gravel,
hubble_deep_field, immunohistochemistry, retina, text, cell. None is one of photos.npz's five
(chelsea, coffee, camera, astronaut, rocket; ``skimage.data.cat`` is chelsea again and is left
out); the script asserts that no image equals one of those five in pixels either.

Views: VIEWS_PER_IMAGE per image (128 in all), each a seeded random short side S in
SHORT_SIDES, crop position (fx, fy) in [0, 1]^2 and horizontal flip, preprocessed exactly as
photos.npz (``_modelkit.preprocess_view``: resize the shorter side to S with PIL bilinear, crop
224x224; then ``x = (pixel - 127) / 128``, NCHW, float16, which is exact). Greyscale images are
replicated to RGB, as photos.npz does with camera. No labels.

Environment (outside the repo; needs numpy, pillow, scikit-image; no torch)::

    python3 -m venv /work/cvenv
    /work/cvenv/bin/pip install scikit-image==0.26.0 pillow==13.0.0 numpy==2.4.6
    /work/cvenv/bin/python scripts/make_efficientnet_calib.py
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _modelkit as mk

IMAGES = [
    "brick",
    "clock",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "text",
    "cell",
]
EVAL_PHOTOS = ["chelsea", "coffee", "camera", "astronaut", "rocket", "cat"]
VIEWS_PER_IMAGE = 13  # 130 views, the first 128 kept
N_VIEWS = 128
SHORT_SIDES = (224, 256, 288, 320, 384)
SEED = 20240613
OUT_NPZ = mk.SAMPLE_DIR / "efficientnet_calib.npz"
OUT_TERMS = mk.SAMPLE_DIR / "LICENSE.efficientnet-calib"


def load(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, (name, img.shape)
    return img


def check_disjoint(images: dict[str, np.ndarray]) -> None:
    assert not set(images) & set(EVAL_PHOTOS)
    for other in EVAL_PHOTOS:
        ref = load(other)
        for name, img in images.items():
            assert img.shape != ref.shape or not np.array_equal(img, ref), (name, other)


def build() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(SEED)
    images = {n: load(n) for n in IMAGES}
    check_disjoint(images)
    pix, names = [], []
    for _ in range(VIEWS_PER_IMAGE):
        for n in IMAGES:
            short = int(rng.choice(SHORT_SIDES))
            fx, fy = (round(float(v), 3) for v in rng.random(2))
            flip = bool(rng.random() < 0.5)
            pix.append(mk.preprocess_view(images[n], short, fx, fy, flip))
            names.append(f"{n}:S{short}:x{fx}:y{fy}{':flip' if flip else ''}")
    arr = np.stack(pix[:N_VIEWS])
    x32 = ((arr.astype(np.float32) - 127.0) / 128.0).astype(np.float32)
    x16 = x32.astype(np.float16)
    assert np.array_equal(x16.astype(np.float32), x32), "float16 storage must be exact"
    return x16, names[:N_VIEWS]


def write_terms() -> None:
    import skimage
    import skimage.data

    lines = [
        "sample_models/efficientnet_calib.npz holds views of ten images bundled in the PyPI",
        f"wheel scikit-image {skimage.__version__} (skimage/data/), made by",
        "scripts/make_efficientnet_calib.py. Their terms, verbatim from the docstrings in",
        "skimage/data/_fetchers.py:",
        "",
    ]
    for n in IMAGES:
        doc = inspect.getdoc(getattr(skimage.data, n)) or ""
        doc = re.sub(r"Returns\n-+\n.*?(?=\n[^\s\n][^\n]*\n-+\n|\Z)", "", doc, flags=re.S)
        ok = ("CC0", "public domain", "No known copyright restrictions")
        assert any(k in doc for k in ok), (n, doc)
        lines.append(f"----- skimage.data.{n}() -----")
        lines.append(re.sub(r"\n{3,}", "\n\n", doc).strip())
        lines.append("")
    mk.atomic_write_text(OUT_TERMS, "\n".join(lines))


def main() -> None:
    x16, names = build()
    mk.atomic_save_npz(OUT_NPZ, input=x16)
    write_terms()
    print(f"{OUT_NPZ.name}: {x16.shape} {x16.dtype}, {OUT_NPZ.stat().st_size} bytes")
    for i in range(0, len(names), 10):
        print("  " + ", ".join(names[i : i + 10]))


if __name__ == "__main__":
    main()
