"""`changeline run | resume | rollback | serve`: the production line from a terminal."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from changeline.errors import InputError, Problem
from changeline.flows import policy, stores
from changeline.flows.server import ensure_server, flow_run_url, ui_url


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(Problem("<command line>", 0, 0, "--param", f"expected KEY=VALUE, got '{pair}'"))
        out[key] = value
    return out


def parse_window_end(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        end = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(Problem("<command line>", 0, 0, "--window-end",
                                 f"not an ISO 8601 time: '{value}' (e.g. 2026-11-28T04:00+08:00)")) from None
    return end if end.tzinfo else end.replace(tzinfo=timezone.utc)


def _check_file(path: str, option: str) -> None:
    if not Path(path).is_file():
        raise InputError(Problem(path, 0, 0, option, "file not found"))


def _watch(campaign_id: str, names: list[str], stop: threading.Event) -> None:
    """Terminal progress: one bar for the campaign, fed from the durable journal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    journal = stores.journal()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), transient=False) as bar:
        task = bar.add_task(campaign_id, total=len(names), detail="")
        while not stop.is_set():
            states = journal.ne_statuses(campaign_id)
            final = sum(1 for n in names if states.get(n, ("",))[0] in policy.FINAL_STATES)
            running = [n for n in names if states.get(n, ("",))[0] in ("running", "paused")]
            paused = [n for n in names if states.get(n, ("",))[0] == "paused"]
            detail = f"running: {len(running)}" + (f"  PAUSED (answer in the UI): {', '.join(paused)}" if paused else "")
            bar.update(task, completed=final, detail=detail)
            stop.wait(0.5)
        states = journal.ne_statuses(campaign_id)
        bar.update(task, completed=sum(1 for n in names if states.get(n, ("",))[0] in policy.FINAL_STATES), detail="")


def run_campaign(*, models: list[str], inventory: str, targets: str, campaign_id: str, params: dict, on_anomaly: str | None,
                 window_minutes: float | None, window_end: datetime | None, concurrency: int | None,
                 pause_timeout_s: int, lock_wait_s: float = 30.0, ne_deployment: str | None = None,
                 quiet: bool = False) -> dict:
    from changeline.devices.inventory import load_inventory
    from changeline.models.compile import load_model

    problems = []
    for model in models:  # bad input fails here, all of it at once, before a server or an NE is touched
        try:
            load_model(model)
        except InputError as err:
            problems += err.problems
    if problems:
        raise InputError(problems)
    names = [h.name for h in load_inventory(inventory).select(targets)]
    # Before Prefect is imported: it reads PREFECT_API_URL once, at import.
    api = ensure_server()
    from changeline.flows.campaign import campaign

    typer.echo(f"Prefect UI: {ui_url(api)}")
    campaign_id = campaign_id or f"c-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    stop = threading.Event()
    watcher = None
    if not quiet:
        watcher = threading.Thread(target=_watch, args=(campaign_id, names, stop), daemon=True)
        watcher.start()
    try:
        state = campaign(models=[str(Path(m).resolve()) for m in models], inventory=str(Path(inventory).resolve()),
                         targets=targets, campaign_id=campaign_id, params=params, on_anomaly=on_anomaly,
                         window_minutes=window_minutes, window_end=window_end, concurrency_cap=concurrency,
                         pause_timeout_s=pause_timeout_s, lock_wait_s=lock_wait_s, ne_deployment=ne_deployment,
                         return_state=True)
    finally:
        stop.set()
        if watcher:
            watcher.join(5)
    # A campaign with a failed NE ends Failed (its summary is the state's data); one that
    # crashed has none and raises here with its error.
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):
        state.result()
    summary["flow_run_url"] = flow_run_url(api, str(state.state_details.flow_run_id))
    return summary


def print_summary(summary: dict) -> None:
    typer.echo("")
    for name, out in sorted(summary["nes"].items()):
        typer.echo(f"  {name:<16} {out['status']:<16} {out.get('reason', '')}")
    typer.echo("  " + ", ".join(f"{k}: {v}" for k, v in sorted(summary["counts"].items())))
    if summary.get("stop_reason"):
        typer.echo(f"  campaign stopped: {summary['stop_reason']}")
    typer.echo(f"Campaign run: {summary['flow_run_url']}")


def run(
    models: list[str] = typer.Argument(..., help="model file(s); each NE gets the first model that targets it"),
    inventory: str = typer.Option(..., "--inventory", "-i", help="inventory file"),
    targets: str = typer.Option("all", "--targets", "-t", help="selector, e.g. 'type=AMF,SMF', 'amf-*', 'tag=canary'"),
    window_minutes: Optional[float] = typer.Option(None, "--window", help="change window length in minutes from now"),
    window_end: Optional[str] = typer.Option(None, "--window-end", help="change window end, ISO 8601"),
    on_anomaly: Optional[str] = typer.Option(None, "--on-anomaly", help="rollback | pause | continue | abort"),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="model parameter KEY=VALUE"),
    campaign_id: str = typer.Option("", "--campaign-id", help="name the campaign (re-use it to resume)"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="NEs at once (default: model's)"),
    pause_timeout: int = typer.Option(3600, "--pause-timeout", help="seconds an anomaly waits for an operator"),
    ne_deployment: Optional[str] = typer.Option(None, "--on-workers", help="run each NE as a run of this deployment "
                                                "(e.g. ne-change/worker, served by `changeline serve` on worker machines)"),
) -> None:
    """Run a campaign now; exit 0 only if every targeted NE reached its target."""
    for model in models:
        _check_file(model, "MODEL")
    _check_file(inventory, "--inventory")
    if on_anomaly and on_anomaly not in policy.ANOMALY_POLICIES:
        raise InputError(Problem("<command line>", 0, 0, "--on-anomaly",
                                 f"'{on_anomaly}' is not one of {', '.join(policy.ANOMALY_POLICIES)}"))
    summary = run_campaign(models=models, inventory=inventory, targets=targets, campaign_id=campaign_id,
                           params=parse_params(param), on_anomaly=on_anomaly, window_minutes=window_minutes,
                           window_end=parse_window_end(window_end), concurrency=concurrency,
                           pause_timeout_s=pause_timeout, ne_deployment=ne_deployment)
    print_summary(summary)
    raise typer.Exit(0 if summary["all_reached_target"] else 1)


