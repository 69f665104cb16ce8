"""The hostile-input suite: fixtures and the end-of-session counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hostile.harness import COUNTS, Sandbox
from tests.hostile.inputs import GOOD_MODEL, good_inventory

ORDER = ("cases", "in-process cases", "tracebacks", "hangs", "escapes", "echoed secrets", "wrong exit codes",
         "unnamed file or field", "over CPU budget")


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.write_sep("-", "hostile input")
        terminalreporter.write_line(", ".join(f"{name}: {COUNTS.get(name, 0)}" for name in ORDER))


@pytest.fixture(scope="session")
def baseline_cpu_s(tmp_path_factory) -> float:
    """CPU seconds of a plain, valid command: the start-up cost every case pays too."""
    box = Sandbox(tmp_path_factory.mktemp("baseline"))
    model = box.write("model.yaml", GOOD_MODEL.read_text())
    inventory = box.write("inventory.yaml", good_inventory())
    runs = [box.run("plan", str(model), "-i", str(inventory), "-t", "all", "--no-device") for _ in range(2)]
    assert all(r.code == 0 for r in runs), runs[0].stderr
    return max(r.cpu_s for r in runs)


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    sandbox = Sandbox(tmp_path / "box")
    yield sandbox
    shutil.rmtree(tmp_path / "box", ignore_errors=True)
