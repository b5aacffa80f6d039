"""Crossbar-aligned compression (issue 19, docs/crossbar.md): the three target tables in one run.

1. fashion_cnn with --calib: crossbars used (crossbar-128, 128 x 128 tiles) against dense at
   <= 1 point top-1 drop, for --prune-structure kernel-group and crossbar and for unstructured
   OBS pruning, each swept over --sparsity (uniform per tensor; on fc1.weight only, which
   holds 25 of the 30 tiles; and --sparsity-scope global, where xorc/allocate.py chooses each
   layer's sparsity on its measured output error); the largest sparsity within the drop is each
   method's row.
2. pow2 against bfloat16 (default) and float32 scales at 8 and 4 bits, GPTQ with --calib, on
   fashion_cnn and EfficientNet-Lite0: held-out accuracy and its difference.
3. fashion_cnn (8-bit, pow2, GPTQ) under log-normal write variation, SIGMA 0.05 / 0.1 / 0.2,
   TRIALS trials each (crossbar-128: 2-bit cells, differential pairs), without and with the
   compensation modes of docs/crossbar.md §4 (per-column gain, spare-column remapping with
   SPARES spare columns per 128, both), also with STUCK stuck-at cells; the same seeded noise
   for every mode (paired).
4. (coding) fc1.weight at crossbar S = 0.5: codec stream bytes when only the surviving tiles
   are coded (docs/format.md §3.6 `coded`) against the whole tensor's coding, per policy.

Held-out data only: fashion_cnn calibrated on fashion_calib.npz (training images), measured on
fashion_test.npz (5,000 test images, top-1 against labels); EfficientNet-Lite0 calibrated on
efficientnet_calib.npz, measured on photos.npz (top-1 agreement with fp32, 40 views). Every
run uses --calib's defaults (GPTQ, bias correction; bias correction is applied unconditionally,
without compress's keep-it-if-it-helps fidelity guard); the calibration statistics are computed
once per model and shared by its runs.

    PYTHONPATH=$PWD python benchmarks/bench_crossbar.py [--trials N] [--json OUT]
        [--tables pruning,coding,variation,scales] [--scopes "uniform,fc1 only,global"]
        [--sparsities S1,S2,..] [--sigmas 0.05,0.1,0.2] [--stuck 0,0.01]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from xorc import api, onnx_io, reconstruct, variation
from xorc.assemble import assemble
from xorc.bias import bias_stage
from xorc.config import CompressOptions, LayerRule
from xorc.datapath.crossbar import get_preset
from xorc.format import read_bytes, read_file, v1
from xorc.hsource import calibration_stage
from xorc.pipeline import encode_stage, plan_stage, quantize_stage

ROOT = Path(__file__).resolve().parent.parent
S = ROOT / "sample_models"
FASHION = (S / "fashion_cnn.onnx", S / "fashion_calib.npz", S / "fashion_test.npz")
EFFNET = (S / "efficientnet_lite0.onnx", S / "efficientnet_calib.npz", S / "photos.npz")
SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SIGMAS = (0.05, 0.1, 0.2)
SCOPES = ("uniform", "fc1 only", "global")
STUCK = (0.0, 0.01)
CODING_POLICIES = ("raw", "all", "ebpc", "dictionary")
SPARES = 8
BASE = CompressOptions(policy="raw", scale_dtype="pow2")


class Compressor:
    """compress with the calibration statistics of one model computed once."""

    def __init__(self, model: Path, calib: Path, folder: Path) -> None:
        self.model = onnx_io.load_model(model)
        self.calib, self.folder, self.n = calib, folder, 0
        options = replace(BASE, sparsity=0.5).resolved(True)
        jobs, _ = plan_stage(self.model, options)
        self.stats = calibration_stage(self.model, jobs, calib, options)

    def blob(self, options: CompressOptions) -> Path:
        options = options.resolved(True)
        jobs, left = plan_stage(self.model, options)
        quantize_stage(jobs, options, self.stats)
        encode_stage(jobs, options)
        biases = bias_stage(self.model, jobs, self.stats)
        container = assemble(self.model, jobs, options, biases, None, {"uncompressed": left})
        self.n += 1
        path = self.folder / f"b{self.n}.xorc"
        path.write_bytes(v1.write(container))
        return path


def accuracy(blob: Path, model: Path, data: Path) -> tuple[float, float]:
    acc = api.verify(blob, model, data, decoder="reference").accuracy
    assert acc is not None
    return acc.original, acc.compressed


def pruning_table(
    comp: Compressor, scopes: list[str], sparsities: tuple[float, ...] = SPARSITIES
) -> list[dict]:
    model, _, test = FASHION
    rows = []
    for structure in (None, "kernel-group", "crossbar"):
        for scope in scopes:
            best = None
            for s in sparsities:
                if scope != "fc1 only":
                    opts = replace(
                        BASE,
                        sparsity=s,
                        prune_structure=structure,
                        sparsity_scope="tensor" if scope == "uniform" else scope,
                    )
                else:
                    rule = LayerRule("fc1.weight", {"sparsity": s})
                    opts = replace(BASE, prune_structure=structure, layers=(rule,))
                blob = comp.blob(opts)
                original, acc = accuracy(blob, model, test)
                m = api.map_crossbars(blob).to_json()["totals"]
                point = {"method": structure or "unstructured", "scope": scope, "sparsity": s,
                         "original": original, "accuracy": acc, "drop": original - acc,
                         "zeros": zero_fraction(blob), **m}  # fmt: skip
                print(json.dumps(point), flush=True)
                if point["drop"] > 1.0:
                    break
                best = point
            if best is not None:
                rows.append(best)
    return rows


def coding_table(comp: Compressor) -> list[dict]:
    """fc1 pruned to S = 0.5 with --prune-structure crossbar: its codec stream bytes when only
    the surviving tiles are coded against the whole tensor's coding, per policy."""
    rows = []
    for policy in CODING_POLICIES:
        rule = LayerRule("fc1.weight", {"sparsity": 0.5})
        blob = comp.blob(replace(BASE, policy=policy, prune_structure="crossbar", layers=(rule,)))
        rec = next(t for t in read_bytes(read_file(blob)).tensors if t.name == "fc1.weight")
        coded = sum(s.length for s in rec.streams if s.name not in ("scales", "presence"))
        info = rec.stats["aligned"]
        row = {"policy": policy, "codec": rec.codec_name, "weights": rec.n_weights,
               "coded_weights": info.get("coded_weights", rec.n_weights), "bytes": coded,
               "whole_bytes": info.get("whole_tensor_bytes", coded)}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def zero_fraction(blob: Path) -> float:
    c = read_bytes(read_file(blob))
    return 1 - sum(t.n_nonzero for t in c.tensors) / sum(t.n_weights for t in c.tensors)


