"""The `xorc` command: a thin layer over xorc.api.

stdout carries results (a table, or exactly one JSON document with --json); progress bars,
warnings and errors go to stderr. Exit codes: xorc.errors.ExitCode (README.md, "Exit codes").
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from xorc import __version__, api, policies
from xorc.cli_support import OneLineErrors, emit_json, handle_errors, progress_bar
from xorc.config import build_options
from xorc.errors import ExitCode

if TYPE_CHECKING:
    pass


@click.group(
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="xorc")
def cli() -> None:
    """Compress ONNX model weights into small blobs for edge accelerators, and verify them.

    \b
    Typical use:
      xorc compress model.onnx -o model.xorc --policy importance
      xorc inspect model.xorc
      xorc verify model.xorc --model model.onnx --accuracy --data test.npz

    Exit codes: 0 ok, 1 internal error, 2 usage, 3 verify gate (or compress --strict) failed,
    4 invalid or corrupt blob, 5 invalid or unsupported model.
    """


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    help="Blob to write [default: MODEL with suffix .xorc].",
)
@click.option("--bits", type=click.IntRange(2, 8), help="Quantization bits Q, 2..8 [default: 8].")
@click.option(
    "--sparsity",
    type=click.FloatRange(0, 1, max_open=True),
    help="Prune each tensor (or all, see --sparsity-scope) to at least this fraction "
    "of zeros (see --prune); zeros already in the model count [default: 0].",
)
@click.option(
    "--sparsity-scope",
    type=click.Choice(["tensor", "global"]),
    help="Prune per tensor or with one global threshold [default: tensor].",
)
@click.option(
    "--policy",
    type=click.Choice(policies.NAMES),
    help="Codec and error-correction policy [default: all]: "
    + "; ".join(f"{p.name}: {p.summary}" for p in policies.POLICIES.values())
    + ".",
)
@click.option(
    "--per-tensor",
    is_flag=True,
    default=None,
    help="One scale per tensor instead of per output channel.",
)
@click.option(
    "--scale-dtype",
    type=click.Choice(["bfloat16", "float32", "pow2"]),
    help="How scales are stored: bfloat16 rounds each up (levels under 0.8 % coarser, half the "
    "bytes); float32 keeps them exact; pow2 rounds each up to 2^-n (1 byte, rescaling by a "
    "shift: crossbar and integer-only datapaths) [default: bfloat16].",
)
@click.option(
    "--group-size",
    type=click.IntRange(1, 2**31 - 1),
    help="One scale per G consecutive input-side weights of each output channel (32, 64, 128; "
    "docs/format.md §3.4) [default: one per channel].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file with options and [[layer]] overrides (flags win over its top-level keys).",
)
@click.option(
    "--calib",
    type=click.Path(dir_okay=False),
    help="Calibration .npz: bias correction, input statistics for policies importance and "
    "dictionary (error-compensated assignment), and the data --max-drop measures on.",
)
@click.option(
    "--reconstruct",
    type=click.Choice(["gptq", "synthetic", "prior", "none"]),
    help="Quantize with GPTQ on each layer's input H from --calib, on the H of synthetic inputs, "
    "on a data-free prior H of convolution kernels, or round to nearest [default: gptq with "
    "--calib, else synthetic].",
)
@click.option(
    "--prune",
    type=click.Choice(["magnitude", "obs"]),
    help="Pruning: smallest magnitudes, or OBS saliency with weight updates from --calib "
    "(SparseGPT) [default: obs with --calib, else magnitude].",
)
@click.option(
    "--reconstruct-order",
    type=click.Choice(["parallel", "sequential", "asymmetric"]),
    help="GPTQ / OBS: every layer's H from the original model's inputs, or layers in graph "
    "order, each on the inputs the already compressed layers produce (slower); asymmetric: "
    "sequential, each layer fitted to the original model's output (GPTAQ) [default: parallel].",
)
@click.option(
    "--prune-pattern",
    metavar="N:M",
    help="Structured pruning: at most N nonzeros in every M consecutive input weights (2:4).",
)
@click.option(
    "--prune-structure",
    type=click.Choice(["kernel-group", "crossbar"]),
    help="Crossbar-aligned pruning to --sparsity: whole input-channel kernels per crossbar "
    "column block, or whole crossbar tiles, by saliency (OBS with --calib); records a "
    "tile-presence bitmap (docs/crossbar.md).",
)
@click.option(
    "--crossbar",
    type=click.Choice(["crossbar-128", "crossbar-256", "crossbar-64-slc"]),
    help="Crossbar preset whose rows x columns --prune-structure aligns to "
    "[default: crossbar-128].",
)
@click.option(
    "--bias-correction/--no-bias-correction",
    default=None,
    help="With --calib: subtract the mean output shift the compressed weights cause "
    "from each layer's bias [default: on].",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    help="Largest top-1 drop (points) on --calib data the search may spend: per layer (bits, "
    "sparsity, or float) for raw/all/ebpc, the global knob for importance/dictionary.",
)
@click.option(
    "--max-bits-per-weight",
    type=click.FloatRange(0, min_open=True),
    help="The most accurate blob whose weights (streams and scales) take at most this many "
    "bits each: per layer for raw/all/ebpc (needs --calib), the global knob for "
    "importance/dictionary (needs no data).",
)
@click.option(
    "--error-budget",
    type=click.FloatRange(0),
    help="Policy importance: leave up to F x E XOR errors uncorrected, E being the errors "
    "policy `all` patches (F may exceed 1; try 2 to 20).",
)
@click.option(
    "--requantize",
    is_flag=True,
    default=None,
    help="Re-quantize already quantized (int8/uint8) weights to --bits / a lossy policy, "
    "from their own zero points (lossy; without it they are stored exactly).",
)
@click.option("--effort", type=click.IntRange(1, 64), help="XOR solver restarts [default: 1].")
@click.option(
    "--xor-variant",
    type=click.IntRange(1, 3),
    help="XOR codec variant: 1 non-sequential, 2 shift-register (docs/codecs/xor.md §11), "
    "3 mask-adaptive seed widths (§12) [default: 1].",
)
@click.option("--dict-size", type=click.IntRange(1, 256), help="Dictionary codebook size K.")
@click.option("--dict-group", type=click.IntRange(1), help="Output channels per codebook.")
@click.option(
    "--insitu-tolerance",
    type=click.FloatRange(0),
    help="Policy insitu: relative output error each layer may take [default: 0.01].",
)
@click.option("--insitu-config", metavar="BI,BO,QB,QU,QV", help="Policy insitu: forced ranks/bits.")
@click.option("--seed", type=int, help="Seed for the encoders [default: 0].")
@click.option(
    "--min-fidelity",
    type=click.FloatRange(-1, 1),
    default=0.99,
    show_default=True,
    help="Warn (one line, naming the worst layers) when an output's cosine to the original's, "
    "on --calib or synthetic inputs, is below this.",
)
@click.option("--strict", is_flag=True, help="Exit 3 when the fidelity is below --min-fidelity.")
@click.option("--jobs", type=click.IntRange(1), help="Worker processes [default: the cores].")
@click.option("--executor", help="local, or dask:ADDRESS (docs/scale.md) [default: local].")
@click.option(
    "--calib-memory",
    type=click.IntRange(1),
    metavar="MiB",
    help="--calib: the H of a block of layers, calibrated in one pass, fit in this "
    "(docs/reconstruction.md) [default: 64, models with external data only]; the blob does "
    "not depend on it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def compress(
    model: str,
    out: str | None,
    config_file: str | None,
    calib: str | None,
    as_json: bool,
    per_tensor: bool | None,
    min_fidelity: float,
    strict: bool,
    jobs: int | None,
    executor: str | None,
    calib_memory: int | None,
    **flags: Any,
) -> None:
    """Compress MODEL.onnx into a blob, print its per-tensor summary and how close the
    compressed model's outputs are to the original's."""
    options = build_options(
        config_file, per_channel=None if per_tensor is None else not per_tensor, **flags
    )
    target = out or str(Path(model).with_suffix(".xorc"))
    from xorc import cli_compress

    cli_compress.before(options)
    with progress_bar("compress", "B", scale=True) as tick:
        summary = api.compress(
            model, target, options, calib, tick, min_fidelity, jobs, executor, calib_memory
        )
    problem = cli_compress.after(model, summary, options)
    if as_json:
        emit_json(summary.to_json())
    else:
        from xorc.report import render_text

        click.echo(render_text(summary))
        click.echo(f"wrote {target}")
    if strict and problem is not None:
        from xorc.errors import FidelityBelowThreshold

        raise FidelityBelowThreshold(f"{target}: {problem} (--strict)")


@cli.command()
@click.argument("blob", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@handle_errors
def inspect(blob: str, as_json: bool) -> None:
    """Show what is inside BLOB: header, sections, per-tensor table, totals.

    Reads headers and records only, so it works on a blob whose payload is damaged; it then
    names the section whose CRC fails and exits 4.
    """
    summary = api.inspect(blob)
    if as_json:
        emit_json(summary.to_json())
    else:
        from xorc.report import render_text

        click.echo(render_text(summary))
    if summary.damaged:
        click.echo(f"xorc: error: {blob}: {'; '.join(summary.damaged)}", err=True)
        sys.exit(int(ExitCode.BAD_BLOB))


def _register() -> None:
    from xorc.cli_analyze import analyze, fmap
    from xorc.cli_decode import decompress, simulate, verify

    for command in (decompress, verify, simulate, analyze, fmap):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli()
