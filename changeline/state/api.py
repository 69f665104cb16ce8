"""The state store's API: what the engine, the flows and the reports may ask of it.

Two stores, each behind a Protocol:

- `StateStore` - the undo journal (what each mutating step was about to do, and how to
  undo it), baselines, step progress, the campaign's arguments and plan, each NE's status
  and decisions, and the runs of NEs on workers (heartbeats, outcomes);
- `Backups` - content-addressed NE configuration and software state, durable and read
  back before any change.

Every call is its own committed transaction: when a method returns, what it wrote survives
a SIGKILL of the caller and is visible to every other process using the same store. That is
what lets `begin` record intent before an atom acts, and a worker on another machine resume
an NE where a dead one left it.

Each Protocol holds what the engine, the atoms, the flows and the reports call, and no more
(tests/state/test_protocols.py holds both backends to it, signature by signature); what a
backend has beyond it (`history` of the backup stores) is its own.

Implementations (changeline.state.journal, .backups, .database): SQLite and files under
CHANGELINE_HOME (embedded, one machine), or PostgreSQL (CHANGELINE_STATE_URL, any number of
machines). Nothing outside changeline.state reads their tables or files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class JournalEntry:
    id: int
    run_id: str
    ne: str
    step: str
    atom: str
    status: str                                  # started | done | failed | undone | undo-failed | skipped
    undo: dict[str, Any] | None                  # None for read-only atoms
    result: dict[str, Any] | None
    started_at: float
    finished_at: float | None
    undo_result: dict[str, Any] | None = None


@dataclass(frozen=True)
class NEChange:
    """What an NE's run decided on its way, so a resumed run goes on from there: the anomalies
    met (with the decisions taken on them) and, once a rollback was decided, why."""

    anomalies: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    rollback_cause: str | None = None


@dataclass(frozen=True)
class NERun:
    """The attempt at an NE that the campaign handed to a worker: which one, where it runs, how
    many heartbeats it has given, and its outcome once it ended. A new attempt replaces the last."""

    holder: str                                  # the attempt's id (the campaign's, made before dispatch)
    worker: str                                  # host and process, for the operator ('' until taken)
    beats: int
    outcome: dict[str, Any] | None


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


@runtime_checkable
class StateStore(Protocol):
    location: str   # for messages: a file path, or a URL without its password

    # --- the undo journal: intent before the act, then the result, then the undo ---------
    def begin(self, run_id: str, ne: str, step: str, atom: str, undo: dict[str, Any] | None) -> int: ...
    def finish(self, entry_id: int, status: str, result: dict[str, Any] | None = None) -> None: ...
    def mark_undo(self, entry_id: int, status: str, result: dict[str, Any]) -> None: ...
    def entries(self, run_id: str, ne: str | None = None) -> list[JournalEntry]: ...
    def to_undo(self, run_id: str, ne: str) -> list[JournalEntry]: ...
    def runs_for(self, ne: str) -> list[str]: ...

    # --- what earlier steps measured, for later gates --------------------------------------
    def put_baseline(self, run_id: str, ne: str, key: str, value: Any) -> None: ...
    def baseline(self, run_id: str, ne: str) -> dict[str, Any]: ...

    # --- progress of every step, and the NE's decisions, so a resume goes on from there ---
    def record_step(self, run_id: str, ne: str, step: str, status: str,
                    result: dict[str, Any] | None = None) -> None: ...
    def step_records(self, run_id: str, ne: str) -> dict[str, tuple[str, dict[str, Any] | None]]: ...
    def record_change(self, run_id: str, ne: str, anomalies: list[dict[str, Any]], decisions: list[dict[str, Any]],
                      rollback_cause: str | None = None) -> None: ...
    def change_of(self, run_id: str, ne: str) -> NEChange: ...

    # --- the campaign: its arguments, its plan, each NE's status ---------------------------
    def record_campaign(self, campaign_id: str, args: dict[str, Any]) -> None: ...
    def campaign_args(self, campaign_id: str) -> dict[str, Any] | None: ...
    def record_plan(self, campaign_id: str, plan: dict[str, Any]) -> dict[str, Any]: ...
    def plan_of(self, campaign_id: str) -> dict[str, Any] | None: ...
    def set_ne_status(self, run_id: str, ne: str, status: str, reason: str = "") -> None: ...
    def ne_statuses(self, run_id: str) -> dict[str, tuple[str, str]]: ...

    # --- NEs run on workers: who holds the NE, is it alive, what did it end with -----------
    def assign_run(self, run_id: str, ne: str, holder: str) -> None: ...
    def take_run(self, run_id: str, ne: str, holder: str, worker: str) -> bool: ...
    def beat(self, run_id: str, ne: str, holder: str) -> bool: ...
    def end_run(self, run_id: str, ne: str, holder: str, outcome: dict[str, Any]) -> None: ...
    def run_of(self, run_id: str, ne: str) -> NERun | None: ...


@runtime_checkable
class Backups(Protocol):
    location: str

    def put_object(self, data: bytes) -> str: ...
    def get_object(self, digest: str) -> bytes: ...
    def record(self, *, ne: str, run_id: str, software_version: str, running: bytes,
               startup: bytes | None, state: bytes | None) -> BackupRecord: ...
    def load(self, record_id: str) -> BackupRecord: ...
    def latest(self, ne: str, run_id: str | None = None) -> BackupRecord | None: ...
