"""`python -m changeline.devices.sim [up options]`: run the simulator in the foreground
(as a container's main process does); prints `changeline-sim ready: N NEs ...` once every
listener is up."""

from __future__ import annotations

import sys

from changeline.entrypoint import run_app
from changeline.errors import ChangelineError

from .cli import app
from .errors import SimError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # Its own errors, and changeline's InputError from the loaders it shares (topology, profiles).
    return run_app(app, ["up", "--foreground", *args], expected=(SimError, ChangelineError),
                   prog_name="python -m changeline.devices.sim")


if __name__ == "__main__":
    sys.exit(main())
