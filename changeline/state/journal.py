"""The durable undo journal: what each mutating step was about to do, and how to undo it.

Prefect's transactions keep rollback hooks in memory; an engine killed mid-campaign
loses them. Every mutating atom therefore writes its undo record here *before* it
acts, and marks the step done after. On resume, a step `started` but not `done` is
reconciled from this record and the device's own state.

SQLite in WAL mode with synchronous=FULL: a committed row survives a SIGKILL of the
engine and a power cut. One file serves many processes on one machine.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    ne TEXT NOT NULL,
    step TEXT NOT NULL,
    atom TEXT NOT NULL,
    status TEXT NOT NULL,          -- started | done | failed | undone | undo-failed | skipped
    undo TEXT,                     -- JSON undo record, NULL for read-only atoms
    result TEXT,                   -- JSON AtomResult once finished
    undo_result TEXT,              -- JSON result of the undo, once undone (or why it failed)
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS steps_run_ne ON steps(run_id, ne);
CREATE TABLE IF NOT EXISTS baselines (
    run_id TEXT NOT NULL, ne TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (run_id, ne, key)
);
CREATE TABLE IF NOT EXISTS ne_steps (
    run_id TEXT NOT NULL, ne TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL,
    result TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, ne, step)
);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY, args TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ne_status (
    run_id TEXT NOT NULL, ne TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, ne)
);
CREATE TABLE IF NOT EXISTS campaign_plans (
    campaign_id TEXT PRIMARY KEY, plan TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ne_changes (
    run_id TEXT NOT NULL, ne TEXT NOT NULL,
    anomalies TEXT NOT NULL, decisions TEXT NOT NULL,  -- JSON lists, as the NE's outcome holds them
    rollback_cause TEXT,                               -- set once a rollback was decided, before it starts
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, ne)
);
"""


