"""What the operator sees of a campaign in the Prefect UI while it runs and after.

Three artifacts per campaign, each one version updated in place (Prefect's artifact PATCH,
which also moves the key's latest entry), never one version per update:
`campaign-<id>-progress` (share of NEs finished), `campaign-<id>-board` (every NE by wave,
anomalies first, with its state, current step, reason, a link to its run and, for an NE
that did not reach its target, a prefilled one-click rollback), `campaign-<id>-summary`
(the outcome once the campaign ends; a rollback run brings it up to date).

The decisions - row order, state names and messages, the rollback link - are pure functions.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from changeline.engine import policy
from changeline.flows import stores

log = logging.getLogger("changeline.progress")

ROLLBACK_DEPLOYMENT = "rollback/one-click"
# Order on the board: what needs a person first, what went well last.
ROW_ORDER = (policy.ROLLBACK_FAILED, policy.FAILED, "paused", policy.ROLLED_BACK, "running",
             policy.DEFERRED, policy.SKIPPED, "waiting", policy.INELIGIBLE, policy.DONE)
NEEDS_ROLLBACK_LINK = (policy.ROLLED_BACK, policy.ROLLBACK_FAILED, policy.FAILED)


def artifact_key(campaign_id: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and '-' only."""
    slug = re.sub(r"[^a-z0-9-]+", "-", campaign_id.lower()).strip("-")
    return f"campaign-{slug}-{what}"[:120]


# ----------------------------------------------------------------------------- decisions

def row_rank(state: str) -> int:
    return ROW_ORDER.index(state) if state in ROW_ORDER else len(ROW_ORDER)


def short_reason(reason: str, limit: int = 80) -> str:
    """An NE's reason as a state message or table cell: one line, no pipes."""
    one = " ".join(str(reason).split()).replace("|", "/")
    return one if len(one) <= limit else one[: limit - 1] + "…"


def outcome_message(outcomes: Iterable[Mapping[str, Any]], *, named: int = 3) -> str:
    """'10 at target, 1 rolled back (upf-2: dial-test: ...), 1 deferred' - the campaign run's
    state message. Ineligible NEs were not targeted and are counted last."""
    by_state: dict[str, list[Mapping[str, Any]]] = {}
    for out in outcomes:
        by_state.setdefault(str(out.get("status")), []).append(out)
    parts = []
    labels = {policy.DONE: "at target", policy.ROLLED_BACK: "rolled back", policy.ROLLBACK_FAILED: "ROLLBACK FAILED",
              policy.FAILED: "failed", policy.DEFERRED: "deferred", policy.SKIPPED: "skipped",
              policy.INELIGIBLE: "not targeted (ineligible)"}
    for state in (policy.DONE, policy.ROLLED_BACK, policy.ROLLBACK_FAILED, policy.FAILED, policy.DEFERRED,
                  policy.SKIPPED, *sorted(s for s in by_state if s not in labels), policy.INELIGIBLE):
        group = by_state.get(state)
        if not group:
            continue
        text = f"{len(group)} {labels.get(state, state)}"
        if state in NEEDS_ROLLBACK_LINK:
            shown = [f"{o['ne']}: {short_reason(_cause(o), 60)}" for o in group[:named]]
            more = f"; +{len(group) - named} more" if len(group) > named else ""
            text += f" ({'; '.join(shown)}{more})"
        parts.append(text)
    return ", ".join(parts) or "no NE"


def _cause(outcome: Mapping[str, Any]) -> str:
    reason = str(outcome.get("reason") or "")
    return reason.removeprefix("rolled back after ")


def campaign_state_name(outcomes: Iterable[Mapping[str, Any]]) -> tuple[str, str]:
    """(Prefect state type, state name) for the campaign run: Completed only when every
    targeted NE reached its target; Failed when an NE failed or its rollback did."""
    states = {str(o.get("status")) for o in outcomes} - {policy.INELIGIBLE}
    if states & {policy.FAILED, policy.ROLLBACK_FAILED}:
        return "FAILED", "Failed"
    if policy.ROLLED_BACK in states:
        return "COMPLETED", "Completed with rollbacks"
    if states - {policy.DONE}:
        return "COMPLETED", "Partly completed"
    if not states:
        return "COMPLETED", "Nothing to do"
    return "COMPLETED", "Completed"


