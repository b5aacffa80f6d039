"""The crossbar parts of the `xorc` command (docs/crossbar.md): `simulate --preset crossbar-*`
and `verify --variation`. Thin: each calls the library and prints its table or JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from xorc import api
from xorc.cli_support import emit_json

F = TypeVar("F", bound=Callable[..., Any])


def simulate_crossbars(blob: str, preset: str, config_file: str | None, as_json: bool) -> None:
    """Map BLOB's layers onto the crossbars of `preset` and print the table (or JSON)."""
    from xorc.datapath.crossbar import render_crossbars

    result = api.map_crossbars(blob, preset, config_file)
    if as_json:
        emit_json({"schema_version": 1, "crossbar": result.to_json()})
    else:
        click.echo(render_crossbars(result))


def variation_options(func: F) -> F:
    """The `verify` options of device variation (docs/crossbar.md §4)."""
    options = [
        click.option(
            "--variation",
            metavar="lognormal:SIGMA",
            help="With --accuracy: Monte-Carlo trials of log-normal write noise on the "
            "bit-sliced crossbar cells; reports accuracy mean and spread.",
        ),
        click.option("--trials", type=click.IntRange(1, 10000), default=20, show_default=True,
                     help="Trials of --variation."),
        click.option("--stuck-at", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                     help="Fraction of cells stuck (half at 0, half at the top conductance)."),
        click.option("--compensate", type=click.Choice(["gain", "remap", "remap+gain"]),
                     is_flag=False, flag_value="gain", default=None,
                     help="Also run the trials compensated from --calib: gain (per-column gain "
                     "recalibration, the default), remap (spare columns for the worst columns), "
                     "or remap+gain."),
        click.option("--spare-columns", type=click.IntRange(0, 4096), default=8,
                     show_default=True, help="Spare columns per crossbar column block (remap)."),
        click.option("--calib", type=click.Path(dir_okay=False),
                     help="Calibration .npz for --compensate (not the evaluation data)."),
        click.option("--crossbar", "crossbar_preset", default="crossbar-128", show_default=True,
                     help="Crossbar preset: cell bits, bit slicing, differential pairs."),
        click.option("--variation-seed", type=int, default=0, show_default=True,
                     help="Seed of the trials (trial t draws from (seed, t))."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def variation_trials(
    blob: str, model: str | None, data: str | None, options: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The --variation runs of `verify` (without and, with --compensate, with compensation)."""
    if options.get("variation") is None:
        return None
    if model is None or data is None:
        raise click.UsageError("--variation needs --accuracy, --model and --data")
    from xorc import variation
    from xorc.datapath.crossbar import get_preset
    from xorc.format import read_bytes, read_file

    var = variation.Variation.parse(
        options["variation"],
        options["stuck_at"],
        options["trials"],
        options["variation_seed"],
        options["spare_columns"],
    )
    cfg = get_preset(options["crossbar_preset"])
    container = read_bytes(read_file(blob))
    runs = ["none", options["compensate"]] if options["compensate"] else ["none"]
    return [
        variation.measure(container, model, data, var, cfg, c, options["calib"]).to_json()
        for c in runs
    ]


def variation_text(runs: list[dict[str, Any]]) -> list[str]:
    """One line per --variation run."""
    return [
        f"variation lognormal:{r['sigma']:g} stuck-at {r['stuck_at']:g} ({r['crossbar']}, "
        f"{r['trials']} trials, "
        f"{'compensated: ' + r['compensation'] if r['compensate'] else 'no compensation'}): "
        f"accuracy {r['accuracy_mean']:.2f}% +- {r['accuracy_std']:.2f} "
        f"(min {r['accuracy_min']:.2f}, max {r['accuracy_max']:.2f})"
        for r in runs
    ]
