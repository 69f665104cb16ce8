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

import pytest


def _cluster() -> tuple[str, str, str]:
    """(version, name, port) of the machine's first cluster (Debian makes `15 main` on bookworm)."""
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.split()
    if len(listed) < 3:
        raise RuntimeError("no PostgreSQL cluster on this machine (pg_createcluster VERSION main makes one)")
    return listed[0], listed[1], listed[2]


def available() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    if shutil.which("pg_ctlcluster") is None:
        return "PostgreSQL is not installed (scripts/system-deps.sh installs it)"
    if os.geteuid() != 0:
        return "starting the local PostgreSQL cluster needs root"
    return None


def _psql(sql: str, port: str) -> None:
    # SQL on stdin, not argv: the role's password must not show in the process list.
    done = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-p", port, "-v", "ON_ERROR_STOP=1"],
                          input=sql, capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()[:500]}")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yields postgresql://ROLE:PASSWORD@127.0.0.1:PORT/DB (never print it)."""
    version, cluster, port = _cluster()
    if subprocess.run(["pg_ctlcluster", version, cluster, "status"], capture_output=True).returncode != 0:
        subprocess.run(["pg_ctlcluster", version, cluster, "start"], check=True, capture_output=True)
    name = f"changeline_test_{secrets.token_hex(6)}"
    password = secrets.token_urlsafe(18)
    _psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'", port)
    try:
        _psql(f'CREATE DATABASE "{name}" OWNER {name}', port)
        yield f"postgresql://{name}:{password}@127.0.0.1:{port}/{name}"
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', port)
        _psql(f"DROP ROLE IF EXISTS {name}", port)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database for the test session (conftests import this fixture)."""
    why_not = available()
    if why_not:
        pytest.skip(why_not)
    with fresh_database() as url:
        yield url