NE_STATE_NAMES = {policy.ROLLED_BACK: ("FAILED", "Rolled back"), policy.ROLLBACK_FAILED: ("FAILED", "Rollback failed"),
                  policy.FAILED: ("FAILED", "Failed"), policy.DEFERRED: ("CANCELLED", "Deferred"),
                  policy.SKIPPED: ("CANCELLED", "Skipped"), policy.INELIGIBLE: ("CANCELLED", "Ineligible")}


def ne_state_name(status: str) -> tuple[str, str]:
    """(Prefect state type, state name) for an NE's run; a reached target is plain Completed."""
    return NE_STATE_NAMES.get(status, ("COMPLETED", "Completed"))


def rollback_parameters(campaign_id: str, inventory: str, nes: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"campaign_id": campaign_id, "inventory": inventory}
    if nes:
        params["nes"] = nes
    return params


def rollback_run_url(ui: str, deployment_id: str, parameters: Mapping[str, Any]) -> str:
    """The deployment's custom-run page with its form already filled in: Prefect's UI reads
    `parameters` (JSON) from the page's query string (ui-v2 route deployments/deployment_/$id/run)."""
    query = urllib.parse.urlencode({"parameters": json.dumps(dict(parameters), separators=(",", ":"))})
    return f"{ui.rstrip('/')}/deployments/deployment/{deployment_id}/run?{query}"


