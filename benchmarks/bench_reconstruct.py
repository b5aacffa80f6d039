"""Round-to-nearest, today's bias correction and GPTQ / OBS pruning side by side (issue 13).

Every row compresses a sample model three ways, in one run, and measures on held-out data only:

* `rtn`: no calibration data, `--reconstruct none` (round-to-nearest, magnitude pruning);
* `bias`: `--calib`, `--reconstruct none --prune magnitude` (bias correction only, as before);
* `gptq`: `--calib` with the defaults (GPTQ, OBS pruning, then bias correction where it helps);
* `seq`: as `gptq` with `--reconstruct-order sequential` (a few rows; `--no-sequential` leaves
  them out);
* `noclip`: as `gptq` with config `clip_search = false` (GPTQ on max|w| scales, as before).

Rows with `--sparsity-scope global`: `rtn` and `bias` prune by one global magnitude threshold,
`gptq` chooses each layer's sparsity (xorc/allocate.py), at least S of all weights together.

"calib fidelity" is compress's own fidelity check (worst output cosine on 64 calibration
inputs). Then the time and peak memory of GPTQ on 256 calibration inputs, the statistics pass
alone at two bounds on its batches of layer inputs, and the sizes of the H (`--timing`: only
these).

EfficientNet-Lite0 is calibrated on sample_models/efficientnet_calib.npz and evaluated on
photos.npz (no image in common); fashion_cnn is calibrated on fashion_calib.npz (training
images) and evaluated on fashion_test.npz. Each compress runs in its own process, so its wall
time and peak resident memory are its own.

`--groups` prints instead the group-scale table (`--group-size`, docs/format.md §3.4): each
model and bit width at G in {none, 128, 64, 32} with bfloat16 (float) and pow2 scales, GPTQ with
calibration (`gptq`) next to round-to-nearest without (`rtn`), and `gptq-dw8` (GPTQ with the
depthwise convolutions and the stem at 8 bits, by `[[layer]]` rules), bits/weight counting the
scales; `gptq-early8` (the stem and blocks 0 to 3 at 8 bits; `gptq-early8-dw8`: and every
depthwise convolution), `asym` and `asym-early8`
(`--reconstruct-order asymmetric`); `--group-methods`, `--group-models`, `--group-dtypes`
pick the rows; `--parallel N` runs N processes (one per model and scale dtype) at a time (their
wall times then share the cores).

    python benchmarks/bench_reconstruct.py --groups [--group-methods rtn,gptq,gptq-early8,asym]
        [--group-models LABEL] [--group-dtypes bfloat16,pow2] [--parallel N]
    python benchmarks/bench_reconstruct.py [--quick] [--timing]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
EFFNET = (SAMPLES / "efficientnet_lite0.onnx", SAMPLES / "efficientnet_calib.npz")
FASHION = (SAMPLES / "fashion_cnn.onnx", SAMPLES / "fashion_calib.npz")
EVAL = {EFFNET[0]: SAMPLES / "photos.npz", FASHION[0]: SAMPLES / "fashion_test.npz"}
METHODS = {
    "rtn": (False, ["--reconstruct", "none"]),  # the data-free prior off (xorc/prior.py)
    "bias": (True, ["--reconstruct", "none", "--prune", "magnitude"]),
    "gptq": (True, []),
    "seq": (True, ["--reconstruct-order", "sequential"]),
    "noclip": (True, ["--config", "NOCLIP"]),  # GPTQ without the clipping search
}
SEQUENTIAL_ROWS = (
    "EfficientNet-Lite0 4-bit",
    "EffNet S=0.5 8-bit raw",
    "fashion_cnn 3-bit S=0.75 all",
)
ALL = ("rtn", "bias", "gptq")
SETTINGS = [  # (label, model and calibration data, flags, methods run on the row)
    ("EfficientNet-Lite0 4-bit", EFFNET, ["--bits", "4", "--policy", "raw"],
     (*ALL, "noclip", "seq")),
    ("EfficientNet-Lite0 8-bit", EFFNET, ["--bits", "8", "--policy", "raw"], ALL),
    ("EffNet S=0.5 8-bit raw", EFFNET, ["--bits", "8", "--sparsity", "0.5", "--policy", "raw"],
     ("rtn", "gptq")),
    ("EffNet S=0.5 8-bit all", EFFNET, ["--bits", "8", "--sparsity", "0.5", "--policy", "all"],
     ("gptq",)),
    ("EffNet S=0.5 global 8-bit raw", EFFNET,
     ["--bits", "8", "--sparsity", "0.5", "--sparsity-scope", "global", "--policy", "raw"], ALL),
    ("EffNet S=0.5 global 8-bit all", EFFNET,
     ["--bits", "8", "--sparsity", "0.5", "--sparsity-scope", "global", "--policy", "all"],
     ("gptq",)),
    ("fashion_cnn 3-bit S=0.75 global all", FASHION,
     ["--bits", "3", "--sparsity", "0.75", "--sparsity-scope", "global"], ALL),
    ("fashion_cnn 3-bit S=0.75 global all v3", FASHION,
     ["--bits", "3", "--sparsity", "0.75", "--sparsity-scope", "global", "--xor-variant", "3"],
     ALL),
    ("fashion_cnn 4-bit S=0.5 all", FASHION, ["--bits", "4", "--sparsity", "0.5"], ALL),
    ("fashion_cnn 3-bit S=0.75 all", FASHION, ["--bits", "3", "--sparsity", "0.75"],
     (*ALL, "seq")),
]  # fmt: skip
TARGETS = {
    "EfficientNet-Lite0 4-bit": "cos >= 0.99, agreement >= 90 %",
    "EfficientNet-Lite0 8-bit": "drop <= 2.5 pp, cos >= 0.998",
    "EffNet S=0.5 8-bit raw": "cos >= 0.99",
    "EffNet S=0.5 8-bit all": "cos >= 0.99; bits/w all vs raw",
    "EffNet S=0.5 global 8-bit raw": "cos >= 0.99",
    "EffNet S=0.5 global 8-bit all": "cos >= 0.99; bits/w all vs raw",
    "fashion_cnn 3-bit S=0.75 global all": "<= 1.5 bits/w within 0.5 pp",
    "fashion_cnn 3-bit S=0.75 global all v3": "<= 1.5 bits/w within 0.5 pp",
    "fashion_cnn 4-bit S=0.5 all": "<= 1.5 bits/w within 0.5 pp",
    "fashion_cnn 3-bit S=0.75 all": "<= 1.5 bits/w within 0.5 pp",
}


GROUP_SIZES = (None, 128, 64, 32)
GROUP_MODELS = [  # (label, model and calibration data, bits)
    ("EfficientNet-Lite0", EFFNET, 4),
    ("fashion_cnn", FASHION, 4),
    ("fashion_cnn", FASHION, 3),
]
GROUP_CHILD = """
import json, sys, time
from xorc import api, calibrate
from xorc.config import build_options
original, memo = calibrate.input_stats, {}
def cached(model, calib, moments=(), hessians=None):
    key = (model.sha256, str(calib), tuple(moments), tuple(sorted((hessians or {}).items())))
    if key not in memo:
        memo[key] = original(model, calib, moments, hessians)
    return memo[key]
