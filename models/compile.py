"""From a validated model to what the flows run: per-NE plans, waves and a campaign plan.

The API the flows use (all pure: no device I/O, no clock):

    model = load_model("models/library/amf/1.3/amf-upgrade.yaml")      # raises InputError
    reason = eligibility(model, host)                                   # None if eligible
    plan = compile_for_host(model, host, {"image_repo": "/srv/images"}) # -> NEPlan
    waves = plan_waves(model, eligible_hosts)                           # -> [Wave(name, hosts)]
    campaign = plan_campaign(model, hosts, params)                      # -> CampaignPlan

A `Step` is one atom call with its arguments prepared the one way lint and the runner
prepare them too (`changeline.models.step_args`: templates rendered, nulls left out,
the atom's defaults filled in, checked against its argument schema), so a flow passes
`step.args` straight to `changeline.engine.runner.execute(step.atom, ctx, step.args)`.

`on_failure` tells the flow what to do when the step fails:
- `rollback`: roll this NE back (see `NEPlan.rollback`), count it failed, go on with others
  (until `CampaignPolicy.breached` says stop); with nothing changed yet there is nothing to undo;
- `pause`: leave the NE as it is and pause the campaign for an operator's go/no-go;
- `continue`: record the failure and run the NE's next step (never set on a mutating step);
- `abort`: stop this NE where it is, without rolling back, and count it failed.
Gate steps (`gate=True`) are checks whose failure is an anomaly of the change (dial test,
billing, KPI, validation); their default comes from `campaign.onAnomaly`, the other
steps' from `campaign.onFailure`.

`NEPlan.rollback` is how to put the NE back: with strategy `journal`, run the undo of each
journaled mutating step, newest first (`changeline.engine.runner.undo_run`), then run
`rollback.verify` (the `rollback` atom: restore software and configuration from the run's
backup if they still differ, then dial-test); with strategy `backup`, run only
`rollback.verify`. A rollback of an NE on which no mutating step ran is nothing to do.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from changeline.devices.inventory import Host
from changeline.devices.platforms import atom_problem, platform_can
from changeline.errors import InputError, Problem
from changeline.models import step_args, templates
from changeline.models.model import CampaignPolicy, Model, StepSpec
from changeline.models.schema import ON_FAILURE
from changeline.models.validate import default_catalogue, default_registry, load_model
from changeline.models.waves import Wave, plan_waves
from changeline.yamlsource import FieldPath

__all__ = [
    "CampaignPlan", "Ineligible", "NEPlan", "RollbackPlan", "Step", "Wave", "WavePlan",
    "compile_for_host", "eligibility", "load_model", "plan_campaign",
    "plan_waves", "resolve_params",
]


@dataclass(frozen=True)
class Step:
    name: str
    stage: str
    atom: str
    args: dict[str, Any]            # rendered, schema-checked, atom defaults filled in
    timeout_s: float | None         # None: no limit beyond the atom's own waits
    retries: int                    # retries of transient errors only
    on_failure: str                 # rollback | pause | continue | abort
    gate: bool                      # a failure is an anomaly
    mutating: bool                  # from the atom's SPEC; mutating steps are journaled
    estimate_s: float
    manual_minutes: float
    # Where the model writes the step, for the errors only its run finds; not part of the plan.
    source: step_args.StepSource | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        plan = asdict(dataclasses.replace(self, source=None))
        del plan["source"]
        return plan


@dataclass(frozen=True)
class RollbackPlan:
    strategy: str                   # journal | backup
    undo_steps: tuple[str, ...]     # journal: steps whose undo runs, newest first (if they ran)
    verify: Step                    # the `rollback` atom step run last
    estimate_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "undo_steps": list(self.undo_steps), "verify": self.verify.to_dict(),
                "estimate_s": self.estimate_s}


@dataclass(frozen=True)
class NEPlan:
    ne: str
    ne_type: str
    model_name: str
    model_version: str
    steps: tuple[Step, ...]
    rollback_estimate_s: float
    total_estimate_s: float
    rollback: RollbackPlan | None = None
    from_version: str = ""
    to_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    skipped: tuple[tuple[str, str], ...] = ()   # (step, why): left out by their `when`

    @property
    def manual_minutes(self) -> float:
        return sum(s.manual_minutes for s in self.steps)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ne": self.ne, "ne_type": self.ne_type, "model": f"{self.model_name}@{self.model_version}",
            "from_version": self.from_version, "to_version": self.to_version, "params": self.params,
            "steps": [s.to_dict() for s in self.steps],
            "skipped": [{"step": n, "reason": r} for n, r in self.skipped],
            "rollback": self.rollback.to_dict() if self.rollback else None,
            "total_estimate_s": self.total_estimate_s, "rollback_estimate_s": self.rollback_estimate_s,
            "manual_minutes": self.manual_minutes,
        }


# --- eligibility and parameters ------------------------------------------------------

def eligibility(model: Model, host: Host) -> str | None:
    """Why `host` is not a target of `model` (wrong type, wrong version, already there), or None."""
    if host.ne_type not in model.ne_types:
        shown = host.ne_type or "unknown (no data.ne_type in the inventory)"
        return f"type {shown} is not targeted (the model targets {', '.join(model.ne_types)})"
    version = host.software_version
    if model.is_upgrade:
        if not version:
            return "the inventory gives no software_version"
        if version == model.to_version:
            return f"already at {version}"
        if version not in model.from_versions:
            return f"runs {version}, not an upgrade source (fromVersions: {', '.join(model.from_versions)})"
    elif model.versions and version not in model.versions:
        return f"runs {version or 'an unknown version'}; the change applies to {', '.join(model.versions)}"
    return None


def resolve_params(model: Model, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults overridden by `given`; strings are converted to the declared type. InputError lists
    unknown names, values of the wrong type and required parameters without a value."""
    given = dict(given or {})
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in sorted(set(given) - set(model.parameters)):
        declared = ", ".join(sorted(model.parameters)) or "none"
        problems.append(model.source.problem(("spec", "parameters"),
                                             f"unknown parameter {name!r} given (declared: {declared})"))
    for name, param in model.parameters.items():
        where: FieldPath = ("spec", "parameters", name)
        if name in given:
            value = given[name]
            if isinstance(value, str) and param.type != "string":
                try:
                    value = param.coerce(value)
                except ValueError as err:
                    problems.append(model.source.problem(where, f"--param {name}={given[name]}: {err}"))
                    continue
            wrong = param.problem(value)
            if wrong:
                problems.append(model.source.problem(where, f"--param {name}={given[name]}: {wrong}"))
                continue
            values[name] = value
        elif param.has_default:
            values[name] = param.default
        else:
            problems.append(model.source.problem(where, f"is required: pass --param {name}=VALUE"))
    if problems:
        raise InputError(problems)
    return values


