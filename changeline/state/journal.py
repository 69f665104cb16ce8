"""The durable state store (changeline.state.api.StateStore) on SQLite or PostgreSQL.

Prefect's transactions keep rollback hooks in memory; an engine killed mid-campaign
loses them. Every mutating atom therefore writes its undo record here *before* it
acts, and marks the step done after. On resume, a step `started` but not `done` is
reconciled from this record and the device's own state.

Every method is one committed transaction (changeline.state.database): a row written
survives a SIGKILL of the writer and a power cut, and every process on the same database
sees it - on SQLite the processes of one machine, on PostgreSQL those of every machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from changeline.state.api import JournalEntry, NEChange, NERun
from changeline.state.database import COLUMN_TYPES, Database, SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    id {id},
    run_id TEXT NOT NULL,
    ne TEXT NOT NULL,
    step TEXT NOT NULL,
    atom TEXT NOT NULL,
    status TEXT NOT NULL,          -- started | done | failed | undone | undo-failed | skipped
    undo TEXT,                     -- JSON undo record, NULL for read-only atoms
    result TEXT,                   -- JSON AtomResult once finished
    undo_result TEXT,              -- JSON result of the undo, once undone (or why it failed)
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS steps_run_ne ON steps(run_id, ne);
CREATE INDEX IF NOT EXISTS steps_ne ON steps(ne);
CREATE TABLE IF NOT EXISTS baselines (
    run_id TEXT NOT NULL, ne TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (run_id, ne, key)
);
CREATE TABLE IF NOT EXISTS ne_steps (
    run_id TEXT NOT NULL, ne TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL,
    result TEXT, updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, ne, step)
);
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY, args TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS ne_status (
    run_id TEXT NOT NULL, ne TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, ne)
);
CREATE TABLE IF NOT EXISTS campaign_plans (
    campaign_id TEXT PRIMARY KEY, plan TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS ne_changes (
    run_id TEXT NOT NULL, ne TEXT NOT NULL,
    anomalies TEXT NOT NULL, decisions TEXT NOT NULL,  -- JSON lists, as the NE's outcome holds them
    rollback_cause TEXT,                               -- set once a rollback was decided, before it starts
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, ne)
);
CREATE TABLE IF NOT EXISTS ne_runs (
    run_id TEXT NOT NULL, ne TEXT NOT NULL,
    holder TEXT NOT NULL,          -- the attempt the campaign handed the NE to
    worker TEXT NOT NULL,          -- where it runs: host and process ('' until a worker takes it)
    beats BIGINT NOT NULL,         -- heartbeats given; the campaign watches it move
    outcome TEXT,                  -- JSON NE outcome once the attempt ended
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, ne)
);
"""


def _dumps(value: Any) -> str | None:
    return json.dumps(value, default=str) if value is not None else None


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


