"""The crossbar parts of the `xorc` command (docs/crossbar.md): `simulate --preset crossbar-*`
and `verify --variation`. Thin: each calls the library and prints its table or JSON."""

from __future__ import annotations

import click

from xorc import api
from xorc.cli_support import emit_json


def simulate_crossbars(blob: str, preset: str, config_file: str | None, as_json: bool) -> None:
    """Map BLOB's layers onto the crossbars of `preset` and print the table (or JSON)."""
    from xorc.datapath.crossbar import render_crossbars

    result = api.map_crossbars(blob, preset, config_file)
    if as_json:
        emit_json({"schema_version": 1, "crossbar": result.to_json()})
    else:
        click.echo(render_crossbars(result))
