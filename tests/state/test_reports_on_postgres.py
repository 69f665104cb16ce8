"""A campaign's records in the PostgreSQL store: the report reads them through the store API, and
no file the report writes holds the store's password."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from changeline.reports.build import build_campaign_report
from tests.reports.sample_run import CAMPAIGN, make_run


def test_the_report_reads_the_shared_store_and_never_writes_its_password(postgres_url, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("CHANGELINE_HOME", str(home))
    monkeypatch.setenv("CHANGELINE_STATE_URL", postgres_url)
    make_run(home)
    assert not (home / "state").exists() and not (home / "backups").exists(), "the records went to files"
    paths = build_campaign_report(CAMPAIGN)
    data = json.loads(paths.json.read_text())
    assert {e["ne"]: e["status"] for e in data["nes"]} == {"amf-1": "done", "smf-1": "rolled-back",
                                                          "upf-1": "deferred", "nrf-1": "ineligible"}
    parts = urlsplit(postgres_url)
    written = [p for p in home.rglob("*") if p.is_file()]
    # The configs around the change came from the database's backups.
    assert any(p.name == "config-before.xml" and "<t3512>" in p.read_text() for p in written)
    assert f"{parts.username}:***@" in paths.json.read_text()
    for path in written:
        assert parts.password not in path.read_text(errors="replace"), path