class Journal:
    """`Journal(path)`: SQLite at `path`; `Journal(database)`: any changeline.state.database."""

    def __init__(self, where: str | Path | Database) -> None:
        self.db: Database = SqliteDatabase(where) if isinstance(where, (str, Path)) else where
        self.location = self.db.location
        self.db.create(SCHEMA.format(**COLUMN_TYPES[self.db.kind]))

    # --- the undo journal ------------------------------------------------------------------

    def begin(self, run_id: str, ne: str, step: str, atom: str, undo: dict[str, Any] | None) -> int:
        """Record intent (and the undo) before the atom touches the NE; returns the entry id."""
        rows = self.db.run(
            "INSERT INTO steps(run_id, ne, step, atom, status, undo, started_at) VALUES (?,?,?,?,?,?,?) RETURNING id",
            (run_id, ne, step, atom, "started", _dumps(undo), time.time()))
        return int(rows[0][0])

    def finish(self, entry_id: int, status: str, result: dict[str, Any] | None = None) -> None:
        self.db.run("UPDATE steps SET status=?, result=?, finished_at=? WHERE id=?",
                    (status, _dumps(result), time.time(), entry_id))

    def mark_undo(self, entry_id: int, status: str, result: dict[str, Any]) -> None:
        """`undone` or `undo-failed`; the step's own result is kept for the report."""
        self.db.run("UPDATE steps SET status=?, undo_result=? WHERE id=?", (status, _dumps(result), entry_id))

    def entries(self, run_id: str, ne: str | None = None) -> list[JournalEntry]:
        sql = ("SELECT id, run_id, ne, step, atom, status, undo, result, started_at, finished_at, undo_result "
               "FROM steps WHERE run_id=?")
        args: tuple = (run_id,)
        if ne is not None:
            sql += " AND ne=?"
            args += (ne,)
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], _loads(r[6]), _loads(r[7]), r[8], r[9], _loads(r[10]))
                for r in self.db.run(sql + " ORDER BY id", args)]

    def to_undo(self, run_id: str, ne: str) -> list[JournalEntry]:
        """Mutating steps that started (done or caught mid-way) and are not undone yet, newest first."""
        return [e for e in reversed(self.entries(run_id, ne))
                if e.undo is not None and e.status in ("started", "done", "failed", "undo-failed")]

    def runs_for(self, ne: str) -> list[str]:
        """The campaigns that journaled a step of this NE, oldest first."""
        rows = self.db.run("SELECT run_id FROM steps WHERE ne=? GROUP BY run_id ORDER BY MIN(id)", (ne,))
        return [r[0] for r in rows]

    # --- baselines -------------------------------------------------------------------------

    def put_baseline(self, run_id: str, ne: str, key: str, value: Any) -> None:
        self.db.run("INSERT INTO baselines(run_id, ne, key, value) VALUES (?,?,?,?) "
                    "ON CONFLICT (run_id, ne, key) DO UPDATE SET value=excluded.value",
                    (run_id, ne, key, _dumps(value)))

    def baseline(self, run_id: str, ne: str) -> dict[str, Any]:
        rows = self.db.run("SELECT key, value FROM baselines WHERE run_id=? AND ne=?", (run_id, ne))
        return {k: json.loads(v) for k, v in rows}

    # --- step progress and the NE's decisions ------------------------------------------------

    def record_step(self, run_id: str, ne: str, step: str, status: str, result: dict[str, Any] | None = None) -> None:
        """Progress of every step of a plan (read-only ones too), so a resume skips what finished."""
        self.db.run("INSERT INTO ne_steps(run_id, ne, step, status, result, updated_at) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT (run_id, ne, step) DO UPDATE SET status=excluded.status, result=excluded.result, "
                    "updated_at=excluded.updated_at",
                    (run_id, ne, step, status, _dumps(result), time.time()))

    def step_records(self, run_id: str, ne: str) -> dict[str, tuple[str, dict[str, Any] | None]]:
        rows = self.db.run("SELECT step, status, result FROM ne_steps WHERE run_id=? AND ne=? ORDER BY updated_at",
                           (run_id, ne))
        return {step: (status, _loads(result)) for step, status, result in rows}

    def record_change(self, run_id: str, ne: str, anomalies: list[dict[str, Any]], decisions: list[dict[str, Any]],
                      rollback_cause: str | None = None) -> None:
        """The NE's anomalies and decisions so far; with `rollback_cause`, the rollback about to start."""
        self.db.run("INSERT INTO ne_changes(run_id, ne, anomalies, decisions, rollback_cause, updated_at) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, ne) DO UPDATE SET anomalies=excluded.anomalies, "
                    "decisions=excluded.decisions, rollback_cause=excluded.rollback_cause, "
                    "updated_at=excluded.updated_at",
                    (run_id, ne, _dumps(anomalies), _dumps(decisions), rollback_cause, time.time()))

    def change_of(self, run_id: str, ne: str) -> NEChange:
        rows = self.db.run("SELECT anomalies, decisions, rollback_cause FROM ne_changes WHERE run_id=? AND ne=?",
                           (run_id, ne))
        if not rows:
            return NEChange([], [])
        return NEChange(json.loads(rows[0][0]), json.loads(rows[0][1]), rows[0][2])

    # --- the campaign ------------------------------------------------------------------------

    def record_campaign(self, campaign_id: str, args: dict[str, Any]) -> None:
        """The arguments a campaign started with, so `changeline resume ID` can re-run it as it was."""
        self.db.run("INSERT INTO campaigns(campaign_id, args, created_at) VALUES (?,?,?) "
                    "ON CONFLICT (campaign_id) DO NOTHING", (campaign_id, _dumps(args), time.time()))

    def campaign_args(self, campaign_id: str) -> dict[str, Any] | None:
        rows = self.db.run("SELECT args FROM campaigns WHERE campaign_id=?", (campaign_id,))
        return json.loads(rows[0][0]) if rows else None

    def record_plan(self, campaign_id: str, plan: dict[str, Any]) -> dict[str, Any]:
        """The campaign's plan as its first run made it (targeted NEs, waves); later runs of the
        same campaign get that one back, never a new one."""
        with self.db.transaction() as tx:
            tx.run("INSERT INTO campaign_plans(campaign_id, plan, created_at) VALUES (?,?,?) "
                   "ON CONFLICT (campaign_id) DO NOTHING", (campaign_id, json.dumps(plan), time.time()))
            rows = tx.run("SELECT plan FROM campaign_plans WHERE campaign_id=?", (campaign_id,))
        return json.loads(rows[0][0])

    def plan_of(self, campaign_id: str) -> dict[str, Any] | None:
        rows = self.db.run("SELECT plan FROM campaign_plans WHERE campaign_id=?", (campaign_id,))
        return json.loads(rows[0][0]) if rows else None

    def set_ne_status(self, run_id: str, ne: str, status: str, reason: str = "") -> None:
        self.db.run("INSERT INTO ne_status(run_id, ne, status, reason, updated_at) VALUES (?,?,?,?,?) "
                    "ON CONFLICT (run_id, ne) DO UPDATE SET status=excluded.status, reason=excluded.reason, "
                    "updated_at=excluded.updated_at", (run_id, ne, status, reason, time.time()))

    def ne_statuses(self, run_id: str) -> dict[str, tuple[str, str]]:
        rows = self.db.run("SELECT ne, status, reason FROM ne_status WHERE run_id=?", (run_id,))
        return {ne: (status, reason or "") for ne, status, reason in rows}

    # --- NEs on workers ------------------------------------------------------------------------

    def assign_run(self, run_id: str, ne: str, holder: str) -> None:
        """The campaign hands the NE to attempt `holder` (before dispatching it): any earlier
        attempt's hold, heartbeats and outcome are gone."""
        self.db.run("INSERT INTO ne_runs(run_id, ne, holder, worker, beats, outcome, updated_at) "
                    "VALUES (?,?,?,'',0,NULL,?) ON CONFLICT (run_id, ne) DO UPDATE SET holder=excluded.holder, "
                    "worker='', beats=0, outcome=NULL, updated_at=excluded.updated_at",
                    (run_id, ne, holder, time.time()))

    def take_run(self, run_id: str, ne: str, holder: str, worker: str) -> bool:
        """A worker starts attempt `holder`; False when the campaign has handed the NE to another."""
        rows = self.db.run("UPDATE ne_runs SET worker=?, updated_at=? WHERE run_id=? AND ne=? AND holder=? "
                           "RETURNING holder", (worker, time.time(), run_id, ne, holder))
        return bool(rows)

    def beat(self, run_id: str, ne: str, holder: str) -> bool:
        """One heartbeat of `holder`; False when another attempt holds the NE now."""
        rows = self.db.run("UPDATE ne_runs SET beats=beats+1, updated_at=? WHERE run_id=? AND ne=? AND holder=? "
                           "RETURNING beats", (time.time(), run_id, ne, holder))
        return bool(rows)

    def end_run(self, run_id: str, ne: str, holder: str, outcome: dict[str, Any]) -> None:
        self.db.run("UPDATE ne_runs SET outcome=?, updated_at=? WHERE run_id=? AND ne=? AND holder=?",
                    (_dumps(outcome), time.time(), run_id, ne, holder))

    def run_of(self, run_id: str, ne: str) -> NERun | None:
        rows = self.db.run("SELECT holder, worker, beats, outcome FROM ne_runs WHERE run_id=? AND ne=?", (run_id, ne))
        return NERun(rows[0][0], rows[0][1], int(rows[0][2]), _loads(rows[0][3])) if rows else None
