"""`changeline run | resume | rollback | serve`: the production line from a terminal."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from changeline.arguments import COMMAND_LINE, Arguments
from changeline.errors import EXIT_NOT_AT_TARGET, EXIT_OK, InputError, Problem, quoted, redact
from changeline.engine import policy
from changeline.flows import stores
from changeline.flows.quiet import quiet_expected_errors
from changeline.flows.ne_runs import NE_RUN_KINDS, STEP_RUNS, STEP_RUNS_SETTING, ne_run_setting, step_runs_setting
from changeline.flows.server import ensure_server, flow_run_url, ui_url


def check_run_arguments(*, models: list[str], inventory: str, campaign_id: str, param: list[str] | None,
                        on_anomaly: str | None, window_minutes: float | None, window_end: str | None,
                        concurrency: int | None, pause_timeout: int, ne_deployment: str | None,
                        now: datetime | None = None, ne_run: str | None = None,
                        step_runs: str | None = None) -> tuple[dict[str, str], datetime | None]:
    """Every `run` option checked at once, before any file is read or anything starts;
    returns the parsed parameters and window end."""
    args = Arguments()
    for model in models:
        args.file("MODEL", model)
    args.file("--inventory", inventory)
    args.name("--campaign-id", campaign_id)
    params = args.params("--param", param)
    args.choice("--on-anomaly", on_anomaly, policy.ANOMALY_POLICIES)
    # 0 used to mean "no window": leave the option out for that.
    args.number("--window", window_minutes, above=0)
    end = args.window_end("--window-end", window_end, now=now or datetime.now(timezone.utc))
    if window_minutes is not None and window_end:
        args.problem("--window-end", "give --window or --window-end, not both")
    args.number("--concurrency", concurrency, minimum=1)
    args.number("--pause-timeout", pause_timeout, minimum=1)
    args.deployment("--on-workers", ne_deployment)
    args.choice("--ne-run", ne_run, NE_RUN_KINDS)
    args.choice("--step-runs", step_runs, STEP_RUNS)
    args.done()
    return params, end


def preflight(models: list[str], inventory: str, targets: str, params: dict) -> list:
    """Models, inventory, selection and parameters as a campaign will use them: bad input fails
    here, all of it at once, before a server or an NE is touched. Returns the selected hosts."""
    from changeline.devices.inventory import load_inventory
    from changeline.models.compile import resolve_params
    from changeline.models.validate import load_model

    problems: list[Problem] = []
    loaded = []
    for model in models:
        try:
            loaded.append(load_model(model))
        except InputError as err:
            problems += err.problems
    try:
        inv = load_inventory(inventory)
    except InputError as err:
        raise InputError(problems + err.problems) from None
    if problems:
        raise InputError(problems)
    hosts = inv.select(targets)
    if not hosts:
        problems.append(Problem(COMMAND_LINE, 0, 0, "--targets", f"{quoted(targets)} matches no host of {inventory} "
                                f"({len(inv)} hosts)"))
    for model in loaded:  # each NE's model gets every --param: each must declare them all
        try:
            resolve_params(model, params)
        except InputError as err:
            problems += err.problems
    problems += _credential_problems(inventory, hosts)
    if problems:
        raise InputError(problems)
    return hosts


def _credential_problems(inventory: str, hosts: list) -> list[Problem]:
    """An unset password variable or a missing known_hosts file would fail every NE at its
    first step; say so now, once per setting, naming the NEs (never the value)."""
    unset: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    unverifiable: list[str] = []
    for host in hosts:
        if host.password_env and host.password_env not in os.environ:
            unset.setdefault(host.password_env, []).append(host.name)
        if not host.known_hosts:
            unverifiable.append(host.name)
        elif not Path(host.known_hosts).is_file():
            missing.setdefault(host.known_hosts, []).append(host.name)
    out = [Problem(inventory, 0, 0, "password_env", f"environment variable {var} is not set "
                   f"(needed by {_names(nes)})") for var, nes in sorted(unset.items())]
    out += [Problem(inventory, 0, 0, "known_hosts", f"{path}: file not found (needed by {_names(nes)})")
            for path, nes in sorted(missing.items())]
    if unverifiable:
        out.append(Problem(inventory, 0, 0, "known_hosts", "not set: host keys cannot be verified, so no NE is "
                           f"connected to (needed by {_names(unverifiable)})"))
    return out


def _names(nes: list[str]) -> str:
    return ", ".join(nes[:5]) + (f" and {len(nes) - 5} more" if len(nes) > 5 else "")


def connect_to_prefect(port: int | None = None) -> str:
    """A healthy Prefect server for this process (started if none answers), with expected
    errors kept out of its run logs' tracebacks; returns its API URL. Call it before
    anything imports Prefect: Prefect reads PREFECT_API_URL once, at import."""
    api = ensure_server(port)
    quiet_expected_errors()
    return api


def _check_deployment(name: str | None, api: str) -> None:
    """`--on-workers` must name a deployment the server knows, or every NE would fail with
    Prefect's bare "not found"."""
    if not name:
        return
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise InputError(Problem(COMMAND_LINE, 0, 0, "--on-workers", f"no deployment {quoted(name)} on the Prefect "
                                 f"server at {api} (start `changeline serve` where the NEs should run)")) from None


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
                 quiet: bool = False, ne_run: str | None = None, step_runs: str | None = None) -> dict:
    names = [h.name for h in preflight(models, inventory, targets, params)]
    stores.journal()  # a bad or unreachable CHANGELINE_STATE_URL fails here, before a server or an NE
    if ne_deployment:
        policy.worker_lease_s(os.environ.get(policy.WORKER_LEASE_SETTING))  # and a bad worker lease
    ne_run_setting(ne_run)  # and a bad CHANGELINE_NE_RUN
    if step_runs:  # read where each NE's run starts, in this process (workers: their own setting)
        os.environ[STEP_RUNS_SETTING] = step_runs
    step_runs_setting()  # and a bad CHANGELINE_STEP_RUNS
    api = connect_to_prefect()
    _check_deployment(ne_deployment, api)
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
                         ne_run=ne_run, return_state=True)
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
    ne_run: Optional[str] = typer.Option(None, "--ne-run", help="each NE in this process as a flow run (its own page; "
                                         "default) or a task run of the campaign's (cheaper); default CHANGELINE_NE_RUN"),
    step_runs: Optional[str] = typer.Option(None, "--step-runs", help="a task run per step (default) or per model "
                                            "stage, its steps as log lines (cheaper); default CHANGELINE_STEP_RUNS"),
) -> None:
    """Run a campaign now; exit 0 only if every targeted NE reached its target (see README: exit codes)."""
    params, end = check_run_arguments(models=models, inventory=inventory, campaign_id=campaign_id, param=param,
                                      on_anomaly=on_anomaly, window_minutes=window_minutes, window_end=window_end,
                                      concurrency=concurrency, pause_timeout=pause_timeout,
                                      ne_deployment=ne_deployment, ne_run=ne_run, step_runs=step_runs)
    summary = run_campaign(models=models, inventory=inventory, targets=targets, campaign_id=campaign_id,
                           params=params, on_anomaly=on_anomaly, window_minutes=window_minutes,
                           window_end=end, concurrency=concurrency,
                           pause_timeout_s=pause_timeout, ne_deployment=ne_deployment, ne_run=ne_run,
                           step_runs=step_runs)
    print_summary(summary)
    raise typer.Exit(campaign_exit_code(summary))


