"""What every `xorc` command shares: one-line errors with their exit codes, progress bars on
stderr, and the JSON printer (README.md, "Exit codes" and "JSON output")."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from tqdm import tqdm

from xorc.errors import ExitCode, XorcError

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn XorcError into a one-line message and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except XorcError as exc:
            click.echo(f"xorc: error: {exc}", err=True)
            sys.exit(int(exc.exit_code))
        except BrokenPipeError:  # `xorc inspect b.xorc | head`: the reader left; not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(int(ExitCode.OK))
        except MemoryError:
            click.echo("xorc: error: out of memory", err=True)
            sys.exit(int(ExitCode.INTERNAL))
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("XORC_DEBUG"):
                raise
            click.echo(
                f"xorc: internal error: {type(exc).__name__}: {exc} "
                "(set XORC_DEBUG=1 for a traceback, and please report it)",
                err=True,
            )
            sys.exit(int(ExitCode.INTERNAL))

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(desc: str, unit: str, scale: bool = False) -> Iterator[Callable[..., None]]:
    """A tqdm bar on stderr, off when stderr is not a terminal (`scale`: k, M, G units).

    The callback takes the item's name and, optionally, the total and the amount done (1).
    """
    with tqdm(
        desc=desc, unit=unit, unit_scale=scale, file=sys.stderr, disable=None, leave=False
    ) as bar:

        def tick(_name: str = "", total: int | None = None, done: int = 1) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done)

        yield tick


def emit_json(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False))


class OneLineErrors(click.Group):
    """click's own errors (an unknown option, a bad value, a missing argument) as one line on
    stderr with their exit code (2 for usage), like every other xorc error."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `xorc`: the help text
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(f"xorc: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("xorc: aborted", err=True)
            sys.exit(int(ExitCode.INTERNAL))
        sys.exit(rv if isinstance(rv, int) else int(ExitCode.OK))
