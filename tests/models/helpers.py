"""Shared helpers for the model tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from changeline.devices.inventory import Host

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "models" / "library"
FIXTURES = Path(__file__).with_name("fixtures")
INVENTORY = FIXTURES / "inventory.yaml"
MODELINE = "# yaml-language-server: $schema=../../models/schema/model.schema.json\n"


def host(name: str, ne_type: str, version: str = "1.2.0", **data) -> Host:
    return Host(name=name, hostname="192.0.2.1", data={"ne_type": ne_type, "software_version": version, **data})


CHANGELINE = Path(sys.executable).with_name("changeline")


def run_cli(*args: str, env: dict[str, str] | None = None, module: bool = False) -> subprocess.CompletedProcess:
    """`changeline models ...` / `changeline plan ...` as a subprocess; `module=True` runs the same
    commands through `python -m changeline.models` (without the rest of the CLI)."""
    command = [sys.executable, "-m", "changeline.models"] if module else [str(CHANGELINE)]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=120)


def example_params(model) -> dict:
    """Values for the parameters a model leaves without a default (a run must be given them)."""
    return {name: p.example for name, p in model.parameters.items() if not p.has_default}


def library_files() -> list[Path]:
    return sorted(LIBRARY.glob("*/*/*.yaml"))
