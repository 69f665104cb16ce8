"""The `changeline` command: one entry point, sub-commands per area.

Every expected failure is a `ChangelineError` and ends as a readable message with the
error's exit code (changeline/errors.py: 2 bad input, 3 could not be carried out); a command
that ran its work exits 0 only if every targeted NE reached its target, 1 otherwise.
A traceback means a bug (exit 70).
"""

from __future__ import annotations

import io
import sys
import traceback

import typer

from changeline.errors import (EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, ChangelineError,
                               InputError, redact)

app = typer.Typer(
    name="changeline",
    help="Model-driven upgrades and changes of 5GC/IMS network elements.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


_mounted = False


def _mount_subcommands() -> None:
    # Imported lazily so `changeline --help` stays fast and one broken area
    # cannot take the whole command down at import time. Once per process: tests call main() often.
    global _mounted
    if _mounted:
        return
    _mounted = True
    from changeline.demo import demo
    from changeline.devices.sim.cli import app as sim_app
    from changeline.flows import cli as flows_cli

    from changeline.models.cli import app as models_app
    from changeline.models.cli import plan as plan_command
    from changeline.reports.cli import report

    app.add_typer(sim_app, name="sim", help="Run simulated network elements.")
    app.add_typer(models_app, name="models", help="List, show, validate and publish models.")
    app.command("plan")(plan_command)
    app.command("run")(flows_cli.run)
    app.command("resume")(flows_cli.resume)
    app.command("rollback")(flows_cli.rollback)
    app.command("serve")(flows_cli.serve)
    app.command("report")(report)
    app.command("demo")(demo)


MAX_SHOWN_PROBLEMS = 200


def report_error(err: ChangelineError) -> None:
    if isinstance(err, InputError):
        # Thousands of lines help nobody (a bad default repeated per host): the first ones do.
        for problem in err.problems[:MAX_SHOWN_PROBLEMS]:
            typer.echo(str(problem), err=True)
        hidden = len(err.problems) - MAX_SHOWN_PROBLEMS
        more = f" (the first {MAX_SHOWN_PROBLEMS} shown, {hidden:,} more)" if hidden > 0 else ""
        typer.echo(f"{len(err.problems)} problem(s) found{more}", err=True)
    else:
        typer.echo(f"error: {redact(err.reason)}", err=True)


def main(argv: list[str] | None = None) -> int:
    _mount_subcommands()
    return run_app(app, argv)


def run_app(command, argv: list[str] | None, **kwargs) -> int:
    """Run a typer app and turn its outcome into the documented exit code (also for the
    `python -m changeline.models` and `python -m changeline.devices.sim` entry points)."""
    # typer bundles its own click: take click's exception classes from typer itself.
    click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        # Without standalone mode click returns the code of a `typer.Exit` instead of exiting.
        code = command(args=argv, standalone_mode=False, **kwargs)
    except ChangelineError as err:
        report_error(err)
        return err.exit_code
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


if __name__ == "__main__":
    sys.exit(main())
