"""Per-layer mixed precision against the best uniform setting at the same size (issue 13.4).

For each model: one sensitivity analysis on the calibration data (xorc/sensitivity.py, every
layer at every grid setting, its time printed), then for each size target B:

* `per-layer`: the greedy per-layer choice (`mixed.fit`);
* `uniform`: the best single (bits, sparsity) for all layers that fits B: per sparsity of the
  grid the most bits that fit, and of those the one with the highest output cosine on the
  calibration data (chosen without looking at the evaluation data);
* `compress --max-bits-per-weight B` measures both on the calibration data and keeps the one
  with the higher output cosine (`mixed.size_choice`): the label says which it kept;
* `mixed drop<=PP`: what `compress --max-drop PP` chooses (measured back-off on calib data).

Both are exactly what `compress` stores (same quantizer, GPTQ, encoder, bias correction; the
sizes are the encoded streams plus scales), and both are measured on held-out data only:
EfficientNet-Lite0 calibrated on efficientnet_calib.npz, evaluated on photos.npz (no image in
common; no labels: top-1 agreement with fp32 and output cosine); fashion_cnn calibrated on
fashion_calib.npz, evaluated on fashion_test.npz (labels: top-1 accuracy).

    python benchmarks/bench_mixed.py [--models fashion,effnet] [--policy raw] [--samples 16]
        [--bits-grid 2,3,4,5,6,7,8] [--sparsity-grid 0,0.5,0.75,0.9]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from xorc import mixed, onnx_io, pipeline, sensitivity
from xorc.config import CompressOptions
from xorc.sensitivity import LayerSensitivity, Point

ROOT = Path(__file__).resolve().parent.parent
S = ROOT / "sample_models"
MODELS = {
    "fashion": ("fashion_cnn", S / "fashion_cnn.onnx", S / "fashion_calib.npz",
                S / "fashion_test.npz", (2.0, 3.0, 4.0), 0.5),
    "effnet": ("EfficientNet-Lite0", S / "efficientnet_lite0.onnx", S / "efficientnet_calib.npz",
               S / "photos.npz", (4.0, 5.0, 6.0), 2.5),
}  # fmt: skip


def row(label: str, what: str, chosen: dict[str, Point], n: int, held: mixed.Probe) -> str:
    size = sum(p.payload_bytes for p in chosen.values())  # a float layer: its 32-bit bytes
    acc = held.compare(chosen)
    bits = sorted({p.setting.label for p in chosen.values()})
    high = [k for k, p in chosen.items() if p.setting.bits is None or p.setting.bits >= 8]
    kept = ", ".join(f"{k} ({chosen[k].setting.label})" for k in high[:4])
    kept += f" and {len(high) - 4} more" if len(high) > 4 else ""
    return (
        f"| {label} | {what} | {8 * size / n:.3f} | {acc.metric} {acc.compressed:.2f} "
        f"(fp32 {acc.original:.2f}) | {acc.top1_agreement:.1f} | {acc.output_cosine:.5f} | "
        f"{', '.join(bits)} | {kept or '-'} |"
    )


def bench(
    key: str, policy: str, samples: int, bits: tuple[int, ...], sparsity: tuple[float, ...]
) -> list[str]:
    label, model_path, calib, held_out, targets, max_drop = MODELS[key]
    began = time.perf_counter()
    model = onnx_io.load_model(model_path)
    opts = sensitivity.analysis_options(CompressOptions(policy=policy), calib)
    jobs = pipeline.plan_tensors(model, opts)
    stats = sensitivity.layer_stats(model, jobs, calib, opts, max(sparsity))
    t_stats = time.perf_counter() - began
    settings = sensitivity.grid_settings(bits, sparsity)
    layers, skipped = sensitivity.measure(
        model, jobs, opts, stats, calib, settings, samples, keep=True
    )
    t_all = time.perf_counter() - began
    n = sum(ly.n_weights for ly in layers)
    calib_probe = mixed.Probe(model, calib, jobs, stats, True)
    held = mixed.Probe(model, held_out, jobs, stats, True)
    lines = [
        f"{label}: {len(layers)} layers x {len(settings) - 1} settings (+ float), policy "
        f"{policy}, {samples} calibration inputs per trial: statistics {t_stats:.1f} s, "
        f"analysis {t_all:.1f} s in all; skipped {len(skipped)}"
    ]
    for target in targets:
        budget = int(target * n / 8)
        kept, _, _, _, _, trials = mixed.size_choice(layers, budget, 0, calib_probe)
        greedy, _, _, _ = mixed.fit(layers, budget)
        lines.append(
            row(label, f"per-layer <= {target:g} (compress keeps {kept})", greedy, n, held)
        )
        uniform = [t for t in trials if t["choice"] != "per_layer"]
        if uniform:
            best = max(uniform, key=lambda t: float(t["cosine"]))  # type: ignore[arg-type]
            picked = _uniform(layers, str(best["choice"]))
            lines.append(row(label, f"uniform <= {target:g} ({best['choice']})", picked, n, held))
    by_drop = _drop(layers, max_drop, calib_probe)
    lines.append(row(label, f"mixed drop <= {max_drop:g} pp (calib)", by_drop, n, held))
    return lines


def _uniform(layers: list[LayerSensitivity], label: str) -> dict[str, Point]:
    return {ly.name: p for ly in layers for p in ly.points if p.setting.label == label}


def _drop(layers: list[LayerSensitivity], max_drop: float, probe: mixed.Probe) -> dict[str, Point]:
    result = mixed.within_drop(layers, CompressOptions(max_drop=max_drop), probe)
    return result.chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="fashion,effnet")
    parser.add_argument("--policy", default="raw", choices=("raw", "all", "ebpc"))
    parser.add_argument("--samples", type=int, default=sensitivity.SAMPLES)
    parser.add_argument("--bits-grid", default=",".join(map(str, sensitivity.BITS_GRID)))
    parser.add_argument("--sparsity-grid", default=",".join(map(str, sensitivity.SPARSITY_GRID)))
    args = parser.parse_args()
    bits = tuple(int(b) for b in args.bits_grid.split(","))
    sparsity = tuple(float(s) for s in args.sparsity_grid.split(","))
    print(
        "| model | choice | bits/weight | held-out | top-1 agreement % | cosine | settings "
        "| layers at 8 bits or float |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key in args.models.split(","):
        lines = bench(key, args.policy, args.samples, bits, sparsity)
        print(lines[0])
        print("\n".join(lines[1:]), flush=True)


if __name__ == "__main__":
    main()
