"""CHANGELINE_STATE_URL: a bad value is refused naming the setting, the password never shows."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from changeline.errors import InputError, StateStoreError
from changeline.state.database import PostgresDatabase, parse_url, redacted

SECRET = "s3cret-Pa55word"


@pytest.mark.parametrize("url, says", [
    (f"mysql://u:{SECRET}@db/x", "the scheme must be postgresql://"),
    (f"postgresql+asyncpg://u:{SECRET}@db/x", "without a driver name"),
    (f"postgresql://u:{SECRET}@db", "no database name"),
    (f"postgresql://u:{SECRET}@/x", "no host"),
    (f"postgresql://u:{SECRET}@db:notaport/x", "not a URL"),
    (f"postgresql://u:{SECRET}@db:0/x", "port 0"),
    ("/var/lib/journal.sqlite", "the scheme must be postgresql://"),
])
def test_a_bad_url_names_the_setting_and_hides_the_password(url, says):
    with pytest.raises(InputError) as caught:
        parse_url(url)
    message = str(caught.value)
    assert message.startswith("CHANGELINE_STATE_URL: ") and says in message, message
    assert SECRET not in message


def test_redacted_masks_only_the_password():
    assert redacted(f"postgresql://line:{SECRET}@db.example:5433/state") == "postgresql://line:***@db.example:5433/state"
    assert redacted("postgresql://db.example/state") == "postgresql://db.example/state"
    assert redacted(f"postgresql://line:a:b{SECRET}@db/state") == "postgresql://line:***@db/state"


def test_a_wrong_password_fails_at_once_without_showing_it(postgres_url):
    parts = urlsplit(postgres_url)
    wrong = postgres_url.replace(f":{parts.password}@", f":{SECRET}@")
    with pytest.raises(StateStoreError) as caught:
        PostgresDatabase(wrong)
    message = str(caught.value)
    assert "CHANGELINE_STATE_URL" in message and "password authentication failed" in message, message
    assert SECRET not in message and parts.password not in message
    assert f"{parts.username}:***@127.0.0.1:5432/" in message


def test_the_cli_refuses_a_bad_setting_with_exit_2_and_no_traceback(tmp_path):
    env = {**os.environ, "CHANGELINE_HOME": str(tmp_path), "CHANGELINE_STATE_URL": f"mysql://u:{SECRET}@db/x"}
    done = subprocess.run([sys.executable, "-m", "changeline.cli", "resume", "c-1"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == [], "a refused setting must write nothing (once it made a SQLite file of it)"
    assert done.returncode == 2, done.stderr
    assert "CHANGELINE_STATE_URL: mysql://u:***@db/x: the scheme must be postgresql://" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stdout + done.stderr