def template_context(model: Model, host: Host, params: dict[str, Any]) -> dict[str, Any]:
    """What templates see for this NE (see changeline.models.templates)."""
    profile = default_catalogue().get(host.ne_type)
    scenarios = list(profile.scenarios) if profile else []
    target: dict[str, Any] = {
        "ne_type": host.ne_type, "from_version": host.software_version, "ne_types": list(model.ne_types),
        "versions": list(model.versions), "scenarios": scenarios,
        "cdr_scenarios": [n for n in scenarios if profile.scenarios[n].writes_cdr] if profile else [],
    }
    if model.is_upgrade:
        target.update(to_version=model.to_version, from_versions=list(model.from_versions))
    context: dict[str, Any] = {
        "params": dict(params),
        "host": {"name": host.name, "hostname": host.hostname, "data": dict(host.data), "ne_type": host.ne_type,
                 "software_version": host.software_version, "pool": host.pool, "tags": list(host.tags),
                 "groups": list(host.groups)},
        "model": {"name": model.name, "version": model.version, "kind": model.kind,
                  "description": model.description, "owner": model.owner},
        "target": target,
    }
    return context


# --- compiling one NE ----------------------------------------------------------------

def compile_for_host(model: Model, host: Host, params: dict[str, Any] | None = None, *,
                     on_anomaly: str | None = None) -> NEPlan:
    """The NE's plan: every step rendered for this host and checked. Raises InputError if the
    host is not eligible or any argument does not render or type-check (all problems at once).

    `on_anomaly` overrides the model's `campaign.onAnomaly` for this run (gate steps without
    an `onFailure` of their own)."""
    _check_on_anomaly(on_anomaly)
    reason = eligibility(model, host)
    if reason:
        raise InputError(Problem(model.file, 0, 0, "", f"{host.name} is not a target of {model.ref}: {reason}"))
    values = resolve_params(model, params)
    context = template_context(model, host, values)
    problems: list[Problem] = []
    if model.is_upgrade and model.software_image:
        image = _render(model.software_image, context, ("spec", "software", "image"), model, host, problems)
        if isinstance(image, str):
            context["software"] = {"image": image, "file": image.rsplit("/", 1)[-1]}
    registry = default_registry()
    steps: list[Step] = []
    skipped: list[tuple[str, str]] = []
    for spec in model.steps:
        if spec.when:
            try:
                run = templates.evaluate_condition(spec.when, context)
            except templates.RenderError as err:
                problems.append(model.source.problem(spec.path + ("when",), f"{host.name}: {err.args[0]}"))
                continue
            if not run:
                skipped.append((spec.name, f"when: {spec.when} is false"))
                continue
        refused = atom_problem(host.name, host.platform, spec.atom)
        if refused:
            problems.append(model.source.problem(spec.path + ("atom",), refused))
            continue
        step = _compile_step(model, spec, registry[spec.atom], context, host, problems, on_anomaly)
        if step is not None and step.atom == "rollback" and step.args.get("verify_scenarios") \
                and not platform_can(host.platform, "dial_test"):
            # Found here rather than when the step runs: the NE would be rolled back and then
            # the verification refused, leaving the operator to find out why at the NE.
            problems.append(model.source.problem(spec.path + ("with", "verify_scenarios"),
                                                 f"{host.name}: platform {host.platform!r} has no dial_test "
                                                 "operation to verify a rollback with"))
            continue
        if step is not None:
            steps.append(step)
    rollback = _rollback_plan(model, steps, context, host, registry, problems)
    if problems:
        raise InputError(problems)
    total = sum(s.estimate_s for s in steps)
    return NEPlan(ne=host.name, ne_type=host.ne_type, model_name=model.name, model_version=model.version,
                  steps=tuple(steps), rollback_estimate_s=rollback.estimate_s, total_estimate_s=total,
                  rollback=rollback, from_version=host.software_version, to_version=model.to_version,
                  params=values, skipped=tuple(skipped))


