"""Durable, content-addressed backups of NE configuration and software state.

A backup is only a backup once it is on disk and has been read back: objects are
written to a temporary file, fsynced, renamed into place under their sha256, the
directory fsynced, and then re-read and re-hashed. Records are append-only; nothing
is ever overwritten, so every backup ever taken stays available for rollback.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from changeline.errors import BackupError


@dataclass(frozen=True)
class BackupRecord:
    id: str                 # "<ne>/<timestamp>-<sha12>"
    ne: str
    run_id: str
    taken_at: float
    software_version: str
    running_sha256: str
    startup_sha256: str | None
    state_sha256: str | None


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


class BackupStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "records").mkdir(parents=True, exist_ok=True)

    def _object_path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def put_object(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._object_path(digest)
        if not path.exists():
            _durable_write(path, data)
        # Read back: a backup that cannot be read is no backup.
        if self.get_object(digest) != data:
            raise BackupError(f"backup object {digest[:12]} did not read back identically")
        return digest

    def get_object(self, digest: str) -> bytes:
        path = self._object_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BackupError(f"backup object {digest[:12]} is missing from {self.root}") from None
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
        path = self.root / "records" / f"{rec.id}.json"
        if path.exists():
            raise BackupError(f"backup record {rec.id} already exists; records are never overwritten")
        _durable_write(path, json.dumps(asdict(rec), indent=2, sort_keys=True).encode())
        if self.load(rec.id) != rec:
            raise BackupError(f"backup record {rec.id} did not read back identically")
        return rec

    def load(self, record_id: str) -> BackupRecord:
        path = self.root / "records" / f"{record_id}.json"
        try:
            return BackupRecord(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise BackupError(f"backup record {record_id} not found in {self.root}") from None
        except (ValueError, TypeError) as err:
            raise BackupError(f"backup record {record_id} is unreadable: {err}") from None

    def history(self, ne: str) -> list[BackupRecord]:
        folder = self.root / "records" / ne
        if not folder.is_dir():
            return []
        return sorted((self.load(f"{ne}/{p.stem}") for p in folder.glob("*.json")), key=lambda r: r.taken_at)

    def latest(self, ne: str, run_id: str | None = None) -> BackupRecord | None:
        records = [r for r in self.history(ne) if run_id is None or r.run_id == run_id]
        return records[-1] if records else None
