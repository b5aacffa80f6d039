"""The commands that analyse a model on data: `xorc analyze` (per-layer sensitivity, ranked; a
thin layer over xorc.sensitivity) and `xorc fmap` (EBPC on the feature maps; xorc.fmap)."""

from __future__ import annotations

from pathlib import Path

import click

from xorc import api, policies
from xorc.cli_support import emit_json, handle_errors, progress_bar
from xorc.config import build_options
from xorc.errors import UsageError


def _numbers(text: str, kind: type, flag: str) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} must be a comma-separated list, got {text!r}") from None


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--calib",
    required=True,
    type=click.Path(dir_okay=False),
    help="Calibration .npz: GPTQ statistics and the inputs every trial runs on.",
)
@click.option(
    "--policy",
    type=click.Choice(policies.PER_LAYER),
    help="Policy whose encoder sizes each setting [default: all].",
)
@click.option("--bits-grid", default="2,3,4,5,6,7,8", show_default=True, help="Bits to try.")
@click.option(
    "--sparsity-grid", default="0,0.5,0.75,0.9", show_default=True, help="Sparsities to try."
)
@click.option(
    "--samples",
    type=click.IntRange(1, 512),
    default=16,
    show_default=True,
    help="Calibration inputs each trial runs on.",
)
@click.option(
    "--max-bits-per-weight",
    type=click.FloatRange(0, min_open=True),
    default=4.0,
    show_default=True,
    help="Size target of the per-layer choice shown (as compress would choose it).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML options (reconstruct, prune, scale_dtype, [[layer]] skip ...), as compress.",
)
@click.option("--html", "html", type=click.Path(dir_okay=False), help="Write a report page.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def analyze(
    model: str,
    calib: str,
    policy: str | None,
    bits_grid: str,
    sparsity_grid: str,
    samples: int,
    max_bits_per_weight: float,
    config_file: str | None,
    html: str | None,
    as_json: bool,
) -> None:
    """Measure each layer's effect on the model outputs at every bits x sparsity setting."""
    from xorc import analysis_report, api

    bits = _numbers(bits_grid, int, "--bits-grid")
    sparsity = _numbers(sparsity_grid, float, "--sparsity-grid")
    options = build_options(config_file, policy=policy)
    if html is not None:
        from xorc.report_html import check_available

        check_available()
        if Path(html).resolve() in (Path(model).resolve(), Path(calib).resolve()):
            raise UsageError(f"{html}: the report would overwrite an input; choose another name")
    with progress_bar("analyze", "layer") as tick:
        result = api.analyze(model, calib, options, bits, sparsity, samples, tick)
    choice = analysis_report.choose(result, max_bits_per_weight)
    if html is not None:
        from xorc.report_html import write_html

        write_html(result, choice, html)
    if as_json:
        emit_json(analysis_report.to_json(result, choice))
    else:
        click.echo(analysis_report.render_text(result, choice))
        if html is not None:
            click.echo(f"wrote {html}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    required=True,
    help=".npz with the inputs keyed by input name (or one array).",
)
@click.option(
    "--bits",
    type=click.IntRange(2, 16),
    default=8,
    show_default=True,
    help="Feature-map bits (W = 8-bit EBPC words up to 8 bits, else 16).",
)
@click.option(
    "--method",
    type=click.Choice(["paper", "deploy", "both"]),
    default="both",
    show_default=True,
    help="paper: one scale per layer, max -> 0.75 of full scale, truncate; deploy: calibrated "
    "round-to-nearest (99.99th percentile of |x| -> full scale).",
)
@click.option(
    "--calib",
    type=click.Path(dir_okay=False),
    help="Inputs for the deploy calibration (default: the first 8 of --data).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def fmap(model: str, data: str, bits: int, method: str, calib: str | None, as_json: bool) -> None:
    """EBPC-compress the feature maps of MODEL on DATA and compare with zero-RLE and ZVC.

    Every ReLU, ReLU6 and Clip(0, x) output is exposed, quantized per layer, EBPC-compressed
    per input (NCHW, flattened), checked to decode back exactly, and sized. Ratios are
    uncompressed bits over compressed bits per input, averaged over inputs.
    """
    methods = ("paper", "deploy") if method == "both" else (method,)
    with progress_bar("fmap", "input") as tick:
        results = api.fmap(model, data, bits, methods, calib, progress=tick)
    if as_json:
        emit_json({"schema_version": 1, "results": [r.to_json() for r in results]})
        return
    from xorc.fmap import summary_rows

    for result in results:
        click.echo(
            f"method {result.method}, {result.bits}-bit maps, W={result.word_width}, "
            f"N={result.block_size}, {result.n_inputs} inputs"
        )
        click.echo(f"{'layer':<40} {'zeros':>7} {'EBPC':>7} {'zero-RLE':>9} {'ZVC':>7}")
        for name, sparsity, ebpc, rle, zvc in summary_rows(result):
            click.echo(
                f"{name[-40:]:<40} {100 * sparsity:>6.1f}% {ebpc:>7.3f} {rle:>9.3f} {zvc:>7.3f}"
            )
        click.echo(f"EBPC vs the better of zero-RLE and ZVC: {100 * result.ebpc_gain:+.1f}%\n")