def campaign_exit_code(summary: dict) -> int:
    """0 only if every targeted NE reached its target; deferred, skipped, ineligible, failed or
    rolled back NEs make it 1."""
    return EXIT_OK if summary.get("all_reached_target") else EXIT_NOT_AT_TARGET


def resume(campaign_id: str = typer.Argument(..., help="the campaign id to resume")) -> None:
    """Resume a campaign after a crash: finished NEs are skipped, NEs caught mid-step are finished."""
    check = Arguments()
    check.name("CAMPAIGN_ID", campaign_id)
    check.done()
    args = stores.journal().campaign_args(campaign_id)
    if args is None:
        raise InputError(Problem(COMMAND_LINE, 0, 0, "CAMPAIGN_ID", f"no campaign '{campaign_id}' in the journal "
                                 f"({stores.journal().location})"))
    window_end = datetime.fromisoformat(args["window_end"]) if args.get("window_end") else None
    summary = run_campaign(models=args["models"], inventory=args["inventory"], targets=args["targets"],
                           campaign_id=campaign_id, params=args.get("params") or {}, on_anomaly=args.get("on_anomaly"),
                           window_minutes=None, window_end=window_end,
                           concurrency=args.get("concurrency_cap"), pause_timeout_s=args.get("pause_timeout_s") or 3600,
                           lock_wait_s=policy.LOCK_LEASE_S * 3)
    print_summary(summary)
    raise typer.Exit(campaign_exit_code(summary))


def rollback(
    inventory: str = typer.Option(..., "--inventory", "-i"),
    campaign_id: str = typer.Option("", "--campaign", help="roll back every NE this campaign changed"),
    ne: Optional[list[str]] = typer.Option(None, "--ne", help="NE name (repeatable)"),
    verify: Optional[list[str]] = typer.Option(None, "--verify", help="dial-test scenario proving the rollback"),
) -> None:
    """Restore NEs from journal and backups, and verify them; exit 0 only if every NE is verifiably back."""
    check_rollback_arguments(inventory, campaign_id, ne or [])
    api = connect_to_prefect()
    from changeline.flows.rollback_flow import rollback as rollback_flow

    state = rollback_flow(inventory=str(Path(inventory).resolve()), campaign_id=campaign_id, nes=ne or None,
                          verify_scenarios=verify or [], return_state=True)
    typer.echo(f"Rollback run: {flow_run_url(api, str(state.state_details.flow_run_id))}")
    if state.is_completed():
        results = state.result()
        for name, res in results.items():
            typer.echo(f"  {name:<16} {res['status']}")
        # NEs the campaign never changed are listed too (nothing to roll back); they do not fail it.
        changed = [res for res in results.values() if "nothing to roll back" not in str(res.get("reason", ""))]
        all_back = all(res.get("status") == policy.ROLLED_BACK for res in changed)
        raise typer.Exit(EXIT_OK if all_back else EXIT_NOT_AT_TARGET)
    typer.echo(f"error: {redact(state.message or 'the rollback run failed')}", err=True)
    raise typer.Exit(EXIT_NOT_AT_TARGET)


