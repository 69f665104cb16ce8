"""The state store API (changeline.state.api) on both backends: the same tests on SQLite and on
PostgreSQL. Durability and concurrency are checked across real processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import uuid

import pytest

from changeline.errors import BackupError
from changeline.state.api import Backups, NERun, StateStore
from changeline.state.backups import BackupStore, DatabaseBackups
from changeline.state.journal import Journal


@pytest.fixture
def run() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by the session's tests


def test_both_stores_implement_the_api(database, tmp_path):
    assert isinstance(Journal(database), StateStore)
    assert isinstance(DatabaseBackups(database), Backups)
    assert isinstance(BackupStore(tmp_path / "b"), Backups)


def test_undo_journal_order_marks_and_runs(database, run):
    j = Journal(database)
    a = j.begin(run, "amf-1", "drain", "drain_traffic", {"restore": True})
    j.finish(a, "done", {"changed": True})
    j.begin(run, "amf-1", "precheck", "precheck", None)
    b = j.begin(run, "amf-1", "activate", "activate_software", {"version": "1"})
    other = f"{run}-later"
    j.begin(other, "amf-1", "drain", "drain_traffic", {"restore": True})
    assert [e.id for e in j.to_undo(run, "amf-1")] == [b, a]
    j.mark_undo(b, "undone", {"ok": True})
    assert [e.id for e in j.to_undo(run, "amf-1")] == [a]
    entries = j.entries(run)
    assert [(e.step, e.status) for e in entries] == [("drain", "done"), ("precheck", "started"), ("activate", "undone")]
    assert entries[0].result == {"changed": True} and entries[2].undo_result == {"ok": True}
    assert entries[1].undo is None and entries[0].finished_at >= entries[0].started_at
    assert [r for r in j.runs_for("amf-1") if r in (run, other)] == [run, other]


def test_baselines_steps_changes_and_statuses_keep_the_latest(database, run):
    j = Journal(database)
    j.put_baseline(run, "upf-1", "kpis", {"rate": 0.99})
    j.put_baseline(run, "upf-1", "kpis", {"rate": 0.98})
    j.put_baseline(run, "upf-1", "backup_id", "upf-1/x")
    assert j.baseline(run, "upf-1") == {"kpis": {"rate": 0.98}, "backup_id": "upf-1/x"}
    assert j.baseline(run, "upf-2") == {}
    j.record_step(run, "upf-1", "precheck", "done", {"name": "precheck"})
    j.record_step(run, "upf-1", "dial-test", "failed", {"reason": "no answer"})
    j.record_step(run, "upf-1", "dial-test", "accepted", {"reason": "no answer"})
    assert j.step_records(run, "upf-1") == {"precheck": ("done", {"name": "precheck"}),
                                            "dial-test": ("accepted", {"reason": "no answer"})}
    assert j.change_of(run, "upf-1").anomalies == []
    j.record_change(run, "upf-1", [{"step": "dial-test"}], [])
    j.record_change(run, "upf-1", [{"step": "dial-test"}], [{"action": "rollback"}], rollback_cause="dial-test: x")
    change = j.change_of(run, "upf-1")
    assert (change.anomalies, change.decisions, change.rollback_cause) == \
        ([{"step": "dial-test"}], [{"action": "rollback"}], "dial-test: x")
    j.set_ne_status(run, "upf-1", "running", "step precheck")
    j.set_ne_status(run, "upf-1", "done")
    j.set_ne_status(run, "upf-2", "skipped", "window")
    assert j.ne_statuses(run) == {"upf-1": ("done", ""), "upf-2": ("skipped", "window")}


def test_a_campaigns_first_arguments_and_plan_stand(database, run):
    j = Journal(database)
    assert j.campaign_args(run) is None and j.plan_of(run) is None
    j.record_campaign(run, {"targets": "all"})
    j.record_campaign(run, {"targets": "other"})
    assert j.campaign_args(run) == {"targets": "all"}
    first = {"targets": ["a", "b"], "waves": [{"name": "all", "nes": ["a", "b"]}]}
    assert j.record_plan(run, first) == first
    assert j.record_plan(run, {"targets": ["c"], "waves": []}) == first
    assert j.plan_of(run) == first


def test_the_campaign_hands_an_ne_to_one_attempt_at_a_time(database, run):
    j = Journal(database)
    assert j.run_of(run, "amf-1") is None
    assert not j.take_run(run, "amf-1", "attempt-1", "host-a pid 1"), "no attempt was handed the NE yet"
    j.assign_run(run, "amf-1", "attempt-1")
    assert j.run_of(run, "amf-1") == NERun("attempt-1", "", 0, None)
    assert j.take_run(run, "amf-1", "attempt-1", "host-a pid 1")
    assert j.beat(run, "amf-1", "attempt-1") and j.beat(run, "amf-1", "attempt-1")
    j.end_run(run, "amf-1", "attempt-1", {"status": "done"})
    assert j.run_of(run, "amf-1") == NERun("attempt-1", "host-a pid 1", 2, {"status": "done"})
    j.assign_run(run, "amf-1", "attempt-2")
    assert j.run_of(run, "amf-1") == NERun("attempt-2", "", 0, None)
    assert not j.beat(run, "amf-1", "attempt-1"), "a superseded attempt must learn it has lost the NE"
    assert not j.take_run(run, "amf-1", "attempt-1", "host-a pid 1")
    j.end_run(run, "amf-1", "attempt-1", {"status": "failed"})  # too late: ignored
    assert j.take_run(run, "amf-1", "attempt-2", "host-b pid 2")
    assert j.run_of(run, "amf-1") == NERun("attempt-2", "host-b pid 2", 0, None)


def _begin_then_die(where: str, run: str) -> None:
    journal = Journal(_reopen(where))
    journal.begin(run, "amf-1", "activate", "activate_software", {"version": "1.2.0"})
    os.kill(os.getpid(), signal.SIGKILL)


def _reopen(where: str):
    from changeline.state.database import PostgresDatabase, SqliteDatabase

    return PostgresDatabase(where) if where.startswith("postgresql://") else SqliteDatabase(where)


def _where(database) -> str:
    # A child process opens the same database: the SQLite file, or the URL (with its password:
    # passed in memory, never printed).
    return str(database.path) if database.kind == "sqlite" else database._url


def test_begin_survives_a_sigkill_of_the_writer(database, run):
    proc = multiprocessing.get_context("spawn").Process(target=_begin_then_die, args=(_where(database), run))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    entries = Journal(database).to_undo(run, "amf-1")
    assert [(e.step, e.status, e.undo) for e in entries] == [("activate", "started", {"version": "1.2.0"})]


def _write_many(where: str, run: str, ne: str, count: int, ids) -> None:
    journal = Journal(_reopen(where))  # several processes create the schema at the same moment too
    for i in range(count):
        entry = journal.begin(run, ne, f"step-{i}", "atom", {"i": i})
        journal.finish(entry, "done", {"i": i})
        journal.record_step(run, ne, f"step-{i}", "done")
        journal.set_ne_status(run, "shared", "running", ne)
        ids.append(entry)


def test_concurrent_writers_in_several_processes(database, run):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        ids = manager.list()
        procs = [ctx.Process(target=_write_many, args=(_where(database), run, f"ne-{p}", 15, ids)) for p in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
        assert [p.exitcode for p in procs] == [0] * 4
        written = list(ids)
    journal = Journal(database)
    entries = journal.entries(run)
    assert len(written) == len(set(written)) == len(entries) == 60
    for p in range(4):
        mine = [e for e in entries if e.ne == f"ne-{p}"]
        assert [e.step for e in mine] == [f"step-{i}" for i in range(15)] and {e.status for e in mine} == {"done"}
        assert len(journal.step_records(run, f"ne-{p}")) == 15
    assert journal.ne_statuses(run)["shared"][0] == "running"


@pytest.fixture(params=["files", "postgresql"])
def backups(request, tmp_path):
    """The embedded store's backups (files) and the shared one's (PostgreSQL)."""
    if request.param == "files":
        return BackupStore(tmp_path / "backups")
    return DatabaseBackups(request.getfixturevalue("postgres_db"))


def test_backups_are_content_addressed_read_back_and_append_only(backups, run):
    running, startup = f"<config>{run}</config>".encode(), f"<startup>{run}</startup>".encode()
    digest = backups.put_object(running)
    assert digest == hashlib.sha256(running).hexdigest() and backups.put_object(running) == digest
    assert backups.get_object(digest) == running
    ne = f"amf-{run}"
    first = backups.record(ne=ne, run_id=run, software_version="1.2.0", running=running, startup=startup, state=None)
    second = backups.record(ne=ne, run_id=f"{run}-b", software_version="1.3.0", running=startup, startup=None,
                            state=b"\x00\xffstate")
    assert backups.load(first.id) == first and first.state_sha256 is None
    assert backups.get_object(second.state_sha256) == b"\x00\xffstate"
    assert backups.history(ne) == [first, second]
    assert backups.latest(ne) == second and backups.latest(ne, run) == first
    assert backups.history(f"nobody-{run}") == [] and backups.latest(f"nobody-{run}") is None
    with pytest.raises(BackupError, match="not found"):
        backups.load(f"{ne}/nothing")
    with pytest.raises(BackupError, match="missing"):
        backups.get_object("0" * 64)


def test_a_corrupt_database_backup_object_is_detected(database, run):
    store = DatabaseBackups(database)
    digest = store.put_object(f"good {run}".encode())
    database.run("UPDATE backup_objects SET data=? WHERE sha256=?", (b"tampered", digest))
    with pytest.raises(BackupError, match="corrupt"):
        store.get_object(digest)
