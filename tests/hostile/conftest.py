"""The hostile-input suite: fixtures and the end-of-session counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hostile.harness import COUNTS, Baseline, Sandbox
from tests.hostile.inputs import GOOD_MODEL, good_inventory

ORDER = ("cases", "in-process cases", "tracebacks", "hangs", "escapes", "echoed secrets", "wrong exit codes",
         "unnamed file or field", "over CPU budget")


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.write_sep("-", "hostile input")
        terminalreporter.write_line(", ".join(f"{name}: {COUNTS.get(name, 0)}" for name in ORDER))


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Baseline:
    """A plain, valid command whose CPU every case is judged against."""
    box = Sandbox(tmp_path_factory.mktemp("baseline"))
    model = box.write("model.yaml", GOOD_MODEL.read_text())
    inventory = box.write("inventory.yaml", good_inventory())
    return Baseline(box, ("plan", str(model), "-i", str(inventory), "-t", "all", "--no-device"))


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    sandbox = Sandbox(tmp_path / "box")
    yield sandbox
    shutil.rmtree(tmp_path / "box", ignore_errors=True)
