"""The `xorc` commands that decode a blob: `decompress`, `verify` and `simulate` (registered on
the group in xorc.cli)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from xorc import api
from xorc.cli_crossbar import variation_options, variation_text, variation_trials
from xorc.cli_support import emit_json, handle_errors, progress_bar
from xorc.errors import ExitCode

if TYPE_CHECKING:
    from xorc.verify import VerifyReport


@click.command()
@click.argument("blob", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    required=True,
    help="ONNX model to write.",
)
@click.option(
    "--external-data",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Weights in OUT.data next to the model (auto: above 1 GiB of weights).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def decompress(blob: str, out: str, external_data: str, as_json: bool) -> None:
    """Rebuild a runnable ONNX model from BLOB, with dequantized float weights."""
    with progress_bar("decompress", "weight", scale=True) as tick:
        path = api.decompress(blob, out, external_data, lambda n, w: tick(n, None, w))
    if as_json:
        emit_json({"schema_version": 1, "output": str(path), "bytes": path.stat().st_size})
    else:
        click.echo(f"wrote {path} ({path.stat().st_size} bytes)")


@click.command()
@click.argument("blob", type=click.Path(dir_okay=False))
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    help="The original ONNX model (needed for --accuracy).",
)
@click.option("--accuracy", is_flag=True, help="Run original and decoded model on --data.")
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    help=".npz with inputs keyed by input name (or one array) and optional `labels`.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Largest allowed drop in percentage points; exit 3 above it.",
)
@click.option(
    "--tie-ratio",
    type=click.FloatRange(1),
    default=1.1,
    show_default=True,
    help="Without labels: a sample whose original top class is less than this many times as "
    "likely as the runner-up is a tie, reported but not counted in the drop (1: count all).",
)
@click.option(
    "--decoder",
    type=click.Choice(["reference", "datapath", "both"]),
    default="both",
    show_default=True,
    help="Decode with the codecs' reference decoders, the accelerator datapath simulator, "
    "or both; each must reproduce the encoder's values bit for bit.",
)
@click.option("--preset", help="Datapath preset for the simulator [default: gemmini-default].")
@variation_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def verify(
    blob: str,
    model: str | None,
    accuracy: bool,
    data: str | None,
    max_drop: float,
    tie_ratio: float,
    decoder: str,
    preset: str | None,
    as_json: bool,
    **variation: Any,
) -> None:
    """Decode every tensor of BLOB bit-exactly; optionally gate the accuracy drop, and
    measure it under crossbar write variation (--variation).

    Exits 3 when a decoder differs from the encoder's intended values or the drop exceeds
    --max-drop.
    """
    if accuracy and data is None:
        raise click.UsageError("--accuracy needs --data DATA.npz")
    report = api.verify(
        blob,
        model,
        data if (accuracy or data) else None,
        max_drop,
        decoder=decoder,
        preset=preset,
        tie_ratio=tie_ratio,
    )
    report.variation = variation_trials(blob, model, data, variation)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(_verify_text(report))
    if not report.passed:
        sys.exit(int(ExitCode.GATE_FAILED))


def _verify_text(report: VerifyReport) -> str:
    lines = [
        f"bit-exact: {'yes' if report.bit_exact else 'NO'} "
        f"({report.tensors_checked} tensors, decoders: {', '.join(report.decoders)})"
    ]
    lines += [f"  mismatch: {m}" for m in report.mismatches]
    acc = report.accuracy
    if acc is not None:
        label = "top-1 accuracy" if acc.metric == "top1" else "top-1 agreement with the original"
        counted = f"{acc.n_samples - acc.ties} decided" if acc.ties else str(acc.n_samples)
        lines.append(
            f"{label}: original {acc.original:.2f}%, compressed {acc.compressed:.2f}%, "
            f"drop {acc.drop_pp:.2f} points (max {report.max_drop}) on {counted} samples; "
            f"agreement {acc.top1_agreement:.2f}%, output cosine {acc.output_cosine:.5f}"
        )
        if acc.ties:
            lines.append(
                f"  {acc.ties} of the samples are ties for the original (top class less than "
                f"{report.tie_ratio:g}x as likely as the runner-up), {acc.tie_flips} of them "
                "flipped; the drop counts the others (--tie-ratio 1 counts every sample)"
            )
    lines += variation_text(report.variation or [])
    lines.append("PASSED" if report.passed else "FAILED")
    return "\n".join(lines)


@click.command()
@click.argument("blob", type=click.Path(dir_okay=False))
@click.option(
    "--preset",
    help="Hardware preset: gemmini-default, gemmini-2x-decoder, gemmini-row-rate, "
    "gemmini-dram-latency, crossbar-128|256|64-slc (docs/crossbar.md) [default: gemmini-default].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file overriding preset parameters (docs/datapath.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def simulate(blob: str, preset: str | None, config_file: str | None, as_json: bool) -> None:
    """Decode BLOB through the accelerator datapath simulator and count the cost.

    Per layer: DRAM bytes against uncompressed int8, weight-load cycles against compute
    cycles (MACs / DIM^2), stalls, patch FIFO peak; totals; an area estimate of the
    decompressor against the MAC array. Exits 3 if the simulator's values differ from the
    encoder's.
    """
    from xorc.datapath import render_area, render_text

    if preset is not None and preset.startswith("crossbar"):
        from xorc.cli_crossbar import simulate_crossbars

        return simulate_crossbars(blob, preset, config_file, as_json)
    result, area = api.simulate(blob, preset, config_file)
    if as_json:
        emit_json({"schema_version": 1, "simulation": result.to_json(), "area": area.to_json()})
    else:
        click.echo(render_text(result))
        click.echo("")
        click.echo(render_area(area))
    if not result.bit_exact:
        sys.exit(int(ExitCode.GATE_FAILED))
