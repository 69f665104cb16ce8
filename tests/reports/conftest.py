"""A sample campaign on disk under a private CHANGELINE_HOME (see sample_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reports.sample_run import make_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHANGELINE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def sample(home: Path) -> dict:
    """The summary of the four-NE sample campaign written under `home`."""
    return make_run(home)