calibrate.input_stats = cached
for run in json.loads(sys.argv[1]):
    t = time.perf_counter()
    options = build_options(run["config"], **run["options"])
    summary = api.compress(run["model"], run["blob"], options, run["calib"])
    print(json.dumps({"blob": run["blob"], "wall": time.perf_counter() - t,
                      "bits_per_weight": summary.to_json()["totals"]["bits_per_weight"]}),
          flush=True)
"""


DW8 = """[[layer]]
match = "*_depthwise_conv.weight"
bits = 8

[[layer]]
match = "_conv_stem.weight"
bits = 8
"""
"""Method gptq-dw8: GPTQ with the depthwise convolutions and the stem at 8 bits (EfficientNet's
most sensitive layers, 3.9 % of its weights; groups never apply to them: F = k x k <= G)."""
EARLY8 = "".join(
    f'[[layer]]\nmatch = "{m}"\nbits = 8\n\n'
    for m in ("_conv_stem.weight", "_blocks.0.*", "_blocks.1.*", "_blocks.2.*", "_blocks.3.*")
)
"""Method gptq-early8: the stem and blocks 0 to 3 at 8 bits (EfficientNet-Lite0's 16 layers
nearest the input, 0.6 % of its weights, which cause most of the 4-bit output error)."""
CONFIGS = {
    "gptq-dw8": "dw8.toml",
    "gptq-early8": "early8.toml",
    "gptq-early8-dw8": "early8dw8.toml",
    "asym-early8": "early8.toml",
}
"""The `[[layer]]` file of each method that has one."""


def group_table(
    quick: bool,
    parallel: int,
    methods: list[str],
    models: str,
    dtypes: list[str],
    sizes: tuple[int | None, ...] = GROUP_SIZES,
) -> None:
    """The group-scale rows (policy raw): per model (label containing `models`), bits, scale
    dtype and G, round-to-nearest without data (rtn), GPTQ with calibration (gptq, gptq-dw8),
    measured on the held-out data, each row printed as it is measured. The compresses of one
    model and scale dtype run in one process that gathers the calibration statistics once (so
    a row's compress time leaves that out), `parallel` such processes at a time."""
    runs = [
        (label, model, calib, bits, dtype, g, method)
        for label, (model, calib), bits in GROUP_MODELS
        if (not quick or "fashion" in label) and models in label
        for dtype in dtypes
        for g in sizes
        for method in methods
    ]
    print(
        "| model | bits | scales | G | method | bits/w | output cosine "
        "| top-1 (agreement or accuracy) | drop pp | compress s |"
    )
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "dw8.toml").write_text(DW8)
        (Path(tmp) / "early8.toml").write_text(EARLY8)
        (Path(tmp) / "early8dw8.toml").write_text(EARLY8 + DW8)
        jobs: dict[tuple, list[dict]] = {}
        for i, (_, model, calib, bits, dtype, g, method) in enumerate(runs):
            options = {"bits": bits, "policy": "raw", "scale_dtype": dtype, "group_size": g}
            if method == "rtn":  # the data-free prior off (xorc/prior.py)
                options["reconstruct"] = "none"
            if method.startswith("asym"):  # sequential, fitted to the original output
                options["reconstruct_order"] = "asymmetric"
            jobs.setdefault((model, dtype), []).append(
                {"model": str(model), "blob": f"{tmp}/g{i}.xorc", "options": options,
                 "calib": None if method == "rtn" else str(calib), "index": i,
                 "config": f"{tmp}/{CONFIGS[method]}" if method in CONFIGS else None}
            )  # fmt: skip

        def child(key: tuple) -> None:
            """One process per model and scale dtype; each row printed when it is measured."""
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            args = [sys.executable, "-c", GROUP_CHILD, json.dumps(jobs[key])]
            with subprocess.Popen(args, stdout=subprocess.PIPE, env=env) as proc:
                assert proc.stdout is not None
                for line, job in zip(proc.stdout, jobs[key], strict=False):
                    c = json.loads(line)
                    label, model, _, bits, dtype, g, method = runs[job["index"]]
                    acc = _verify(Path(c["blob"]), model)
                    top = acc.get("top1_agreement", acc.get("compressed"))
                    print(
                        f"| {label} | {bits} | {dtype} | {g or 'channel'} | {method} "
                        f"| {c['bits_per_weight']:.3f} | {acc['output_cosine']:.4f} | {top} "
                        f"| {acc['drop_pp']} | {c['wall']:.0f} |",
                        flush=True,
                    )

        with ThreadPoolExecutor(max(1, parallel)) as pool:
            list(pool.map(child, list(jobs)))