def board_rows(names_by_wave: Mapping[str, list[str]], outcomes: Mapping[str, Mapping[str, Any]],
               live: Mapping[str, tuple[str, str]], runs: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per NE, wave by wave, each wave's anomalies first. `live` is the journal's
    (status, reason) of NEs still working; `runs` maps an NE to its run's URL."""
    rows = []
    for wave, names in names_by_wave.items():
        wave_rows = []
        for name in names:
            out = outcomes.get(name)
            step = ""
            if out:
                state, reason = str(out.get("status")), str(out.get("reason", ""))
                failed = [s for s in out.get("steps") or [] if s.get("status") == "failed"]
                step = failed[-1]["name"] if failed else ""
            elif name in live:
                state, reason = live[name]
                if reason.startswith("step "):
                    step, reason = reason.removeprefix("step "), ""
            else:
                state, reason = "waiting", ""
            wave_rows.append({"wave": wave, "ne": name, "state": state, "step": step,
                              "reason": reason, "run": runs.get(name, "")})
        wave_rows.sort(key=lambda r: row_rank(r["state"]))  # stable: the wave's order within a state
        rows += wave_rows
    return rows


def board_markdown(campaign_id: str, rows: list[dict[str, Any]], *, rollback_links: Mapping[str, str],
                   campaign_rollback: str, probes: str = "", final: str = "") -> str:
    anomalies = [r for r in rows if r["state"] in NEEDS_ROLLBACK_LINK + ("paused",)]
    lines = [f"# Campaign {campaign_id}", ""]
    if final:
        lines += [f"**{final}**", ""]
    if anomalies:
        lines += ["## Needs attention", ""]
        for r in anomalies:
            link = rollback_links.get(r["ne"])
            action = f" - [Roll back {r['ne']}]({link})" if link else ""
            lines.append(f"- **{r['ne']}** {r['state']} at `{r['step'] or '-'}`: {short_reason(r['reason'], 200)}{action}")
        lines.append("")
    if campaign_rollback:
        lines += [f"[Roll back the whole campaign]({campaign_rollback})", ""]
    if probes:
        lines += [probes, ""]
    wave = None
    for r in rows:
        if r["wave"] != wave:
            wave = r["wave"]
            lines += ["", f"## Wave {wave}", "", "| NE | state | step | reason | run | action |",
                      "|---|---|---|---|---|---|"]
        run = f"[run]({r['run']})" if r["run"] else ""
        link = rollback_links.get(r["ne"])
        action = f"[roll back]({link})" if link else ""
        lines.append(f"| {r['ne']} | {r['state']} | {r['step']} | {short_reason(r['reason'])} | {run} | {action} |")
    return "\n".join(lines)


def board_description(campaign_id: str, rows: list[dict[str, Any]], rollback_links: Mapping[str, str]) -> str:
    """The artifact card's one visible line (the card renders it as Markdown): the first
    anomaly's one-click rollback, so it is two clicks from the campaign's run page."""
    first = next((r for r in rows if r["ne"] in rollback_links), None)
    if first is None:
        return f"Campaign {campaign_id}: every NE by wave, anomalies first"
    more = sum(1 for r in rows if r["ne"] in rollback_links) - 1
    extra = f" (+{more} more on the board)" if more > 0 else ""
    return (f"[Roll back {first['ne']}]({rollback_links[first['ne']]}) - {first['state']}: "
            f"{short_reason(first['reason'], 60)}{extra}")


def anomaly_log_lines(outcomes: Iterable[Mapping[str, Any]], links: "Links | None") -> list[str]:
    """One line per NE that did not reach its target, with its rollback link, then the
    campaign's: the campaign run's log is what its page opens on, and the UI makes the
    addresses in it links."""
    lines = []
    for out in outcomes:
        if out.get("status") not in NEEDS_ROLLBACK_LINK:
            continue
        url = links.rollback([out["ne"]]) if links else ""
        how = f"one-click rollback (prefilled): {url}" if url else f"roll back: {links.cli_hint() if links else ''}"
        lines.append(f"{out['ne']} {out['status']}: {short_reason(out.get('reason', ''), 200)} - {how}")
    if lines and links and links.rollback(None):
        lines.append(f"roll back the whole campaign: {links.rollback(None)}")
    return lines


def publish_period_s(nes: int) -> float:
    """How long the board waits between versions for a campaign of `nes` NEs: 2 s up to 50 NEs,
    then growing with N. A version costs CPU in proportion to N (the Markdown, the journal
    read, the server's write), and a CPU-bound campaign's length grows with N too, so a fixed
    period made the board's cost per NE grow with N; one proportional to N keeps it flat
    (1,000 NEs: a version every 40 s - an NE's steps are on its own run meanwhile)."""
    return max(2.0, nes / 25.0)


# ----------------------------------------------------------------------------- I/O

class Links:
    """Where an operator's next action is: the UI and the served rollback deployment."""

    def __init__(self, campaign_id: str, inventory: str) -> None:
        self.campaign_id, self.inventory = campaign_id, inventory
        self.ui = ui_base()
        self.deployment_id = rollback_deployment_id()

    def run(self, flow_run_id: str) -> str:
        return f"{self.ui}/runs/flow-run/{flow_run_id}" if self.ui else ""

    def rollback(self, nes: list[str] | None) -> str:
        if not (self.ui and self.deployment_id):
            return ""
        return rollback_run_url(self.ui, self.deployment_id, rollback_parameters(self.campaign_id, self.inventory, nes))

    def cli_hint(self) -> str:
        return (f"`changeline rollback --campaign {self.campaign_id} -i {self.inventory}` "
                "(or serve the one-click deployment with `changeline serve`)")


def ui_base() -> str:
    """The UI address the operator's browser uses; Prefect's new UI lives under /v2."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    if not ui and PREFECT_API_URL.value():
        ui = PREFECT_API_URL.value().rstrip("/").removesuffix("/api")
    return f"{ui}/v2" if ui else ""


def rollback_deployment_id() -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            return str(client.read_deployment_by_name(ROLLBACK_DEPLOYMENT).id)
    except ObjectNotFound:
        return None


class InPlaceArtifact:
    """A keyed Markdown artifact written once and then updated in place."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.id = None

    def write(self, markdown: str, description: str) -> None:
        from prefect.artifacts import create_markdown_artifact
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        if self.id is None:
            self.id = create_markdown_artifact(markdown=markdown, key=self.key, description=description)
            return
        with get_client(sync_client=True) as client:
            client.update_artifact(self.id, ArtifactUpdate(data=markdown, description=description))


def update_latest_markdown(key: str, markdown: str, description: str) -> bool:
    """Update the latest version of a keyed artifact in place (from another run, e.g. a
    rollback bringing the campaign's summary up to date); False if there is none."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate

    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(artifact_filter=_key_filter(key), limit=1)
        if not latest:
            return False
        client.update_artifact(latest[0].latest_id, ArtifactUpdate(data=markdown, description=description))
    return True


def _key_filter(key: str):
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    return ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))


class Board:
    """A processor of the campaign: its progress bar and board, re-published by a thread of
    their own at most every `publish_period_s(N)`, and only when what they show changed: each
    version is an API write or two, which must never hold up the campaign (its next wave waits
    on nothing but its NEs)."""

    def __init__(self, campaign_id: str, names_by_wave: Mapping[str, list[str]], outcomes: dict[str, dict[str, Any]],
                 *, inventory: str, probe=None) -> None:
        self.campaign_id = campaign_id
        self.names_by_wave = {w: list(n) for w, n in names_by_wave.items()}
        self.names = [n for names in self.names_by_wave.values() for n in names]
        self.outcomes = dict(outcomes)
        self.inventory = inventory
        self.probe = probe  # a ServiceProbe, or None
        self.running_since: dict[str, float] = {}
        self.run_urls: dict[str, str] = {}  # NE -> its run's page (ne_run, or read from the server)
        self.period_s = publish_period_s(len(self.names))
        self.links: Links | None = None
        self._shown: tuple | None = None  # what the last version showed: rows, progress, final line
        self._lock = threading.Lock()
        self._progress_id = None
        self._board = InPlaceArtifact(artifact_key(campaign_id, "board"))
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None

    def _done_pct(self) -> float:
        final = sum(1 for n in self.names if self.outcomes.get(n, {}).get("status") in policy.FINAL_STATES)
        return 100.0 * final / max(len(self.names), 1)

    def publish(self) -> None:
        """The first version, then the publisher (in this flow run's context, so the artifacts
        belong to the run)."""
        from prefect.artifacts import create_progress_artifact

        self.links = Links(self.campaign_id, self.inventory)
        done = self._done_pct()
        self._progress_id = create_progress_artifact(
            progress=done, key=artifact_key(self.campaign_id, "progress"),
            description=f"Campaign {self.campaign_id}: share of NEs finished")
        self._write_board(progress=done)
        context = contextvars.copy_context()
        self._publisher = threading.Thread(target=context.run, args=(self._publish_loop,),
                                           name="changeline-board", daemon=True)
        self._publisher.start()

    def ne_run(self, ne: str, kind: str, run_id: str) -> None:
        """The NE's run (a flow-run or task-run id) is running: its row links to it."""
        if self.links is not None and self.links.ui:
            self.run_urls[ne] = f"{self.links.ui}/runs/{kind}/{run_id}"

    # The Campaign scheduler's processor hooks (changeline.engine.campaign).
    def ne_working(self, ne: str) -> None:
        self.running_since[ne] = time.time()  # one dict assignment: atomic, no lock to wait on
        self._dirty.set()

    def ne_settled(self, outcomes: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self.outcomes = dict(outcomes)
        self._dirty.set()

    def _publish_loop(self) -> None:
        from prefect.artifacts import update_progress_artifact

        while not self._stop.is_set():
            self._dirty.wait(self.period_s)
            if self._stop.is_set():
                continue
            # A running NE's current step changes without an update: look while any NE works.
            if not self._dirty.is_set() and not self._anyone_working():
                continue
            self._dirty.clear()
            try:
                done = self._done_pct()
                if self._progress_id is not None and (self._shown is None or self._shown[1] != done):
                    update_progress_artifact(self._progress_id, progress=done)
                self._write_board(progress=done)
            except Exception as err:  # the UI lags a version; the campaign goes on
                log.warning("campaign %s: board not published (%s)", self.campaign_id, err)
            self._stop.wait(self.period_s)

    def _anyone_working(self) -> bool:
        with self._lock:
            return any(n not in self.outcomes for n in self.running_since)

    def _runs(self) -> dict[str, str]:
        """Each NE's run: as the NE's run reported it (ne_run), else - a run on a worker - from
        the server, the campaign run's children named after an NE that works without a link
        yet (asked once per NE found: a run's address does not change)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterParentFlowRunId
        from prefect.context import FlowRunContext

        missing = [ne for ne in list(self.running_since) if ne not in self.run_urls]
        ctx = FlowRunContext.get()
        if missing and ctx is not None and self.links is not None:
            with get_client(sync_client=True) as client:
                children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[ctx.flow_run.id]),
                    name=FlowRunFilterName(any_=missing)), limit=len(missing))
            for run in children:
                self.run_urls.setdefault(run.name, self.links.run(str(run.id)))
        return dict(self.run_urls)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            outcomes = dict(self.outcomes)
        return board_rows(self.names_by_wave, outcomes, stores.journal().ne_statuses(self.campaign_id), self._runs())

    def _write_board(self, final: str = "", progress: float | None = None) -> list[dict[str, Any]]:
        """Write a version of the board unless it would show what the last one showed."""
        rows = self.rows()
        shown = (tuple(tuple(sorted(r.items())) for r in rows), progress, final)
        if shown == self._shown:
            return rows
        self._shown = shown
        links = self.links
        anomalous = [r["ne"] for r in rows if r["state"] in NEEDS_ROLLBACK_LINK]
        rollback_links = {ne: links.rollback([ne]) for ne in anomalous} if links else {}
        rollback_links = {ne: url for ne, url in rollback_links.items() if url}
        whole = links.rollback(None) if links else ""
        probes = self.probe.markdown() if self.probe else ""
        markdown = board_markdown(self.campaign_id, rows, rollback_links=rollback_links, campaign_rollback=whole,
                                  probes=probes, final=final)
        if links and not links.deployment_id:
            markdown += "\n\n**Roll back:** " + links.cli_hint()
        self._board.write(markdown, board_description(self.campaign_id, rows, rollback_links))
        return rows

    def stop(self) -> None:
        """Stop the publisher (idempotent); finish() publishes the last versions."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(30)
            self._publisher = None

    def finish(self, summary: dict[str, Any], message: str) -> None:
        from prefect.artifacts import create_markdown_artifact, update_progress_artifact

        self.stop()
        with self._lock:
            self.outcomes = dict(summary["nes"])
        if self._progress_id is not None:
            update_progress_artifact(self._progress_id, progress=100.0)
        self._write_board(final=message)
        create_markdown_artifact(markdown=summary_markdown(summary, self.links),
                                 key=artifact_key(self.campaign_id, "summary"),
                                 description=f"Campaign {self.campaign_id}: {message}")


def summarize(campaign_id: str, model_objs: list, outcomes: dict[str, dict[str, Any]], started: datetime,
              stop_reason: str | None, window_end: datetime | None, *, inventory: str = "",
              probes: dict[str, Any] | None = None) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for out in outcomes.values():
        counts[out["status"]] = counts.get(out["status"], 0) + 1
    targeted = [o for o in outcomes.values() if o["status"] != policy.INELIGIBLE]
    summary = {
        "campaign_id": campaign_id,
        "model": model_objs[0].name, "model_version": model_objs[0].version,
        "models": [{"name": m.name, "version": m.version} for m in model_objs],
        "inventory": inventory,
        "started_at": started.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
        "window_end": window_end.isoformat() if window_end else None,
        "counts": counts, "stop_reason": stop_reason,
        "all_reached_target": bool(targeted) and all(o["status"] == policy.DONE for o in targeted),
        "message": outcome_message(outcomes.values()),
        "nes": outcomes,
    }
    if probes is not None:
        summary["live_probes"] = probes
    write_summary(summary)
    return summary


def write_summary(summary: dict[str, Any]) -> None:
    folder = stores.evidence_dir(summary["campaign_id"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def summary_markdown(summary: dict[str, Any], links: Links | None = None) -> str:
    models = ", ".join(f"{m['name']} {m['version']}" for m in summary.get("models") or
                       [{"name": summary["model"], "version": summary["model_version"]}])
    lines = [f"# Campaign {summary['campaign_id']}", "", f"**{summary.get('message', '')}**", "",
             f"Models: {models}. Started {summary['started_at']}.", ""]
    lines += [f"- **{state}**: {n}" for state, n in sorted(summary["counts"].items())]
    if summary.get("stop_reason"):
        lines += ["", f"**Stopped:** {summary['stop_reason']}"]
    for event in summary.get("rollbacks") or []:
        lines += ["", f"**Rollback run {event['run']}** ({event['at']}): {event['message']}"]
    lines += ["", "| NE | state | reason | action |", "|---|---|---|---|"]
    ordered = sorted(summary["nes"].items(), key=lambda kv: (row_rank(kv[1]["status"]), kv[0]))
    for name, out in ordered:
        link = links.rollback([name]) if links and out["status"] in NEEDS_ROLLBACK_LINK else ""
        action = f"[roll back]({link})" if link else ""
        lines.append(f"| {name} | {out['status']} | {short_reason(out.get('reason', ''), 200)} | {action} |")
    if links:
        whole = links.rollback(None)
        lines += ["", f"[Roll back the whole campaign]({whole})" if whole else "**Roll back:** " + links.cli_hint()]
    return "\n".join(lines)
