"""`python -m changeline.devices.sim [up options]`: run the simulator in the foreground
(as a container's main process does); prints `changeline-sim ready: N NEs ...` once every
listener is up."""

from __future__ import annotations

import sys

import click

from changeline.cli import report_error
from changeline.errors import ChangelineError

from .cli import app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        app(["up", "--foreground", *args], standalone_mode=False, prog_name="python -m changeline.devices.sim")
    except ChangelineError as err:
        report_error(err)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
