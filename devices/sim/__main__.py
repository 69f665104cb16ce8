"""`python -m changeline.devices.sim [up options]`: run the simulator in the foreground
(as a container's main process does); prints `changeline-sim ready: N NEs ...` once every
listener is up."""

from __future__ import annotations

import sys

from changeline.cli import run_app

from .cli import app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run_app(app, ["up", "--foreground", *args], prog_name="python -m changeline.devices.sim")


if __name__ == "__main__":
    sys.exit(main())
