"""A fresh PostgreSQL database for a test: on this machine's Debian cluster (started if it is
down), owned by a role of its own with a random password; both dropped afterwards.

Root only (psql runs as the postgres user). The cluster is left running when the test ends:
other processes on the machine (a bench run, another test session) may be using it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from contextlib import contextmanager
from typing import Iterator

PG_VERSION = "15"


def available() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    if shutil.which("pg_ctlcluster") is None:
        return "PostgreSQL is not installed (scripts/system-deps.sh installs it)"
    if os.geteuid() != 0:
        return "starting the local PostgreSQL cluster needs root"
    return None


def _psql(sql: str) -> None:
    # SQL on stdin, not argv: the role's password must not show in the process list.
    done = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1"],
                          input=sql, capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()[:500]}")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yields postgresql://ROLE:PASSWORD@127.0.0.1:5432/DB (never print it)."""
    if subprocess.run(["pg_ctlcluster", PG_VERSION, "main", "status"], capture_output=True).returncode != 0:
        subprocess.run(["pg_ctlcluster", PG_VERSION, "main", "start"], check=True, capture_output=True)
    name = f"changeline_test_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    _psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    try:
        _psql(f'CREATE DATABASE "{name}" OWNER {name}')
        yield f"postgresql://{name}:{password}@127.0.0.1:5432/{name}"
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _psql(f"DROP ROLE IF EXISTS {name}")
