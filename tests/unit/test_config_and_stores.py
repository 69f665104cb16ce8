"""Canonical config, durable backups and journal: pure or local-disk only."""

import multiprocessing
import os
import signal

import pytest

from changeline.state.backups import BackupStore
from changeline.state.journal import Journal
from changeline.devices.configxml import canonical, diff
from changeline.errors import BackupError

A = b'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><ne xmlns="urn:x"><a>1</a><b>2</b></ne></config>'
A_PRETTY = b"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <ne xmlns="urn:x">
    <a>1</a>
    <b>2</b>
  </ne>
</config>"""
A_PREFIXED = b'<nc:config xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><x:ne xmlns:x="urn:x"><x:a>1</x:a><x:b>2</x:b></x:ne></nc:config>'
B = A.replace(b"<b>2</b>", b"<b>3</b>")


def test_canonical_ignores_whitespace_and_prefixes_but_not_values():
    assert canonical(A) == canonical(A_PRETTY) == canonical(A_PREFIXED)
    assert canonical(A) != canonical(B)
    assert diff(A, A_PRETTY) == ""
    text = diff(A, B)
    assert "-    <b>2</b>" in text and "+    <b>3</b>" in text


def test_backups_are_content_addressed_never_overwritten(tmp_path):
    store = BackupStore(tmp_path)
    one = store.record(ne="amf-1", run_id="r", software_version="1.2.0", running=A, startup=A, state=None)
    two = store.record(ne="amf-1", run_id="r", software_version="1.2.0", running=B, startup=None, state=None)
    assert store.get_object(one.running_sha256) == A
    assert [r.id for r in store.history("amf-1")] == [one.id, two.id]
    assert store.latest("amf-1") == two
    assert len(list((tmp_path / "objects").rglob("*"))) == 4  # 2 dirs + 2 objects (A shared by running/startup)


def test_corrupt_backup_object_is_detected(tmp_path):
    store = BackupStore(tmp_path)
    digest = store.put_object(A)
    path = tmp_path / "objects" / digest[:2] / digest
    path.write_bytes(B)
    with pytest.raises(BackupError, match="corrupt"):
        store.get_object(digest)


def _crash_after_begin(path):
    journal = Journal(path)
    journal.begin("run", "amf-1", "activate", "activate_software", {"version": "1.2.0"})
    os.kill(os.getpid(), signal.SIGKILL)


def test_journal_survives_sigkill_of_the_writer(tmp_path):
    path = tmp_path / "journal.sqlite"
    proc = multiprocessing.get_context("spawn").Process(target=_crash_after_begin, args=(path,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    entries = Journal(path).to_undo("run", "amf-1")
    assert [(e.step, e.status, e.undo) for e in entries] == [("activate", "started", {"version": "1.2.0"})]


def test_journal_undo_order_and_marks(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    a = j.begin("r", "n", "drain", "drain_traffic", {"restore": True})
    j.finish(a, "done", {})
    j.begin("r", "n", "precheck", "precheck", None)
    b = j.begin("r", "n", "activate", "activate_software", {"version": "1"})
    assert [e.id for e in j.to_undo("r", "n")] == [b, a]
    j.mark_undo(b, "undone", {"ok": True})
    assert [e.id for e in j.to_undo("r", "n")] == [a]
