"""The state store's tests run each test on both backends: SQLite (embedded) and PostgreSQL
(a fresh database and role on the local cluster, dropped after the session)."""

from __future__ import annotations

import pytest

from tests.pgfixture import postgres_url  # noqa: F401 (a fixture)


@pytest.fixture(scope="session")
def postgres_db(postgres_url):
    from changeline.state.database import PostgresDatabase

    db = PostgresDatabase(postgres_url)
    yield db
    db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A Database of each kind; on PostgreSQL the tests keep apart by run ids and NE names of their own."""
    from changeline.state.database import SqliteDatabase

    if request.param == "sqlite":
        return SqliteDatabase(tmp_path / "journal.sqlite")
    return request.getfixturevalue("postgres_db")
