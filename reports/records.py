"""A run read back from what it stored: summary, NE outcomes, the journal, the backup store.

Nothing here talks to an NE or to Prefect, so a report can be rebuilt at any time after
the run - also after a crash (no summary yet) or after a one-click rollback that came
later (the journal's NE status is newer than the outcome the run wrote).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from changeline.state.api import BackupRecord
from changeline.errors import BackupError, InputError, Problem
from changeline.engine import outcomes
from changeline.engine import policy
from changeline.flows import stores

def normalised(outcome: dict[str, Any], where: str = "outcome") -> dict[str, Any]:
    """An outcome as stored, in its full typed shape (changeline.engine.outcomes), plus what the
    records learnt later (`status_at_run_end` after a one-click rollback)."""
    extra = {k: outcome[k] for k in ("status_at_run_end",) if k in outcome}
    return {**outcomes.normalised(outcome, where), **extra}


def natural_key(name: str) -> list:
    """amf-2 before amf-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass
class NEJournal:
    """Everything the durable journal holds about one NE in one run."""

    status: tuple[str, str] | None
    baseline: dict[str, Any]
    entries: list[dict[str, Any]]          # mutating steps with undo records and undo results
    step_records: dict[str, Any]           # progress of every step of the plan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Configs:
    """The NE's configuration around the change, from the backup store."""

    backup: BackupRecord | None = None
    before: bytes | None = None            # running config in this run's backup
    after: bytes | None = None             # running config this run's changes committed
    after_sha256: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class RunRecords:
    campaign_id: str
    run_dir: Path
    journal_path: str                      # where the journal is (a file, or a URL without its password)
    summary: dict[str, Any] | None
    args: dict[str, Any] | None
    started_at: float | None
    outcomes: list[dict[str, Any]]         # one per NE, normalised, by NE name
    journals: dict[str, NEJournal]
    probes: dict[str, Any] | None
    _configs: dict[str, Configs] = field(default_factory=dict, repr=False)

    def configs(self, ne: str) -> Configs:
        if ne not in self._configs:
            self._configs[ne] = load_configs(self.journals[ne].baseline)
        return self._configs[ne]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise InputError(Problem(str(path), 0, 0, "", f"not valid JSON: {err}")) from None


def epoch(iso: str | None) -> float | None:
    """Epoch seconds of an ISO 8601 time as the summary writes it (None if absent or unreadable)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def load_run(campaign_id: str, *, probes: dict[str, Any] | None = None) -> RunRecords:
    """Everything stored about a campaign; InputError when nothing is."""
    journal = stores.journal()
    run_dir = stores.evidence_dir(campaign_id)
    summary = _read_json(run_dir / "summary.json")
    args = journal.campaign_args(campaign_id)
    statuses = journal.ne_statuses(campaign_id)
    written = {p.parent.name: p for p in sorted((run_dir / "ne").glob("*/outcome.json"))}
    entries = journal.entries(campaign_id)
    if summary is None and args is None and not statuses and not written and not entries:
        raise InputError(Problem("<command line>", 0, 0, "CAMPAIGN_ID",
                                 f"no campaign '{campaign_id}' in the journal ({journal.location}) "
                                 f"and no records under {run_dir}"))
    in_summary = (summary or {}).get("nes") or {}
    plan = journal.plan_of(campaign_id) or {}
    names = set(plan.get("targets") or []) | set(in_summary) | set(written) | set(statuses) | {e.ne for e in entries}
    outcomes, journals = [], {}
    for ne in sorted(names, key=natural_key):
        outcome = _merged_outcome(ne, in_summary.get(ne), _read_json(written[ne]) if ne in written else None,
                                  statuses.get(ne), never_started=_never_started(ne, plan, summary is not None))
        outcomes.append(outcome)
        journals[ne] = NEJournal(
            status=statuses.get(ne), baseline=journal.baseline(campaign_id, ne),
            entries=[asdict(e) for e in entries if e.ne == ne],
            step_records={step: {"status": status, "result": result}
                          for step, (status, result) in journal.step_records(campaign_id, ne).items()})
    if probes is None:
        probes = _read_json(run_dir / "probes.json")
    return RunRecords(campaign_id, run_dir, journal.location, summary, args,
                      epoch((summary or {}).get("started_at")), outcomes, journals, probes)


def _never_started(ne: str, plan: dict[str, Any], finished: bool) -> str:
    """Why a targeted NE has no record at all: the campaign's runs ended before its wave."""
    wave = next((w["name"] for w in plan.get("waves") or [] if ne in w["nes"]), None)
    where = f"wave {wave}" if wave else "this NE"
    if finished:
        return f"not started: the campaign ended before {where}"
    return f"not started: the campaign's run ended (stopped or crashed) before {where}; resume it to go on"


def _merged_outcome(ne: str, from_summary: dict | None, from_file: dict | None,
                    status: tuple[str, str] | None, *, never_started: str) -> dict[str, Any]:
    """The NE's full outcome as the run wrote it, with what the journal learnt later.

    A resumed campaign lists an NE finished by an earlier attempt only in short form; its
    outcome file from that attempt has the steps. A one-click rollback after the run
    records only the journal's status of the NE (other journal statuses may be an earlier
    attempt's, e.g. for an NE the latest attempt skipped, so they do not override). An NE of
    the campaign's plan with no record at all was never started, and says so.
    """
    resumed = bool(from_summary and from_summary.get("resumed"))
    # The summary holds the latest attempt's outcome in full; the file may be an older attempt's.
    raw = ((from_file or from_summary) if resumed else (from_summary or from_file)) or \
        {"ne": ne, "status": policy.SKIPPED, "reason": never_started}
    outcome = normalised({**raw, "ne": raw.get("ne") or ne}, f"outcome of {ne}")
    if resumed:
        outcome["resumed"] = True
        outcome["reason"] = from_summary.get("reason", outcome["reason"])
    if from_file is None and from_summary is None and status:
        outcome["status"], outcome["reason"] = status[0], status[1] or "no outcome recorded (interrupted?)"
        if status[0] in (policy.RUNNING, policy.PAUSED):
            outcome["reason"] = (f"{status[0]} ({status[1] or 'at work'}) when last recorded: the campaign's run "
                                 "had not finished this NE; resume the campaign to go on")
    elif status and status[0] == policy.ROLLED_BACK != outcome["status"]:
        outcome["status_at_run_end"] = {"status": outcome["status"], "reason": outcome["reason"]}
        outcome["status"], outcome["reason"] = status
    return outcome


def load_configs(baseline: dict[str, Any]) -> Configs:
    """Pre- and post-change running config from the backup store, by the run's baseline."""
    store = stores.backups()
    configs = Configs()
    backup_id = baseline.get("backup_id")
    if backup_id:
        try:
            configs.backup = store.load(backup_id)
            configs.before = store.get_object(configs.backup.running_sha256)
        except BackupError as err:
            configs.problems.append(f"pre-change config: {err.reason}")
    after_sha = baseline.get("expected_running_sha256")
    if after_sha:
        configs.after_sha256 = after_sha
        try:
            configs.after = store.get_object(after_sha)
        except BackupError as err:
            configs.problems.append(f"post-change config: {err.reason}")
    return configs