def _check_on_anomaly(on_anomaly: str | None) -> None:
    if on_anomaly is not None and on_anomaly not in ON_FAILURE:
        raise InputError(f"on_anomaly must be one of {', '.join(ON_FAILURE)}, got {on_anomaly!r}")


def _compile_step(model: Model, spec: StepSpec, module, context: dict[str, Any], host: Host,
                  problems: list[Problem], on_anomaly: str | None) -> Step | None:
    args = _prepared_args(module.SPEC.args_schema, spec.args, context, spec.path + ("with",), model, host, problems)
    if args is None:
        return None
    atom = module.SPEC
    default_policy = (on_anomaly or model.campaign.on_anomaly) if spec.gate else model.campaign.on_failure
    return Step(
        name=spec.name, stage=spec.stage, atom=spec.atom, args=args, timeout_s=spec.timeout_s,
        retries=spec.retries if spec.retries is not None else atom.transient_retries,
        on_failure=spec.on_failure or default_policy, gate=spec.gate, mutating=atom.mutating,
        estimate_s=float(spec.estimate_s if spec.estimate_s is not None else atom.estimate_s),
        manual_minutes=float(spec.manual_minutes if spec.manual_minutes is not None else atom.manual_minutes),
        source=step_args.StepSource.of(model.source, spec.path, spec.args),
    )


def _prepared_args(schema: dict[str, Any], args: dict[str, Any], context: dict[str, Any] | None, path: FieldPath,
                   model: Model, host: Host, problems: list[Problem]) -> dict[str, Any] | None:
    """The atom's arguments for this NE (changeline.models.step_args), or None with the problems
    added at the model's fields."""
    prepared = step_args.prepare(schema, args, context)
    problems.extend(model.source.problem(path + p.path, f"{host.name}: {p.message}") for p in prepared.problems)
    return None if prepared.problems else prepared.args


def _render(value: Any, context: dict[str, Any], path: FieldPath, model: Model, host: Host,
            problems: list[Problem]) -> Any:
    rendered, found = step_args.render(value, context)
    problems.extend(model.source.problem(path + p.path, f"{host.name}: {p.message}") for p in found)
    return templates.OMIT if found else rendered


def _rollback_plan(model: Model, steps: list[Step], context: dict[str, Any], host: Host, registry,
                   problems: list[Problem]) -> RollbackPlan:
    rb = model.rollback
    atom = registry["rollback"].SPEC
    if rb.verify_scenarios is None:
        scenarios: Any = list(context["target"]["scenarios"])
    else:
        scenarios = _render(rb.verify_scenarios, context, ("spec", "rollback", "verify", "scenarios"),
                            model, host, problems)
        if scenarios is templates.OMIT:
            scenarios = []
    if scenarios and not platform_can(host.platform, "dial_test"):
        if rb.verify_scenarios is None:
            scenarios = []  # the type's scenarios by default: none for a platform without dial tests
        else:
            problems.append(model.source.problem(("spec", "rollback", "verify", "scenarios"),
                                                 f"{host.name}: platform {host.platform!r} has no dial_test "
                                                 "operation to verify a rollback with"))
    args: dict[str, Any] = {"verify_scenarios": scenarios}
    if rb.restart_timeout_s is not None:
        args["restart_timeout_s"] = rb.restart_timeout_s
    args = _prepared_args(atom.args_schema, args, None, ("spec", "rollback", "verify"), model, host, problems) or args
    verify = Step(name="rollback-verify", stage="rollback", atom="rollback", args=args, timeout_s=None,
                  retries=atom.transient_retries, on_failure="pause", gate=False, mutating=True,
                  estimate_s=float(atom.estimate_s), manual_minutes=float(atom.manual_minutes),
                  source=step_args.StepSource.of(model.source, ("spec", "rollback", "verify"), {}, args_at=()))
    undo = ()
    if rb.strategy == "journal":
        undo = tuple(s.name for s in reversed(steps) if s.mutating and getattr(registry[s.atom], "undo", None))
    if rb.estimate_s is not None:
        estimate = float(rb.estimate_s)
    else:
        estimate = verify.estimate_s + sum(s.estimate_s for s in steps if s.name in undo)
    return RollbackPlan(strategy=rb.strategy, undo_steps=undo, verify=verify, estimate_s=estimate)


