"""What `xorc compress` says on stderr around a run: a policy left lossless, a search that
missed its target, the summary's warnings, and the fidelity check's notes and warning."""

from __future__ import annotations

from typing import Any

import click

from xorc import policies
from xorc.config import CompressOptions
from xorc.report import Summary


def before(options: CompressOptions) -> None:
    """Warn when a lossy policy's knob is missing, so the run is lossless."""
    policy = policies.get(options.policy)
    if policy.direct_knob is None:
        return
    flag = "--" + policy.direct_knob.replace("_", "-")
    knobs = (getattr(options, policy.direct_knob), options.max_drop, options.max_bits_per_weight)
    if all(k is None for k in knobs):
        click.echo(
            f"xorc: warning: policy {policy.name} without {flag}, --max-drop or "
            "--max-bits-per-weight leaves no error uncorrected (lossless)",
            err=True,
        )


def after(model: str, summary: Summary, options: CompressOptions) -> str | None:
    """Print the run's warnings; the fidelity warning line, if any (for --strict)."""
    search = summary.meta.get("search")
    if isinstance(search, dict) and not search.get("met", True):
        if search.get("goal") == "size":
            reached = 8 * search["payload_bytes"] / summary.totals()["n_weights"]
            miss = f"--max-bits-per-weight: the smallest blob policy {options.policy} reaches "
            miss += f"is {reached:.3f} bits/weight"
        else:
            miss = f"--max-drop: no setting keeps the drop within {options.max_drop} points "
            miss += f"(the most accurate drops {search['drop_pp']}); kept the most accurate"
        click.echo(f"xorc: warning: {miss}", err=True)
    for line in summary.warnings():
        click.echo(f"xorc: warning: {model}: {line}", err=True)
    return _fidelity(summary.fidelity)


def _fidelity(fid: dict[str, Any] | None) -> str | None:
    """Print the fidelity check's notes and warning on stderr; the warning, if any."""
    if fid is None:
        return None
    for note in fid["notes"]:
        click.echo(f"xorc: note: {note}", err=True)
    if fid["passed"]:
        return None
    from xorc.fidelity import Fidelity

    line = Fidelity(fid["inputs"], fid["outputs"], fid["layers"], fid["threshold"]).warning()
    click.echo(f"xorc: warning: {line}", err=True)
    return line