def _run(args: list[str]) -> str:
    """Run `python -m xorc ARGS` in a child; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "xorc", *args], capture_output=True, env=env)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"xorc {' '.join(args)} failed: {proc.stderr.decode()[-400:]}")
    return proc.stdout.decode()


def _compress(model: Path, calib: Path | None, flags: list[str], blob: Path) -> dict:
    args = ["compress", str(model), "-o", str(blob), "--json", *flags]
    if calib is not None:
        args += ["--calib", str(calib)]
    code = (
        "import json, resource, sys, time; from xorc.cli import cli; t = time.perf_counter()\n"
        "try:\n    cli.main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n    sys.stderr.write(json.dumps({'wall': time.perf_counter() - t, "
        "'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "
        "'cpu': resource.getrusage(resource.RUSAGE_SELF).ru_utime "
        "+ resource.getrusage(resource.RUSAGE_SELF).ru_stime}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"compress {flags} failed: {proc.stderr.decode()[-400:]}")
    usage = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    summary = json.loads(proc.stdout)
    totals = summary["totals"]
    bits = totals["bits_per_weight"]
    return {
        "bits_per_weight": bits,
        "wall_s": usage["wall"],
        "cpu_s": usage["cpu"],
        "peak_rss": usage["rss"],
        "fidelity": summary["fidelity"]["min_cosine"],
    }


def _verify(blob: Path, model: Path) -> dict:
    args = ["verify", str(blob), "--model", str(model), "--accuracy", "--data", str(EVAL[model])]
    out = _run([*args, "--max-drop", "100", "--decoder", "reference", "--json"])
    return json.loads(out)["accuracy"]


def largest_h_bytes(model: Path) -> tuple[str, int, int]:
    """The layer whose H is largest, its bytes (float64, all groups), and all layers' bytes."""
    sys.path.insert(0, str(ROOT))
    from xorc import onnx_io

    source = onnx_io.load_model(model)
    shapes = {w.name: w.array.shape for w in onnx_io.find_weights(source)}
    best, total = ("", 0), 0
    for name, layer in onnx_io.layers(source).items():
        shape = shapes[name]
        if layer.op_type == "Conv":
            size = layer.group * int(np.prod(shape[1:])) ** 2 * 8
        elif len(shape) == 2:
            size = int(min(shape)) ** 2 * 8
        else:
            continue
        best = max(best, (name, size), key=lambda t: t[1])
        total += size
    return (*best, total)