@dataclass(frozen=True)
class NEChange:
    """What an NE's run decided on its way, so a resumed run goes on from there: the anomalies
    met (with the decisions taken on them) and, once a rollback was decided, why."""

    anomalies: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    rollback_cause: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    id: int
    run_id: str
    ne: str
    step: str
    atom: str
    status: str
    undo: dict[str, Any] | None
    result: dict[str, Any] | None
    started_at: float
    finished_at: float | None
    undo_result: dict[str, Any] | None = None


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def begin(self, run_id: str, ne: str, step: str, atom: str, undo: dict[str, Any] | None) -> int:
        """Record intent (and the undo) before the atom touches the NE; returns the entry id."""
        cur = self._conn().execute(
            "INSERT INTO steps(run_id, ne, step, atom, status, undo, started_at) VALUES (?,?,?,?,?,?,?)",
            (run_id, ne, step, atom, "started", json.dumps(undo) if undo is not None else None, time.time()),
        )
        return int(cur.lastrowid)

    def finish(self, entry_id: int, status: str, result: dict[str, Any] | None = None) -> None:
        self._conn().execute(
            "UPDATE steps SET status=?, result=?, finished_at=? WHERE id=?",
            (status, json.dumps(result, default=str) if result is not None else None, time.time(), entry_id),
        )

    def mark_undo(self, entry_id: int, status: str, result: dict[str, Any]) -> None:
        """`undone` or `undo-failed`; the step's own result is kept for the report."""
        self._conn().execute("UPDATE steps SET status=?, undo_result=? WHERE id=?",
                             (status, json.dumps(result, default=str), entry_id))

    def entries(self, run_id: str, ne: str | None = None) -> list[JournalEntry]:
        sql = ("SELECT id, run_id, ne, step, atom, status, undo, result, started_at, finished_at, undo_result "
               "FROM steps WHERE run_id=?")
        args: tuple = (run_id,)
        if ne is not None:
            sql += " AND ne=?"
            args += (ne,)
        rows = self._conn().execute(sql + " ORDER BY id", args).fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None,
                             json.loads(r[7]) if r[7] else None, r[8], r[9], json.loads(r[10]) if r[10] else None)
                for r in rows]

    def to_undo(self, run_id: str, ne: str) -> list[JournalEntry]:
        """Mutating steps that started (done or caught mid-way) and are not undone yet, newest first."""
        return [e for e in reversed(self.entries(run_id, ne))
                if e.undo is not None and e.status in ("started", "done", "failed", "undo-failed")]

    def put_baseline(self, run_id: str, ne: str, key: str, value: Any) -> None:
        self._conn().execute("INSERT OR REPLACE INTO baselines(run_id, ne, key, value) VALUES (?,?,?,?)",
                             (run_id, ne, key, json.dumps(value, default=str)))

    def baseline(self, run_id: str, ne: str) -> dict[str, Any]:
        rows = self._conn().execute("SELECT key, value FROM baselines WHERE run_id=? AND ne=?", (run_id, ne))
        return {k: json.loads(v) for k, v in rows}

    def record_step(self, run_id: str, ne: str, step: str, status: str, result: dict[str, Any] | None = None) -> None:
        """Progress of every step of a plan (read-only ones too), so a resume skips what finished."""
        self._conn().execute(
            "INSERT OR REPLACE INTO ne_steps(run_id, ne, step, status, result, updated_at) VALUES (?,?,?,?,?,?)",
            (run_id, ne, step, status, json.dumps(result, default=str) if result is not None else None, time.time()))

    def step_records(self, run_id: str, ne: str) -> dict[str, tuple[str, dict[str, Any] | None]]:
        rows = self._conn().execute("SELECT step, status, result FROM ne_steps WHERE run_id=? AND ne=? ORDER BY updated_at",
                                    (run_id, ne))
        return {step: (status, json.loads(result) if result else None) for step, status, result in rows}

    def record_campaign(self, campaign_id: str, args: dict[str, Any]) -> None:
        """The arguments a campaign started with, so `changeline resume ID` can re-run it as it was."""
        self._conn().execute("INSERT OR IGNORE INTO campaigns(campaign_id, args, created_at) VALUES (?,?,?)",
                             (campaign_id, json.dumps(args, default=str), time.time()))

    def campaign_args(self, campaign_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT args FROM campaigns WHERE campaign_id=?", (campaign_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_plan(self, campaign_id: str, plan: dict[str, Any]) -> dict[str, Any]:
        """The campaign's plan as its first run made it (targeted NEs, waves); later runs of the
        same campaign get that one back, never a new one."""
        self._conn().execute("INSERT OR IGNORE INTO campaign_plans(campaign_id, plan, created_at) VALUES (?,?,?)",
                             (campaign_id, json.dumps(plan), time.time()))
        stored = self.plan_of(campaign_id)
        assert stored is not None
        return stored

    def plan_of(self, campaign_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT plan FROM campaign_plans WHERE campaign_id=?", (campaign_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_change(self, run_id: str, ne: str, anomalies: list[dict[str, Any]], decisions: list[dict[str, Any]],
                      rollback_cause: str | None = None) -> None:
        """The NE's anomalies and decisions so far; with `rollback_cause`, the rollback about to start."""
        self._conn().execute(
            "INSERT OR REPLACE INTO ne_changes(run_id, ne, anomalies, decisions, rollback_cause, updated_at) "
            "VALUES (?,?,?,?,?,?)",
            (run_id, ne, json.dumps(anomalies, default=str), json.dumps(decisions, default=str), rollback_cause,
             time.time()))

    def change_of(self, run_id: str, ne: str) -> NEChange:
        row = self._conn().execute("SELECT anomalies, decisions, rollback_cause FROM ne_changes WHERE run_id=? AND ne=?",
                                   (run_id, ne)).fetchone()
        if row is None:
            return NEChange([], [])
        return NEChange(json.loads(row[0]), json.loads(row[1]), row[2])

    def set_ne_status(self, run_id: str, ne: str, status: str, reason: str = "") -> None:
        self._conn().execute("INSERT OR REPLACE INTO ne_status(run_id, ne, status, reason, updated_at) VALUES (?,?,?,?,?)",
                             (run_id, ne, status, reason, time.time()))

    def ne_statuses(self, run_id: str) -> dict[str, tuple[str, str]]:
        rows = self._conn().execute("SELECT ne, status, reason FROM ne_status WHERE run_id=?", (run_id,))
        return {ne: (status, reason or "") for ne, status, reason in rows}

    def runs_for(self, ne: str) -> list[str]:
        rows = self._conn().execute("SELECT DISTINCT run_id FROM steps WHERE ne=? ORDER BY id", (ne,))
        return [r[0] for r in rows]
