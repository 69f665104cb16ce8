"""Durable, content-addressed backups of NE configuration and software state
(changeline.state.api.Backups): files under CHANGELINE_HOME, or the state store's PostgreSQL.

A backup is only a backup once it is stored durably and has been read back. Objects are
keyed by their sha256 and re-read and re-hashed after every write; records are append-only
- nothing is ever overwritten, so every backup ever taken stays available for rollback.
Files: written to a temporary file, fsynced, renamed into place, the directory fsynced.
Database: committed (PostgreSQL waits for its WAL flush) before the read-back.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path

from changeline.errors import BackupError
from changeline.state.api import BackupRecord
from changeline.state.database import COLUMN_TYPES, Database


class _ContentAddressed(ABC):
    """What every backup store does the same way; each stores bytes and records its own way."""

    location: str

    @abstractmethod
    def _write_object(self, digest: str, data: bytes) -> None: ...
    @abstractmethod
    def _read_object(self, digest: str) -> bytes | None: ...
    @abstractmethod
    def _write_record(self, rec: BackupRecord, text: str) -> bool: ...  # False: the id is taken
    @abstractmethod
    def _read_record(self, record_id: str) -> str | None: ...
    @abstractmethod
    def _record_ids(self, ne: str) -> list[str]: ...

    def put_object(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._write_object(digest, data)
        # Read back: a backup that cannot be read is no backup.
        if self.get_object(digest) != data:
            raise BackupError(f"backup object {digest[:12]} did not read back identically")
        return digest

    def get_object(self, digest: str) -> bytes:
        data = self._read_object(digest)
        if data is None:
            raise BackupError(f"backup object {digest[:12]} is missing from {self.location}")
        if hashlib.sha256(data).hexdigest() != digest:
            raise BackupError(f"backup object {digest[:12]} is corrupt (sha256 mismatch)")
        return data

    def record(self, *, ne: str, run_id: str, software_version: str, running: bytes,
               startup: bytes | None, state: bytes | None) -> BackupRecord:
        running_sha = self.put_object(running)
        startup_sha = self.put_object(startup) if startup is not None else None
        state_sha = self.put_object(state) if state is not None else None
        taken = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(taken)) + f"{taken % 1:.6f}"[1:]
        rec = BackupRecord(id=f"{ne}/{stamp}-{running_sha[:12]}", ne=ne, run_id=run_id, taken_at=taken,
                           software_version=software_version, running_sha256=running_sha,
                           startup_sha256=startup_sha, state_sha256=state_sha)
        if not self._write_record(rec, json.dumps(asdict(rec), indent=2, sort_keys=True)):
            raise BackupError(f"backup record {rec.id} already exists; records are never overwritten")
        if self.load(rec.id) != rec:
            raise BackupError(f"backup record {rec.id} did not read back identically")
        return rec

    def load(self, record_id: str) -> BackupRecord:
        text = self._read_record(record_id)
        if text is None:
            raise BackupError(f"backup record {record_id} not found in {self.location}")
        try:
            return BackupRecord(**json.loads(text))
        except (ValueError, TypeError) as err:
            raise BackupError(f"backup record {record_id} is unreadable: {err}") from None

    def history(self, ne: str) -> list[BackupRecord]:
        return sorted((self.load(i) for i in self._record_ids(ne)), key=lambda r: r.taken_at)

    def latest(self, ne: str, run_id: str | None = None) -> BackupRecord | None:
        records = [r for r in self.history(ne) if run_id is None or r.run_id == run_id]
        return records[-1] if records else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class BackupStore(_ContentAddressed):
    """Files: `objects/<sha[:2]>/<sha>` and `records/<ne>/<stamp>-<sha12>.json` under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "records").mkdir(parents=True, exist_ok=True)

    def _object_path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def _write_object(self, digest: str, data: bytes) -> None:
        path = self._object_path(digest)
        if not path.exists():
            _durable_write(path, data)

    def _read_object(self, digest: str) -> bytes | None:
        try:
            return self._object_path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def _write_record(self, rec: BackupRecord, text: str) -> bool:
        path = self.root / "records" / f"{rec.id}.json"
        if path.exists():
            return False
        _durable_write(path, text.encode())
        return True

    def _read_record(self, record_id: str) -> str | None:
        try:
            return (self.root / "records" / f"{record_id}.json").read_text()
        except FileNotFoundError:
            return None

    def _record_ids(self, ne: str) -> list[str]:
        folder = self.root / "records" / ne
        return [f"{ne}/{p.stem}" for p in folder.glob("*.json")] if folder.is_dir() else []


BACKUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_objects (sha256 TEXT PRIMARY KEY, data {bytes} NOT NULL);
CREATE TABLE IF NOT EXISTS backup_records (
    id TEXT PRIMARY KEY, ne TEXT NOT NULL, record TEXT NOT NULL   -- record: the BackupRecord as JSON
);
CREATE INDEX IF NOT EXISTS backup_records_ne ON backup_records(ne);
"""


class DatabaseBackups(_ContentAddressed):
    """The same store in the state store's database (bytea on PostgreSQL), so workers on any
    machine restore from the backup another took."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.location = db.location
        db.create(BACKUP_SCHEMA.format(**COLUMN_TYPES[db.kind]))

    def _write_object(self, digest: str, data: bytes) -> None:
        self.db.run("INSERT INTO backup_objects(sha256, data) VALUES (?,?) ON CONFLICT (sha256) DO NOTHING",
                    (digest, data))

    def _read_object(self, digest: str) -> bytes | None:
        rows = self.db.run("SELECT data FROM backup_objects WHERE sha256=?", (digest,))
        return bytes(rows[0][0]) if rows else None

    def _write_record(self, rec: BackupRecord, text: str) -> bool:
        rows = self.db.run("INSERT INTO backup_records(id, ne, record) VALUES (?,?,?) ON CONFLICT (id) DO NOTHING "
                           "RETURNING id", (rec.id, rec.ne, text))
        return bool(rows)

    def _read_record(self, record_id: str) -> str | None:
        rows = self.db.run("SELECT record FROM backup_records WHERE id=?", (record_id,))
        return rows[0][0] if rows else None

    def _record_ids(self, ne: str) -> list[str]:
        return [r[0] for r in self.db.run("SELECT id FROM backup_records WHERE ne=?", (ne,))]
