"""Benchmark: large models with external data (issue 17): time, peak memory and blob size of
compress (per --jobs), verify and decompress, and the decompressed model against the original
in onnxruntime.

    PYTHONPATH=$PWD python benchmarks/bench_scale.py [--sizes 0.5,2.3,4.3] [--jobs 1,2]
        [--policy raw] [--width 4096] [--steps compress,verify,decompress,run] [--dir DIR]
        [--calib N [--calib-memory MiB]]

Each size (GB of fp32 weights) is a chain of MatMul [width, width] layers with 90 % zeros
(tests/models.py `write_matmul_chain`), written layer by layer into a temporary folder (under
--dir, default the system's) and deleted after its row. Every step is a fresh child process:
"peak RSS" is the largest single process's (wait4 ru_maxrss: the main process or one worker),
"tree RSS" the largest sum over the process and its workers, sampled every 0.2 s. The bound of
issue 17 is 1.5 GB plus 3 x the largest tensor. The baseline of the --jobs comparison is the
--jobs 1 run of the same size in the same run; every --jobs run's blob is compared byte for
byte with it. `run` feeds 4 standard-normal inputs to the original and the decompressed model
and prints the cosine of their outputs and the largest error relative to the output's scale.

A quick --jobs comparison only: --sizes 0.5 --steps compress. With --calib N, compress runs
with N standard-normal calibration inputs (GPTQ / OBS, block by block, xorc/blockwise.py; only
--jobs 1) and the row says how many blocks (passes over the data) the budget gives.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from models import write_matmul_chain  # noqa: E402

GB = 1e9
STEPS = ("compress", "verify", "decompress", "run")

RUN = r"""
import sys, numpy as np
from pathlib import Path
from xorc import runtime
x = np.random.default_rng(1).standard_normal((4, int(sys.argv[3]))).astype(np.float32)
y0 = runtime.session(Path(sys.argv[1]), "original").run(None, {"x": x})[0].astype(np.float64)
y1 = runtime.session(Path(sys.argv[2]), "decoded").run(None, {"x": x})[0].astype(np.float64)
cos = (y0 * y1).sum() / np.linalg.norm(y0) / np.linalg.norm(y1)
print(f"cosine {cos:.6f}, max |error| / max |y| {np.abs(y0 - y1).max() / np.abs(y0).max():.4f}")
"""


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measured(args: list[str]) -> dict:
    """Run a child; its wall time, exit status, output, peak RSS and sampled tree RSS."""
    t0 = time.perf_counter()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    peak_tree = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak_tree[0] = max(peak_tree[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "s": time.perf_counter() - t0,
        "rc": proc.returncode,
        "out": out.strip().splitlines()[-1:] if out.strip() else [],
        "rss": usage.ru_maxrss * 1024,
        "tree": peak_tree[0],
    }


def xorc(*args: str) -> list[str]:
    return [sys.executable, "-m", "xorc", *args]


def row(size: str, step: str, r: dict, bound: float, extra: str = "") -> None:
    ok = "ok" if r["rc"] == 0 else f"EXIT {r['rc']}: {' '.join(r['out'])}"
    within = "yes" if r["rss"] <= bound else "NO"
    print(
        f"{size:>6} {step:<22} {r['s']:8.1f} {r['rss'] / GB:8.2f} {r['tree'] / GB:8.2f} "
        f"{bound / GB:6.2f} {within:>5}  {extra or ok}",
        flush=True,
    )


def _calib_args(args: argparse.Namespace, folder: Path, model: Path) -> list[str]:
    """The compress flags of a --calib run (its data written to `folder`), and its blocks."""
    if not args.calib:
        return []
    import numpy as np

    from xorc import blockwise, onnx_io
    from xorc.config import CompressOptions
    from xorc.hsource import hessian_specs
    from xorc.pipeline import plan_stage

    x = np.random.default_rng(2).standard_normal((args.calib, args.width), np.float32)
    np.savez(folder / "calib.npz", x=x)
    options = CompressOptions(policy=args.policy).resolved(True)
    jobs, _ = plan_stage(onnx_io.load_model(model), options)
    mib = args.calib_memory or blockwise.DEFAULT_MIB
    blocks = blockwise.plan_blocks(jobs, set(hessian_specs(jobs, options)), mib << 20)
    print(f"# --calib {args.calib} inputs, --calib-memory {mib} MiB: {len(blocks)} blocks")
    return ["--calib", str(folder / "calib.npz"), "--calib-memory", str(mib)]


def one_size(gb: float, args: argparse.Namespace, base: Path) -> None:
    layers = max(1, round(gb * GB / (args.width * args.width * 4)))
    folder = Path(tempfile.mkdtemp(prefix=f"scale-{gb}-", dir=base))
    try:
        t0 = time.perf_counter()
        model = write_matmul_chain(folder / "model", args.width, layers, 0.9)
        weights = layers * args.width * args.width * 4
        label = f"{weights / GB:.2f}"
        largest = args.width * args.width * 4
        bound = 1.5 * GB + 3 * largest
        print(
            f"# {label} GB: {layers} x [{args.width}, {args.width}] fp32, "
            f"{layers * args.width**2 / 1e6:.0f} M weights, "
            f"built in {time.perf_counter() - t0:.0f} s"
        )
        blob = folder / "m.xorc"
        ref = None
        base_s = None
        calib = _calib_args(args, folder, model)
        if "compress" in args.steps:
            for n in [1] if calib else args.jobs:
                out = folder / f"j{n}.xorc"
                r = measured(
                    xorc(
                        "compress",
                        str(model),
                        "-o",
                        str(out),
                        "--policy",
                        args.policy,
                        "--jobs",
                        str(n),
                        *calib,
                    )
                )
                digest = hashlib.sha256(out.read_bytes()).hexdigest() if r["rc"] == 0 else None
                ref = ref or digest
                base_s = base_s or r["s"]
                same = "same bytes" if digest == ref else "DIFFERENT BYTES"
                note = (
                    (
                        f"blob {out.stat().st_size / 1e6:.1f} MB, {same}, "
                        f"{base_s / r['s']:.2f}x --jobs {args.jobs[0]}"
                    )
                    if r["rc"] == 0
                    else ""
                )
                row(label, f"compress --jobs {n}", r, bound, note)
                if digest is not None and not blob.exists():
                    out.rename(blob)
                elif out.exists():
                    out.unlink()
        if "verify" in args.steps and blob.exists():
            r = measured(xorc("verify", str(blob), "--decoder", args.decoder))
            row(label, f"verify ({args.decoder})", r, bound)
        decoded = folder / "decoded.onnx"
        if "decompress" in args.steps and blob.exists():
            r = measured(xorc("decompress", str(blob), "-o", str(decoded)))
            data = folder / "decoded.onnx.data"
            kind = f"external data {data.stat().st_size / GB:.2f} GB" if data.exists() else "inline"
            row(label, "decompress (auto)", r, bound, f"{kind}" if r["rc"] == 0 else "")
        if "run" in args.steps and decoded.exists():
            r = measured([sys.executable, "-c", RUN, str(model), str(decoded), str(args.width)])
            row(label, "onnxruntime both", r, float("inf"), " ".join(r["out"]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="0.5,2.3,4.3", help="GB of fp32 weights, comma-separated"
    )
    parser.add_argument("--jobs", default="1,2", help="--jobs values to compare, comma-separated")
    parser.add_argument("--policy", default="raw")
    parser.add_argument("--decoder", default="reference", help="verify --decoder")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--dir", default=None, help="folder for the temporary models")
    parser.add_argument("--calib", type=int, default=0, help="compress with N calibration inputs")
    parser.add_argument("--calib-memory", type=int, default=None, help="MiB per block")
    args = parser.parse_args()
    args.jobs = [int(j) for j in args.jobs.split(",")]
    args.steps = args.steps.split(",")
    base = Path(args.dir or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    print(f"policy {args.policy}; cores {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'GB':>6} {'step':<22} {'time s':>8} {'peak GB':>8} {'tree GB':>8} {'bound':>6} "
        f"{'<=?':>5}  result"
    )
    for size in args.sizes.split(","):
        one_size(float(size), args, base)


if __name__ == "__main__":
    main()
