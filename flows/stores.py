"""Where the line keeps what must survive the engine: journal, backups, reports.

All under `CHANGELINE_HOME` (default `.changeline` in the working directory), so a
resumed or re-run campaign on the same machine finds what the crashed one wrote.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from changeline.arguments import path_name_problem
from changeline.state.backups import BackupStore
from changeline.errors import InputError, Problem, quoted
from changeline.state.journal import Journal


def home() -> Path:
    return Path(os.environ.get("CHANGELINE_HOME", ".changeline")).resolve()


@lru_cache(maxsize=8)
def _journal(path: str) -> Journal:
    return Journal(path)


@lru_cache(maxsize=8)
def _backups(path: str) -> BackupStore:
    return BackupStore(path)


def journal() -> Journal:
    return _journal(str(home() / "state" / "journal.sqlite"))


def backups() -> BackupStore:
    return _backups(str(home() / "backups"))


def evidence_dir(campaign_id: str, ne: str | None = None) -> Path:
    """`runs/ID[/ne/NE]` under CHANGELINE_HOME; an id or name that would leave it is refused
    here too, whoever checked it before (a deployment's parameters come from the UI)."""
    for what, name in (("campaign id", campaign_id), ("NE name", ne)):
        wrong = None if name is None and what == "NE name" else path_name_problem(name)
        if wrong:
            raise InputError(Problem("<input>", 0, 0, what, f"{quoted(name)} {wrong}"))
    path = home() / "runs" / campaign_id
    return path / "ne" / ne if ne else path
