"""Where the line keeps what must survive the engine: state store, backups, reports.

The state store (journal, baselines, step progress, run state) and the backups live in
PostgreSQL when `CHANGELINE_STATE_URL` is set (postgresql://USER:PASSWORD@HOST:PORT/DB),
shared by the campaign and every worker on any machine; otherwise in SQLite and files under
`CHANGELINE_HOME` (default `.changeline` in the working directory), so a resumed or re-run
campaign on the same machine finds what the crashed one wrote. Evidence and reports are
always files under CHANGELINE_HOME.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from changeline.arguments import path_name_problem
from changeline.errors import InputError, Problem, quoted
from changeline.state.api import Backups, StateStore
from changeline.state.backups import BackupStore, DatabaseBackups
from changeline.state.database import SETTING, PostgresDatabase
from changeline.state.journal import Journal


def home() -> Path:
    return Path(os.environ.get("CHANGELINE_HOME", ".changeline")).resolve()


def state_url() -> str | None:
    return os.environ.get(SETTING, "").strip() or None


@lru_cache(maxsize=8)
def _postgres(url: str) -> PostgresDatabase:
    return PostgresDatabase(url)  # one connection pool per process and URL; a bad URL is refused here


@lru_cache(maxsize=8)
def _journal(url: str | None, path: str) -> Journal:
    return Journal(_postgres(url) if url else path)


@lru_cache(maxsize=8)
def _backups(url: str | None, path: str) -> Backups:
    return DatabaseBackups(_postgres(url)) if url else BackupStore(path)


def journal() -> StateStore:
    return _journal(state_url(), str(home() / "state" / "journal.sqlite"))


def backups() -> Backups:
    return _backups(state_url(), str(home() / "backups"))


def evidence_dir(campaign_id: str, ne: str | None = None) -> Path:
    """`runs/ID[/ne/NE]` under CHANGELINE_HOME; an id or name that would leave it is refused
    here too, whoever checked it before (a deployment's parameters come from the UI)."""
    for what, name in (("campaign id", campaign_id), ("NE name", ne)):
        wrong = None if name is None and what == "NE name" else path_name_problem(name)
        if wrong:
            raise InputError(Problem("<input>", 0, 0, what, f"{quoted(name)} {wrong}"))
    path = home() / "runs" / campaign_id
    return path / "ne" / ne if ne else path
