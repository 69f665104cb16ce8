"""The `changeline` command: one entry point, sub-commands per area.

Every expected failure is a `ChangelineError` (or, under `changeline sim`, the simulator's
own `SimError`) and ends as a readable message with the error's exit code (changeline/errors.py: 2 bad input, 3 could not be carried out); a command
that ran its work exits 0 only if every targeted NE reached its target, 1 otherwise.
A traceback means a bug (exit 70).
"""

from __future__ import annotations

import sys

import typer

from changeline.entrypoint import run_app
from changeline.errors import ChangelineError

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


def main(argv: list[str] | None = None) -> int:
    _mount_subcommands()
    # `changeline sim ...` runs the simulator's commands, which raise its own error root.
    from changeline.devices.sim.errors import SimError

    return run_app(app, argv, expected=(ChangelineError, SimError))


if __name__ == "__main__":
    sys.exit(main())
