"""Peak memory of EBPC decoding on valid blobs of about 1 MB and more (issue 15).

    python benchmarks/bench_ebpc_memory.py [--baseline DIR] [--effnet]

Builds valid `--policy ebpc` blobs (8 bits) from one-MatMul models:

* dense: a 1024 x 1024 normal weight (1 M weights, every one non-zero, about 1.3 MB);
* sparse: a 2048 x 4096 weight with 95 % zeros (8.4 M weights, about 1 MB), where the ZNZ
  zero runs make many weights per stream bit;
* with `--effnet`, sample_models/efficientnet_lite0.onnx (4.6 M weights, about 6 MB).

Each blob goes through what the fuzz worker does (`xorc.format.fuzz_run.COMMANDS`: inspect,
verify with both decoders, simulate, decompress), each command in a fresh process after one
small warm-up blob, and the growth of the peak RSS (VmHWM, reset before the command) is printed
per command, in MiB and in bytes per weight of the blob. `--baseline DIR` runs the same blobs
with the xorc package of another checkout (e.g. `git archive main | tar -x -C DIR`) in the same
run, for a before/after table. The fuzz target is under 256 MB of growth for a blob under 1 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURE = """
import json, sys
from xorc.format.fuzz_run import COMMANDS, _reset_peak, _status
blob, warm, name = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read(), sys.argv[3]
for command in COMMANDS.values():
    command(warm)
start = _reset_peak()
COMMANDS[name](blob)
print(json.dumps({'growth': _status('VmHWM') - start}))
"""


def matmul_model(path: Path, weight: np.ndarray) -> None:
    """A model y = x @ W with `weight` as its only initializer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "one_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def build_blobs(folder: Path, effnet: bool) -> dict[str, tuple[Path, int]]:
    """The blobs measured, by name: (path, weights)."""
    from xorc import api
    from xorc.config import CompressOptions

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(1024, 1024))
    sparse = rng.normal(size=(2048, 4096)) * (rng.random((2048, 4096)) >= 0.95)
    models = {"dense 1024x1024": dense, "sparse 95% 2048x4096": sparse}
    out = {}
    options = CompressOptions(policy="ebpc", bits=8)
    for i, (name, weight) in enumerate(models.items()):
        onnx_path, blob = folder / f"m{i}.onnx", folder / f"m{i}.xorc"
        matmul_model(onnx_path, weight)
        api.compress(onnx_path, blob, options)
        out[name] = (blob, weight.size)
    if effnet:
        blob = folder / "effnet.xorc"
        api.compress(ROOT / "sample_models" / "efficientnet_lite0.onnx", blob, options)
        out["efficientnet_lite0"] = (blob, 4_600_000)
    warm = folder / "warm.xorc"
    api.compress(ROOT / "sample_models" / "digits_mlp.onnx", warm, options)
    out["(warm-up)"] = (warm, 0)
    return out


def growth(tree: Path, blob: Path, warm: Path, command: str) -> int:
    """Peak RSS growth in bytes of one command on `blob`, with the xorc package of `tree`."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(blob), str(warm), command],
        env=env,
        cwd=tree,  # `python -c` puts the working folder first on sys.path
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        return -1  # printed as "failed"
    return int(json.loads(done.stdout.splitlines()[-1])["growth"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--effnet", action="store_true", help="also EfficientNet-Lite0")
    args = parser.parse_args()
    from xorc.format.fuzz_run import COMMANDS

    trees = {"this tree": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), **trees}
    with tempfile.TemporaryDirectory() as tmp:
        blobs = build_blobs(Path(tmp), args.effnet)
        warm = blobs.pop("(warm-up)")[0]
        head = " | ".join(f"{t}: MiB (B/weight)" for t in trees)
        print(f"| blob | size | weights | command | {head} |")
        print("|---|---|---|---|" + "---|" * len(trees))
        for name, (blob, weights) in blobs.items():
            size = f"{blob.stat().st_size / 1e6:.2f} MB"
            for command in COMMANDS:
                cells = []
                for tree in trees.values():
                    g = growth(tree, blob, warm, command)
                    cells.append("failed" if g < 0 else f"{g / 2**20:.1f} ({g / weights:.1f})")
                print(f"| {name} | {size} | {weights:,} | {command} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