def scales_table(folder: Path) -> list[dict]:
    rows = []
    for model, calib, test in (FASHION, EFFNET):
        comp = Compressor(model, calib, folder)
        for bits in (8, 4):
            accs = {}
            for dtype in ("float32", "bfloat16", "pow2"):
                with reconstruct.shared_factors():
                    blob = comp.blob(replace(BASE, bits=bits, scale_dtype=dtype))
                original, accs[dtype] = accuracy(blob, model, test)
            row = {"model": model.stem, "bits": bits, "original": original, **accs,
                   "pow2_minus_float32": accs["pow2"] - accs["float32"]}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def variation_table(
    comp: Compressor, trials: int, sigmas: tuple[float, ...] = SIGMAS,
    stucks: tuple[float, ...] = STUCK,
) -> list[dict]:  # fmt: skip
    model, calib, test = FASHION
    blob = comp.blob(BASE)
    container = read_bytes(read_file(blob))
    tensors, evaluate = variation.prepare(container, model, test, calib)
    _, noiseless = accuracy(blob, model, test)
    cfg = get_preset("crossbar-128")
    rows = []
    for stuck in stucks:
        for sigma in sigmas:
            var = variation.Variation(sigma, stuck_at=stuck, trials=trials, spares=SPARES)
            row: dict = {"sigma": sigma, "stuck_at": stuck, "trials": trials,
                         "noiseless": noiseless}  # fmt: skip
            for mode in variation.MODES:
                r = variation.run_trials(tensors, evaluate, cfg, var, mode).to_json()
                row[mode] = {k: r[f"accuracy_{k}"] for k in ("mean", "std", "min")}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--tables", default="pruning,coding,variation,scales")
    parser.add_argument("--scopes", default=",".join(SCOPES), help="of the pruning table")
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    parser.add_argument("--sigmas", default=",".join(map(str, SIGMAS)))
    parser.add_argument("--stuck", default=",".join(map(str, STUCK)), help="stuck-at fractions")
    args = parser.parse_args()
    tables = args.tables.split(",")
    sparsities = floats(args.sparsities)
    t0 = time.time()
    out: dict = {"pruning": [], "coding": [], "variation": [], "scales": []}
    with tempfile.TemporaryDirectory() as tmp, reconstruct.shared_factors():
        comp = Compressor(*FASHION[:2], Path(tmp))
        if "pruning" in tables:
            out["pruning"] = pruning_table(comp, args.scopes.split(","), sparsities)
        if "coding" in tables:
            out["coding"] = coding_table(comp)
        if "variation" in tables:
            out["variation"] = variation_table(comp, args.trials, floats(args.sigmas),
                                               floats(args.stuck))  # fmt: skip
        if "scales" in tables:
            out["scales"] = scales_table(Path(tmp))
    out["seconds"] = round(time.time() - t0, 1)
    render(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


def floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def render(out: dict) -> None:
    print("\nfashion_cnn, crossbar-128: largest swept sparsity within 1 point top-1 drop")
    print(f"{'method':<14} {'scope':<9} {'S':>4} {'zeros':>6} {'top-1':>6} {'drop':>5} "
          f"{'tiles':>7} {'crossbars':>9} {'util':>6} {'ADC':>6}")  # fmt: skip
    for r in out["pruning"]:
        print(f"{r['method']:<14} {r['scope']:<9} {r['sparsity']:4.1f} {100 * r['zeros']:5.1f}% "
              f"{r['accuracy']:6.2f} {r['drop']:5.2f} {r['tiles_used']:>3}/{r['tiles_dense']:<3} "
              f"{r['crossbars_used']:>4}/{r['crossbars_dense']:<4} {100 * r['utilisation']:5.1f}% "
              f"{100 * r['adc_ratio']:5.1f}%")  # fmt: skip
    print("\nfc1.weight, crossbar S = 0.5 (--calib): codec stream bytes, surviving tiles only "
          "against the whole tensor")  # fmt: skip
    for r in out["coding"]:
        print(f"{r['policy']:<11} {r['codec']:<11} coded {r['coded_weights']:>7}/{r['weights']} "
              f"weights  {r['bytes']:>7} B  whole tensor {r['whole_bytes']:>7} B  "
              f"{8 * r['bytes'] / r['weights']:.3f} vs {8 * r['whole_bytes'] / r['weights']:.3f} "
              "bits/weight")  # fmt: skip
    print("\nscales (GPTQ with --calib; held-out top-1, EfficientNet: agreement)")
    for r in out["scales"]:
        print(f"{r['model']:<18} {r['bits']}-bit  fp32 model {r['original']:6.2f}  float32 "
              f"{r['float32']:6.2f}  bfloat16 {r['bfloat16']:6.2f}  pow2 {r['pow2']:6.2f}  "
              f"pow2 - float32 {r['pow2_minus_float32']:+.2f}")  # fmt: skip
    print(f"\nfashion_cnn 8-bit pow2 on crossbar-128 under write variation (top-1 %, mean +- "
          f"std (min); remap: {SPARES} spare columns per 128)")  # fmt: skip
    for r in out["variation"]:
        cells = "  ".join(
            f"{m} {r[m]['mean']:.2f} +- {r[m]['std']:.2f} ({r[m]['min']:.2f})"
            for m in ("none", "gain", "remap", "remap+gain")
        )
        print(f"sigma {r['sigma']:<4} stuck {r['stuck_at']:<4} {r['trials']} trials  "
              f"noiseless {r['noiseless']:.2f}  {cells}")  # fmt: skip
    print(f"\n{out['seconds']} s in all (shared machine: pessimistic)")


if __name__ == "__main__":
    main()