def timing(settings: list) -> None:
    """GPTQ on 256 calibration inputs (the 128 of efficientnet_calib.npz and their mirror
    images, still disjoint from photos.npz): compress wall and CPU seconds, peak RSS (the
    table's rtn rows are the baseline of the same run)."""
    if not any(s[1] == EFFNET for s in settings):
        return
    with tempfile.TemporaryDirectory() as tmp:
        with np.load(EFFNET[1]) as npz:
            x = npz["input"]
        calib = Path(tmp) / "calib256.npz"
        np.savez(calib, input=np.concatenate([x, x[..., ::-1]]))
        flags = ["--bits", "8", "--policy", "raw"]
        for label, data in (("gptq, 256 inputs", calib),):
            c = _compress(EFFNET[0], data, flags, Path(tmp) / "t.xorc")
            print(
                f"EfficientNet-Lite0 8-bit {label}: compress {c['wall_s']:.1f} s wall, "
                f"{c['cpu_s']:.1f} s CPU, peak RSS {c['peak_rss'] / 2**20:.0f} MiB"
            )
        print(f"calibration inputs in memory (float32): {x.size * 2 * 4 / 2**20:.0f} MiB")
        for budget in (128, 512):
            print(stats_pass(calib, budget))


def stats_pass(calib: Path, budget_mib: int) -> str:
    """The statistics pass alone (every layer's H and input statistics) in a child whose
    batches of layer inputs take at most `budget_mib` (calibrate.STATS_BATCH_BYTES): its time,
    peak RSS, and what it holds at the end (all H)."""
    code = (
        "import resource, sys, time\n"
        "from xorc import calibrate, hsource, onnx_io, pipeline\n"
        "from xorc.config import CompressOptions\n"
        "calibrate.STATS_BATCH_BYTES = int(sys.argv[3]) << 20\n"
        "model = onnx_io.load_model(sys.argv[1])\n"
        "opts = CompressOptions(policy='raw').resolved(True)\n"
        "jobs, _ = pipeline.plan_stage(model, opts)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "stats = hsource.calibration_stage(model, jobs, sys.argv[2], opts)\n"
        "h = sum(s.hessian.moment.nbytes for s in stats.values()\n"
        "        if s.hessian is not None and s.hessian.moment is not None)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(time.perf_counter() - t, time.process_time() - c, base, peak, h)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", code, str(EFFNET[0]), str(calib), str(budget_mib)]
    out = subprocess.run(args, capture_output=True, env=env, check=True).stdout.decode()
    wall, cpu, base, peak, h = (float(v) for v in out.split())
    return (
        f"statistics pass, batches of layer inputs <= {budget_mib} MiB: {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU, peak RSS {peak / 1024:.0f} MiB ({base / 1024:.0f} MiB before it: "
        f"model and plan), every H {h / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fashion_cnn rows only")
    parser.add_argument("--no-sequential", action="store_true", help="leave out the seq runs")
    parser.add_argument("--timing", action="store_true", help="only the time, memory and H")
    parser.add_argument("--rows", default="", help="only the settings whose label has this")
    parser.add_argument("--groups", action="store_true", help="the group-scale table only")
    parser.add_argument("--parallel", type=int, default=1, help="models at a time (--groups)")
    parser.add_argument(
        "--group-methods", default="rtn,gptq", help="rtn, gptq, gptq-dw8, gptq-early8, "
        "gptq-early8-dw8, asym, asym-early8"
    )  # fmt: skip
    parser.add_argument("--group-models", default="", help="only labels containing this")
    parser.add_argument("--group-dtypes", default="bfloat16,pow2", help="scale dtypes")
    parser.add_argument("--group-sizes", default="none,128,64,32", help="G values (none: channel)")
    args = parser.parse_args()
    if args.groups:
        group_table(
            args.quick, args.parallel, args.group_methods.split(","), args.group_models,
            args.group_dtypes.split(","),
            tuple(None if g == "none" else int(g) for g in args.group_sizes.split(",")),
        )  # fmt: skip
        return
    settings = [s for s in SETTINGS if (not args.quick or "fashion" in s[0]) and args.rows in s[0]]
    if args.timing:
        settings = [s for s in SETTINGS if s[1] == EFFNET][:1]
        timing(settings)
        _h_sizes(settings)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        noclip = Path(tmp) / "noclip.toml"
        noclip.write_text("clip_search = false\n")
        for label, (model, calib), flags, methods in settings:
            for method in methods:
                if method == "seq" and args.no_sequential:
                    continue
                with_calib, extra = METHODS[method]
                extra = [str(noclip) if e == "NOCLIP" else e for e in extra]
                blob = Path(tmp) / f"{len(rows)}.xorc"
                c = _compress(model, calib if with_calib else None, flags + extra, blob)
                acc = _verify(blob, model)
                rows.append((label, method, c, acc))
                print(f"# {label} {method}: {c} {acc}", file=sys.stderr, flush=True)
    print(
        "| setting | method | bits/w | output cosine | top-1 (agreement or accuracy) | drop pp "
        "| calib fidelity | compress s (CPU s) | peak RSS MiB | target |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, method, c, acc in rows:
        top = acc.get("top1_agreement", acc.get("compressed"))
        print(
            f"| {label} | {method} | {c['bits_per_weight']:.3f} | {acc['output_cosine']:.4f} "
            f"| {top} | {acc['drop_pp']} | {c['fidelity']} | {c['wall_s']:.1f} ({c['cpu_s']:.0f}) "
            f"| {c['peak_rss'] / 2**20:.0f} "
            f"| {TARGETS[label] if method == 'gptq' else ''} |"
        )
    timing(settings)
    _h_sizes(settings)


def _h_sizes(settings: list) -> None:
    for model in sorted({s[1][0] for s in settings}):
        name, size, total = largest_h_bytes(model)
        print(
            f"largest H of {model.name}: {name}, {size / 2**20:.2f} MiB; all layers' H "
            f"together {total / 2**20:.1f} MiB"
        )


if __name__ == "__main__":
    main()
