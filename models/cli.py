"""`changeline models ...` and `changeline plan`: the model library and plans before execution.

Mounted by changeline/cli.py:

    from changeline.models.cli import app as models_app, plan as plan_command
    app.add_typer(models_app, name="models", help="Validate, publish and look up models.")
    app.command("plan")(plan_command)

Commands raise ChangelineError (InputError with located problems) and the top-level
command prints it and exits 1; they never print tracebacks for bad input.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from changeline.devices.inventory import Host, load_inventory
from changeline.errors import InputError, Problem
from changeline.models.compile import CampaignPlan, NEPlan, format_duration, parse_param_args, plan_campaign
from changeline.models.library import MODEL_REF, Library
from changeline.models.model import Model
from changeline.models.validate import load_model

app = typer.Typer(name="models", help="Validate, publish, list and look up upgrade and change models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

LibraryOption = Annotated[Optional[Path], typer.Option(
    "--library", envvar="CHANGELINE_MODEL_LIBRARY", help="Library directory (default: the packaged models/library).")]


@app.command("validate")
def validate(files: Annotated[list[Path], typer.Argument(help="Model files.")]) -> None:
    """Check model files (YAML, schema, lint); report every problem of every file."""
    problems: list[Problem] = []
    for file in files:
        try:
            model = load_model(file)
        except InputError as err:
            problems.extend(err.problems)
            continue
        typer.echo(f"{file}: ok ({model.kind} {model.ref}: {model.describe_target()})")
    if problems:
        raise InputError(problems)


@app.command("publish")
def publish(files: Annotated[list[Path], typer.Argument(help="Model files to publish.")],
            library: LibraryOption = None) -> None:
    """Validate and publish models into the library (a published version never changes)."""
    lib = Library(library)
    problems: list[Problem] = []
    for file in files:
        try:
            result = lib.publish(file)
        except InputError as err:
            problems.extend(err.problems)
            continue
        state = "published" if result.changed else "already published, unchanged"
        typer.echo(f"{result.entry.ref}: {state} at {result.path} (sha256 {result.entry.sha256[:12]}...)")
    if problems:
        raise InputError(problems)


@app.command("list")
def list_models(library: LibraryOption = None,
                as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
                show_all: Annotated[bool, typer.Option("--all", help="Include superseded versions.")] = False) -> None:
    """Published models with their target and state (ok, superseded, modified, missing)."""
    lib = Library(library)
    entries = lib.entries()
    rows = [(e, lib.status(e, entries)) for e in entries]
    rows = [(e, s) for e, s in rows if show_all or s != "superseded"]
    if as_json:
        typer.echo(json.dumps([e.to_json() | {"status": s} for e, s in rows], indent=2))
        return
    if not rows:
        typer.echo(f"no models published in {lib.root}")
        return
    table = [("NAME", "VERSION", "KIND", "TARGET", "STATUS", "PATH")]
    table += [(e.name, e.version, e.kind, e.describe_target(), s, e.path) for e, s in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


@app.command("show")
def show(ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")], library: LibraryOption = None) -> None:
    """A published model: its record and its YAML."""
    lib = Library(library)
    entry = lib.find(ref)
    text = lib.text(entry)
    typer.echo(f"# {entry.ref} {entry.kind} {entry.describe_target()}")
    typer.echo(f"# path {lib.root / entry.path}")
    typer.echo(f"# sha256 {entry.sha256}, published {entry.published_at}")
    typer.echo(text, nl=False)


@app.command("lookup")
def lookup(ne_type: Annotated[str, typer.Option("--type", help="NE type, e.g. AMF.")],
           from_version: Annotated[str, typer.Option("--from", help="Current version.")],
           to_version: Annotated[str, typer.Option("--to", help="Target version.")],
           library: LibraryOption = None) -> None:
    """The published upgrade model for an NE type and version step."""
    lib = Library(library)
    entry = lib.lookup(ne_type, from_version, to_version)
    typer.echo(f"{entry.ref}\t{lib.root / entry.path}")


@app.command("schema")
def schema(check: Annotated[bool, typer.Option("--check", help="Only report stale files (exit 1).")] = False) -> None:
    """Regenerate models/schema/*.json from the atom registry."""
    from changeline.models.schema import stale_schemas, write_schemas

    if check:
        stale = stale_schemas()
        if stale:
            raise InputError([Problem(str(p), 1, 1, "", "stale: run `changeline models schema`") for p in stale])
        typer.echo("schema files are up to date")
        return
    for path in write_schemas():
        typer.echo(f"wrote {path}")


# --- plan --------------------------------------------------------------------------------

def resolve_model(ref: str, library: Path | None = None) -> Model:
    """A model file path, or NAME[@VERSION] from the library."""
    path = Path(ref)
    if path.exists() or not MODEL_REF.match(ref):
        return load_model(path)
    return Library(library).load(ref)


def plan(
    model: Annotated[str, typer.Argument(help="Model file, or NAME[@VERSION] from the library.")],
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory YAML.")],
    targets: Annotated[str, typer.Option("--targets", "-t", help="Selector, e.g. 'type=AMF site=sh-1' or 'all'.")],
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    no_device: Annotated[bool, typer.Option("--no-device", help="Do not read the NEs (no config diffs).")] = False,
    on_anomaly: Annotated[Optional[str], typer.Option(
        "--on-anomaly", help="Override the model's campaign.onAnomaly: rollback, pause, continue or abort.")] = None,
    library: LibraryOption = None,
) -> None:
    """Show what a model would do: waves, each NE's steps, config diffs, rollback, time budgets."""
    loaded = resolve_model(model, library)
    params = parse_param_args(param or [])
    inv = load_inventory(inventory)
    hosts = inv.select(targets)
    if not hosts:
        raise InputError(f"--targets {targets!r} matches no host of {inventory}")
    facts: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if not no_device:
        from changeline.models.preview import read_devices

        facts = read_devices([h for h in hosts if h.ne_type in loaded.ne_types])
        hosts = [_with_device_version(h, facts.get(h.name), notes) for h in hosts]
    campaign = plan_campaign(loaded, hosts, params, on_anomaly=on_anomaly)
    previews = _previews(campaign, facts) if facts else {}
    if as_json:
        out = campaign.to_dict()
        out["selected"] = [h.name for h in hosts]
        out["device_reads"] = None if no_device else {
            name: {"version": f.version, "error": f.error} for name, f in sorted(facts.items())}
        out["notes"] = notes
        out["config_diffs"] = {ne: [dataclasses.asdict(p) for p in ps] for ne, ps in previews.items()}
        typer.echo(json.dumps(out, indent=2, default=str))
    else:
        typer.echo(render_plan(campaign, selected=len(hosts), targets=targets, previews=previews, notes=notes,
                               device=not no_device))
    unread = sorted(name for name, f in facts.items() if f.error)
    if unread:
        # A plan without the NEs' own state has no config diffs: that is not the plan asked for.
        first = facts[unread[0]].error
        typer.echo(f"error: {len(unread)} NE(s) could not be read ({', '.join(unread[:5])}"
                   f"{', ...' if len(unread) > 5 else ''}: {first}); the plan above comes from the inventory, "
                   "without config diffs. Load the NE password (e.g. `set -a; . STATE_DIR/secrets.env; set +a`) "
                   "or pass --no-device to plan from the inventory on purpose.", err=True)
        raise typer.Exit(1)


def _with_device_version(host: Host, facts, notes: dict[str, str]) -> Host:
    if facts is None:
        return host
    if facts.error:
        notes[host.name] = f"NE not read ({facts.error}); planned from the inventory"
        return host
    if facts.version and facts.version != host.software_version:
        notes[host.name] = f"inventory says {host.software_version or 'nothing'}, the NE runs {facts.version}"
        return dataclasses.replace(host, data={**host.data, "software_version": facts.version})
    return host


def _previews(campaign: CampaignPlan, facts: dict[str, Any]) -> dict[str, list]:
    from changeline.models.preview import preview_plan

    out = {}
    for name, ne_plan in campaign.plans.items():
        running = facts.get(name).running if facts.get(name) else None
        if running is not None and any(s.atom == "config_change" for s in ne_plan.steps):
            out[name] = preview_plan(ne_plan, running)
    return out


def render_plan(campaign: CampaignPlan, *, selected: int, targets: str, previews: dict[str, list] | None = None,
                notes: dict[str, str] | None = None, device: bool = False) -> str:
    """The human-readable plan."""
    previews, notes = previews or {}, notes or {}
    policy = campaign.policy
    lines = [f"Plan: {campaign.model_name}@{campaign.model_version} ({campaign.kind}: {campaign.target})"]
    if campaign.params:
        lines.append("Parameters: " + ", ".join(f"{k}={_show(v)}" for k, v in campaign.params.items()))
    lines.append(f"Targets: {selected} selected by {targets!r}, {len(campaign.plans)} eligible, "
                 f"{len(campaign.ineligible)} ineligible")
    limits = []
    if policy.max_failures is not None or policy.max_failure_percent is None:
        limits.append(f"{policy.max_failures or 0} failed NE(s) tolerated")
    if policy.max_failure_percent is not None:
        limits.append(f"at most {policy.max_failure_percent:g}% failed")
    lines.append(f"Campaign: concurrency {policy.concurrency}; {', '.join(limits)}; "
                 f"gate anomalies -> {policy.on_anomaly}, other failures -> {policy.on_failure}")
    lines.append("Device reads: " + ("running config and version read from each NE" if device
                                     else "skipped (--no-device): no config diffs"))
    lines.append("")
    for i, wave in enumerate(campaign.waves, 1):
        lines.append(f"Wave {i}/{len(campaign.waves)} {wave.name!r} ({len(wave.nes)} NE): "
                     f"budget {format_duration(wave.budget_s)}, worst case {format_duration(wave.worst_case_s)}: "
                     + ", ".join(wave.nes))
    if not campaign.waves:
        lines.append("No eligible NE: nothing to do.")
    wave_of = {ne: w.name for w in campaign.waves for ne in w.nes}
    shown: dict[str, str] = {}  # rendered steps -> first NE with them: identical plans are listed once
    for name, ne_plan in campaign.plans.items():
        header, *body = _render_ne(ne_plan, wave_of[name], previews.get(name, []), notes.get(name), device)
        key = "\n".join(body)
        if key in shown:
            lines.append(f"{header}: same steps, arguments and rollback as {shown[key]}")
        else:
            shown[key] = name
            lines += ["", header, *body]
    if campaign.ineligible:
        lines.append("")
        lines.append(f"Ineligible ({len(campaign.ineligible)}):")
        lines += [f"  {i.ne}: {i.reason}" for i in campaign.ineligible]
    lines.append("")
    lines.append(f"Time budget: {format_duration(campaign.total_budget_s)} expected, "
                 f"{format_duration(campaign.total_worst_case_s)} worst case (every NE rolled back); "
                 f"by hand about {format_duration(campaign.manual_minutes * 60)}")
    return "\n".join(lines)


def _render_ne(plan: NEPlan, wave: str, previews: list, note: str | None, device: bool) -> list[str]:
    version = f"{plan.from_version} -> {plan.to_version}" if plan.to_version else plan.from_version
    lines = [f"{plan.ne} ({plan.ne_type} {version}), wave {wave!r}: {len(plan.steps)} steps, "
             f"{format_duration(plan.total_estimate_s)}" + (f"; note: {note}" if note else "")]
    rows = [("#", "STAGE", "STEP", "ATOM", "EST", "ON FAILURE", "ARGS")]
    for i, step in enumerate(plan.steps, 1):
        atom = step.atom + (" [gate]" if step.gate else "")
        rows.append((str(i), step.stage, step.name, atom, format_duration(step.estimate_s), step.on_failure,
                     _args(step.args)))
    widths = [max(len(r[c]) for r in rows) for c in range(6)]
    for row in rows:
        lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[6]).rstrip())
    for step, why in plan.skipped:
        lines.append(f"  skipped: {step} ({why})")
    by_step = {p.step: p for p in previews}
    for step in plan.steps:
        if step.atom != "config_change":
            continue
        preview = by_step.get(step.name)
        if preview is None:
            lines.append(f"  config of {step.name} ({'NE not read' if device else 'no diff without the NE'}):")
            lines += ["    " + line for line in step.args["config"].strip().splitlines()]
        elif preview.problem:
            lines.append(f"  config diff of {step.name}: the NE would refuse it: {preview.problem}")
        elif not preview.diff:
            lines.append(f"  config diff of {step.name}: none (already configured)")
        else:
            lines.append(f"  config diff of {step.name}:")
            lines += ["    " + line for line in preview.diff.rstrip("\n").splitlines()]
    rb = plan.rollback
    if rb is not None:
        undo = f"undo {', '.join(rb.undo_steps)} (newest first, those that ran), then " if rb.undo_steps else ""
        lines.append(f"  rollback ({rb.strategy}, up to {format_duration(rb.estimate_s)}): {undo}"
                     f"rollback {_args(rb.verify.args)}")
    return lines


def _args(args: dict[str, Any]) -> str:
    parts = []
    for key, value in args.items():
        if isinstance(value, str) and "\n" in value.strip():
            parts.append(f"{key}=<{len(value.strip().splitlines())} lines>")
        else:
            parts.append(f"{key}={_show(value)}")
    return " ".join(parts)


def _show(value: Any) -> str:
    if isinstance(value, str) and value and " " not in value:
        return value
    return json.dumps(value)
