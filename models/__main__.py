"""`python -m changeline.models ...`: the `models` and `plan` commands without the rest of
the CLI (the same commands `changeline models ...` and `changeline plan` mount)."""

from __future__ import annotations

import sys

import typer

from changeline.errors import ChangelineError
from changeline.models.cli import app as models_app
from changeline.models.cli import plan as plan_command


def main(argv: list[str] | None = None) -> int:
    import click

    from changeline.cli import report_error

    root = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    root.add_typer(models_app, name="models")
    root.command("plan")(plan_command)
    try:
        root(args=argv, standalone_mode=False)
    except ChangelineError as err:
        report_error(err)
        return 1
    except click.exceptions.Exit as ex:
        return ex.exit_code
    except click.ClickException as ex:
        ex.show()
        return ex.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
