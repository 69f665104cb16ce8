"""What the operator sees of a campaign in the Prefect UI while it runs.

Artifact keys are stable per campaign (`campaign-<id>-progress`, `-nes`, `-summary`)
so an operator finds the latest table from the run page or the Artifacts list.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact

from changeline.flows import policy, stores

log = logging.getLogger("changeline.progress")


def artifact_key(campaign_id: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and '-' only."""
    slug = re.sub(r"[^a-z0-9-]+", "-", campaign_id.lower()).strip("-")
    return f"campaign-{slug}-{what}"[:120]


class Board:
    """The campaign's progress bar and NE table, re-published by a thread of their own at most
    every PUBLISH_EVERY_S: each version is an API write or two, which must never hold up the
    campaign (its next wave waits on nothing but its NEs)."""

    PUBLISH_EVERY_S = 2.0

    def __init__(self, campaign_id: str, names: list[str], outcomes: dict[str, dict[str, Any]]) -> None:
        self.campaign_id = campaign_id
        self.names = names
        self.outcomes = dict(outcomes)
        self.running_since: dict[str, float] = {}
        self._lock = threading.Lock()
        self._progress_id = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None

    def _done_pct(self) -> float:
        final = sum(1 for n in self.names if self.outcomes.get(n, {}).get("status") in policy.FINAL_STATES)
        return 100.0 * final / max(len(self.names), 1)

    def publish(self) -> None:
        """The first version, then the publisher (in this flow run's context, so the artifacts
        belong to the run)."""
        self._progress_id = create_progress_artifact(
            progress=self._done_pct(), key=artifact_key(self.campaign_id, "progress"),
            description=f"Campaign {self.campaign_id}: share of NEs finished")
        self._table()
        context = contextvars.copy_context()
        self._publisher = threading.Thread(target=context.run, args=(self._publish_loop,),
                                           name="changeline-board", daemon=True)
        self._publisher.start()

    def running(self, ne: str) -> None:
        self.running_since[ne] = time.time()  # one dict assignment: atomic, no lock to wait on

    def update(self, outcomes: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self.outcomes = dict(outcomes)
        self._dirty.set()

    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self.PUBLISH_EVERY_S)
            if self._stop.is_set() or not self._dirty.is_set():
                continue
            self._dirty.clear()
            try:
                if self._progress_id is not None:
                    update_progress_artifact(self._progress_id, progress=self._done_pct())
                self._table()
            except Exception as err:  # the UI lags a version; the campaign goes on
                log.warning("campaign %s: progress not published (%s)", self.campaign_id, err)
            self._stop.wait(self.PUBLISH_EVERY_S)

    def _table(self) -> None:
        with self._lock:
            outcomes = dict(self.outcomes)
        live = stores.journal().ne_statuses(self.campaign_id)
        rows = []
        for name in self.names:
            out = outcomes.get(name)
            if out:
                state, reason = out["status"], out.get("reason", "")
            elif name in live:
                state, reason = live[name]
            else:
                state, reason = "waiting", ""
            rows.append({"ne": name, "state": state, "reason": reason,
                         "evidence": str(stores.evidence_dir(self.campaign_id, name))})
        create_table_artifact(table=rows, key=artifact_key(self.campaign_id, "nes"),
                              description=f"Campaign {self.campaign_id}: every NE's state and reason")

    def stop(self) -> None:
        """Stop the publisher (idempotent); finish() publishes the last versions."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(30)
            self._publisher = None

    def finish(self, summary: dict[str, Any]) -> None:
        self.stop()
        if self._progress_id is not None:
            update_progress_artifact(self._progress_id, progress=100.0)
        self._table()
        markdown = summary_markdown(summary) + "\n\n" + rollback_hint(self.campaign_id)
        create_markdown_artifact(markdown=markdown, key=artifact_key(self.campaign_id, "summary"),
                                 description=f"Campaign {self.campaign_id}: summary")


def summarize(campaign_id: str, model_obj, outcomes: dict[str, dict[str, Any]], started: datetime,
              stop_reason: str | None, window_end: datetime | None) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for out in outcomes.values():
        counts[out["status"]] = counts.get(out["status"], 0) + 1
    targeted = [o for o in outcomes.values() if o["status"] != policy.INELIGIBLE]
    summary = {
        "campaign_id": campaign_id,
        "model": model_obj.name, "model_version": model_obj.version,
        "started_at": started.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
        "window_end": window_end.isoformat() if window_end else None,
        "counts": counts, "stop_reason": stop_reason,
        "all_reached_target": bool(targeted) and all(o["status"] == policy.DONE for o in targeted),
        "nes": outcomes,
    }
    folder = stores.evidence_dir(campaign_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def rollback_hint(campaign_id: str) -> str:
    """Where the operator's one click is: the served rollback deployment, if there is one."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_UI_URL

    how = f"with parameters `campaign_id: {campaign_id}` (or `nes: [...]`)"
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("rollback/one-click")
    except ObjectNotFound:
        return (f"**Roll back:** `changeline rollback --campaign {campaign_id} -i INVENTORY`, or serve the "
                f"one-click deployment with `changeline serve` and run it {how}.")
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"**Roll back:** [rollback/one-click]({ui}/deployments/deployment/{deployment.id}) - Run it {how}."


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Campaign {summary['campaign_id']}", "",
             f"Model **{summary['model']} {summary['model_version']}**, started {summary['started_at']}.", ""]
    lines += [f"- **{state}**: {n}" for state, n in sorted(summary["counts"].items())]
    if summary.get("stop_reason"):
        lines += ["", f"**Stopped:** {summary['stop_reason']}"]
    lines += ["", "| NE | state | reason |", "|---|---|---|"]
    for name, out in sorted(summary["nes"].items()):
        lines.append(f"| {name} | {out['status']} | {str(out.get('reason', '')).replace('|', '/')} |")
    return "\n".join(lines)
