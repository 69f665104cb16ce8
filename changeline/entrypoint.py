"""Run a typer app as a command: every outcome becomes the documented exit code.

Shared by every entry point (`changeline`, `python -m changeline.models`, `python -m
changeline.devices.sim`), so it sits low and imports nothing of the line itself: the
lower layers' entry points use it without importing the top-level CLI and the areas it
mounts. A program names the error roots it raises on purpose (`expected`); each carries
its `exit_code` and a readable `reason`, and anything else is a bug (exit 70).
"""

from __future__ import annotations

import io
import traceback

import typer

from changeline.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, ChangelineError, \
    InputError, redact

MAX_SHOWN_PROBLEMS = 200


def report_error(err: Exception) -> None:
    if isinstance(err, InputError):
        # Thousands of lines help nobody (a bad default repeated per host): the first ones do.
        for problem in err.problems[:MAX_SHOWN_PROBLEMS]:
            typer.echo(str(problem), err=True)
        hidden = len(err.problems) - MAX_SHOWN_PROBLEMS
        more = f" (the first {MAX_SHOWN_PROBLEMS} shown, {hidden:,} more)" if hidden > 0 else ""
        typer.echo(f"{len(err.problems)} problem(s) found{more}", err=True)
    else:
        typer.echo(f"error: {redact(getattr(err, 'reason', str(err)))}", err=True)


def run_app(command, argv: list[str] | None, *, expected: tuple[type[Exception], ...] = (ChangelineError,),
            **kwargs) -> int:
    """Run `command` (a typer app) on `argv`; `kwargs` go to click (e.g. `prog_name`)."""
    # typer bundles its own click: take click's exception classes from typer itself.
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        # Without standalone mode click returns the code of a `typer.Exit` instead of exiting.
        code = command(args=argv, standalone_mode=False, **kwargs)
    except expected as err:
        report_error(err)
        return getattr(err, "exit_code", EXIT_FAILED)
    except typer.Exit as ex:
        return ex.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except click_exception as ex:  # usage errors: unknown option, a value of the wrong type
        shown = io.StringIO()  # click repeats the bad value: mask any credential in it
        ex.show(file=shown)
        typer.echo(redact(shown.getvalue()), err=True, nl=False)
        return ex.exit_code if ex.exit_code else EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - a bug: show it whole, with an exit code no expected outcome uses
        typer.echo(redact(traceback.format_exc()), err=True)
        typer.echo("internal error: this is a bug in changeline; please report the traceback above", err=True)
        return EXIT_INTERNAL
    return code if isinstance(code, int) else EXIT_OK