def resume(campaign_id: str = typer.Argument(..., help="the campaign id to resume")) -> None:
    """Resume a campaign after a crash: finished NEs are skipped, NEs caught mid-step are finished."""
    args = stores.journal().campaign_args(campaign_id)
    if args is None:
        raise InputError(Problem("<command line>", 0, 0, "CAMPAIGN_ID", f"no campaign '{campaign_id}' in the journal "
                                 f"({stores.journal().path})"))
    summary = run_campaign(models=args["models"], inventory=args["inventory"], targets=args["targets"],
                           campaign_id=campaign_id, params=args.get("params") or {}, on_anomaly=args.get("on_anomaly"),
                           window_minutes=None, window_end=parse_window_end(args.get("window_end")),
                           concurrency=args.get("concurrency_cap"), pause_timeout_s=args.get("pause_timeout_s") or 3600,
                           lock_wait_s=policy.LOCK_LEASE_S * 3)
    print_summary(summary)
    raise typer.Exit(0 if summary["all_reached_target"] else 1)


def rollback(
    inventory: str = typer.Option(..., "--inventory", "-i"),
    campaign_id: str = typer.Option("", "--campaign", help="roll back every NE this campaign changed"),
    ne: Optional[list[str]] = typer.Option(None, "--ne", help="NE name (repeatable)"),
    verify: Optional[list[str]] = typer.Option(None, "--verify", help="dial-test scenario proving the rollback"),
) -> None:
    """Restore NEs from journal and backups, and verify them."""
    _check_file(inventory, "--inventory")
    if not campaign_id and not ne:
        raise InputError(Problem("<command line>", 0, 0, "--campaign/--ne", "name a campaign or at least one NE"))
    api = ensure_server()  # before Prefect is imported: it reads PREFECT_API_URL once, at import
    from changeline.flows.rollback_flow import rollback as rollback_flow

    state = rollback_flow(inventory=str(Path(inventory).resolve()), campaign_id=campaign_id, nes=ne or None,
                          verify_scenarios=verify or [], return_state=True)
    typer.echo(f"Rollback run: {flow_run_url(api, str(state.state_details.flow_run_id))}")
    if state.is_completed():
        for name, res in state.result().items():
            typer.echo(f"  {name:<16} {res['status']}")
        raise typer.Exit(0)
    typer.echo(f"error: {state.message}", err=True)
    raise typer.Exit(1)


def serve(
    port: int = typer.Option(4200, "--port"),
    model: Optional[str] = typer.Option(None, "--model", help="model the scheduled campaign runs"),
    inventory: Optional[str] = typer.Option(None, "--inventory", "-i"),
    targets: str = typer.Option("all", "--targets", "-t"),
    cron: Optional[str] = typer.Option(None, "--cron", help="change window start, e.g. '0 2 * * 6'"),
    timezone_name: str = typer.Option("UTC", "--timezone", help="e.g. Asia/Shanghai"),
    window_minutes: float = typer.Option(240, "--window", help="change window length in minutes"),
    limit: int = typer.Option(50, "--limit", help="flow runs this process executes at once"),
) -> None:
    """Start/attach the Prefect server and serve the campaign, rollback and per-NE worker deployments."""
    api = ensure_server(port)  # before Prefect is imported: it reads PREFECT_API_URL once, at import
    from prefect import serve as prefect_serve
    from prefect.schedules import Cron

    from changeline.flows.campaign import campaign
    from changeline.flows.ne_flow import ne_change
    from changeline.flows.rollback_flow import rollback as rollback_flow

    defaults = {}
    if model and inventory:
        defaults = {"models": [str(Path(model).resolve())], "inventory": str(Path(inventory).resolve()),
                    "targets": targets, "window_minutes": window_minutes}
    schedules = [Cron(cron, timezone=timezone_name)] if cron else None
    if cron and not defaults:
        raise InputError(Problem("<command line>", 0, 0, "--cron", "a scheduled campaign needs --model and --inventory"))
    campaign_dep = campaign.to_deployment(name="campaign", parameters=defaults, schedules=schedules,
                                          description="Run a model over selected NEs in waves, inside a change window")
    rollback_params = {"inventory": defaults["inventory"]} if defaults else {}
    rollback_dep = rollback_flow.to_deployment(name="one-click", parameters=rollback_params,
                                               description="Roll back a campaign's NEs (or named NEs) and verify")
    # Campaigns started with ne_deployment="ne-change/worker" hand each NE to whichever
    # process serves this deployment (this one, or `changeline serve` on other machines).
    worker_dep = ne_change.to_deployment(name="worker", description="Change one NE (dispatched by a campaign)")
    typer.echo(f"Prefect UI: {ui_url(api)}  (deployments: campaign/campaign, rollback/one-click, ne-change/worker)")
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
    prefect_serve(campaign_dep, rollback_dep, worker_dep, limit=limit)