# --- the campaign --------------------------------------------------------------------

@dataclass(frozen=True)
class WavePlan:
    name: str
    nes: tuple[str, ...]
    budget_s: float          # expected: every NE succeeds, `concurrency` at a time
    worst_case_s: float      # every NE runs all steps and then rolls back


@dataclass(frozen=True)
class Ineligible:
    ne: str
    reason: str


@dataclass(frozen=True)
class CampaignPlan:
    model_name: str
    model_version: str
    kind: str
    target: str
    params: dict[str, Any]
    policy: CampaignPolicy
    waves: tuple[WavePlan, ...]
    plans: dict[str, NEPlan]
    ineligible: tuple[Ineligible, ...]
    total_budget_s: float
    total_worst_case_s: float

    @property
    def manual_minutes(self) -> float:
        return sum(p.manual_minutes for p in self.plans.values())

    def to_dict(self) -> dict[str, Any]:
        policy = self.policy
        return {
            "model": {"name": self.model_name, "version": self.model_version, "kind": self.kind,
                      "target": self.target},
            "params": self.params,
            "campaign": {"concurrency": policy.concurrency, "max_failures": policy.max_failures,
                         "max_failure_percent": policy.max_failure_percent, "on_anomaly": policy.on_anomaly,
                         "on_failure": policy.on_failure},
            "waves": [asdict(w) | {"nes": list(w.nes)} for w in self.waves],
            "nes": {name: plan.to_dict() for name, plan in self.plans.items()},
            "ineligible": [asdict(i) for i in self.ineligible],
            "budget": {"total_s": self.total_budget_s, "worst_case_s": self.total_worst_case_s,
                       "manual_minutes": self.manual_minutes},
        }


def makespan(durations: list[float], concurrency: int) -> float:
    """How long NEs of these durations take when `concurrency` run at once, started in order."""
    if not durations:
        return 0.0
    lanes = [0.0] * max(1, min(concurrency, len(durations)))
    for duration in durations:
        lanes[lanes.index(min(lanes))] += duration
    return max(lanes)


def plan_campaign(model: Model, hosts: list[Host], params: dict[str, Any] | None = None, *,
                  on_anomaly: str | None = None) -> CampaignPlan:
    """Eligibility, per-NE plans, waves and time budgets for `hosts` (raises InputError for
    parameter or template problems, all NEs' at once; ineligible NEs are data, not errors)."""
    _check_on_anomaly(on_anomaly)
    values = resolve_params(model, params)
    ineligible: list[Ineligible] = []
    eligible: list[Host] = []
    for host in sorted(hosts, key=lambda h: h.name):
        reason = eligibility(model, host)
        if reason:
            ineligible.append(Ineligible(host.name, reason))
        else:
            eligible.append(host)
    plans: dict[str, NEPlan] = {}
    problems: list[Problem] = []
    for host in eligible:
        try:
            plans[host.name] = compile_for_host(model, host, values, on_anomaly=on_anomaly)
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        raise InputError(problems)
    concurrency = model.campaign.concurrency
    waves = []
    for wave in plan_waves(model, eligible):
        durations = [plans[n].total_estimate_s for n in wave.names]
        worst = [plans[n].total_estimate_s + plans[n].rollback_estimate_s for n in wave.names]
        waves.append(WavePlan(wave.name, wave.names, makespan(durations, concurrency), makespan(worst, concurrency)))
    return CampaignPlan(
        model_name=model.name, model_version=model.version, kind=model.kind, target=model.describe_target(),
        params=values, policy=dataclasses.replace(model.campaign, on_anomaly=on_anomaly or model.campaign.on_anomaly),
        waves=tuple(waves),
        plans={name: plans[name] for wave in waves for name in wave.nes}, ineligible=tuple(ineligible),
        total_budget_s=sum(w.budget_s for w in waves), total_worst_case_s=sum(w.worst_case_s for w in waves),
    )


def format_duration(seconds: float) -> str:
    seconds = int(math.ceil(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
