"""`python -m changeline.models ...`: the `models` and `plan` commands without the rest of
the CLI (the same commands `changeline models ...` and `changeline plan` mount)."""

from __future__ import annotations

import sys

import typer

from changeline.models.cli import app as models_app
from changeline.models.cli import plan as plan_command


def main(argv: list[str] | None = None) -> int:
    from changeline.cli import run_app

    root = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    root.add_typer(models_app, name="models")
    root.command("plan")(plan_command)
    return run_app(root, argv)


if __name__ == "__main__":
    sys.exit(main())