def check_rollback_arguments(inventory: str, campaign_id: str, nes: list[str]) -> None:
    """What a rollback needs, checked before a server starts: the inventory, the NEs in it,
    and a campaign in the journal that changed them."""
    from changeline.devices.inventory import load_inventory

    args = Arguments()
    args.file("--inventory", inventory)
    args.name("--campaign", campaign_id)
    for name in nes:
        args.name("--ne", name)
    if not campaign_id and not nes:
        args.problem("--campaign/--ne", "name a campaign or at least one NE")
    args.done()
    hosts = load_inventory(inventory).hosts
    journal = stores.journal()
    for name in nes:
        if name not in hosts:
            args.problem("--ne", f"{name}: not in {inventory}")
        elif not campaign_id and not journal.runs_for(name):
            args.problem("--ne", f"{name}: no campaign in the journal ({journal.location}) changed it")
    if campaign_id and not journal.entries(campaign_id):
        known = journal.campaign_args(campaign_id) is not None
        args.problem("--campaign", f"campaign {campaign_id} changed no NE (nothing to undo in {journal.location})"
                     if known else f"no campaign {campaign_id} in the journal ({journal.location})")
    args.done()
    touched = [h for h in hosts.values() if h.name in nes] if nes else \
        [hosts[n] for n in sorted({e.ne for e in journal.entries(campaign_id)}) if n in hosts]
    problems = _credential_problems(inventory, touched)
    if problems:
        raise InputError(problems)


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
    check_serve_arguments(port=port, model=model, inventory=inventory, targets=targets, cron=cron,
                          timezone_name=timezone_name, window_minutes=window_minutes, limit=limit)
    stores.journal(), stores.backups()  # a worker that cannot reach its stores says so now, not at its first NE
    api = connect_to_prefect(port)
    from prefect import serve as prefect_serve
    from prefect.schedules import Cron

    from changeline.flows.campaign import campaign
    from changeline.flows.rollback_flow import rollback as rollback_flow
    from changeline.flows.workers import ne_change_on_worker

    defaults = {}
    if model and inventory:
        defaults = {"models": [str(Path(model).resolve())], "inventory": str(Path(inventory).resolve()),
                    "targets": targets, "window_minutes": window_minutes}
    schedules = [Cron(cron, timezone=timezone_name)] if cron else None
    campaign_dep = campaign.to_deployment(name="campaign", parameters=defaults, schedules=schedules,
                                          description="Run a model over selected NEs in waves, inside a change window")
    rollback_params = {"inventory": defaults["inventory"]} if defaults else {}
    rollback_dep = rollback_flow.to_deployment(name="one-click", parameters=rollback_params,
                                               description="Roll back a campaign's NEs (or named NEs) and verify")
    # Campaigns started with ne_deployment="ne-change/worker" hand each NE to whichever
    # process serves this deployment (this one, or `changeline serve` on other machines).
    worker_dep = ne_change_on_worker.to_deployment(name="worker", description="Change one NE (dispatched by a campaign)")
    typer.echo(f"Prefect UI: {ui_url(api)}  (deployments: campaign/campaign, rollback/one-click, ne-change/worker)")
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
    prefect_serve(campaign_dep, rollback_dep, worker_dep, limit=limit)


def check_serve_arguments(*, port: int, model: str | None, inventory: str | None, targets: str, cron: str | None,
                          timezone_name: str, window_minutes: float, limit: int) -> None:
    args = Arguments()
    args.port("--port", port)
    args.file("--model", model)
    args.file("--inventory", inventory)
    args.number("--window", window_minutes, above=0)
    args.number("--limit", limit, minimum=1)
    if cron and not (model and inventory):
        args.problem("--cron", "a scheduled campaign needs --model and --inventory")
    if cron:
        from prefect._vendor.croniter import croniter  # the parser Prefect schedules with

        if not croniter.is_valid(cron):
            args.problem("--cron", f"{quoted(cron)} is not a cron expression (e.g. '0 2 * * 6')")
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        args.problem("--timezone", f"{quoted(timezone_name)} is not a time zone (e.g. Asia/Shanghai)")
    args.done()
    if model and inventory:
        preflight([model], inventory, targets, {})
