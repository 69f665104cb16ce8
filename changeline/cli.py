"""The `changeline` command: one entry point, sub-commands per area.

Every expected failure (bad input, device refused, check failed) is a `ChangelineError`
and ends as a readable message with exit code 1; a traceback means a bug.
"""

from __future__ import annotations

import sys

import typer

from changeline.errors import ChangelineError, InputError

app = typer.Typer(
    name="changeline",
    help="Model-driven upgrades and changes of 5GC/IMS network elements.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount_subcommands() -> None:
    # Imported lazily so `changeline --help` stays fast and one broken area
    # cannot take the whole command down at import time.
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


def report_error(err: ChangelineError) -> None:
    if isinstance(err, InputError):
        for problem in err.problems:
            # Problems found outside any file (a bad option value) carry no position.
            text = str(problem) if problem.line else f"{problem.file}: {problem.field + ': ' if problem.field else ''}{problem.message}"
            typer.echo(text, err=True)
        typer.echo(f"{len(err.problems)} problem(s) found", err=True)
    else:
        typer.echo(f"error: {err.reason}", err=True)


def main(argv: list[str] | None = None) -> int:
    _mount_subcommands()
    try:
        # Outside standalone mode click answers a command's typer.Exit(code) by returning the code.
        code = app(args=argv, standalone_mode=False)
    except ChangelineError as err:
        report_error(err)
        return 1
    except typer.Exit as ex:  # raised by commands that decide their own exit code
        return ex.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except Exception as ex:  # usage errors (bad option values) arrive here in non-standalone mode
        # typer bundles its own click: take the ClickException class from typer itself.
        click_exception = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
        if isinstance(ex, click_exception):
            ex.show()
            return ex.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
