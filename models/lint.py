"""Semantic lint: what JSON Schema cannot say about a model.

Runs on the raw YAML data after the schema check, defensively (a field of the wrong
shape was already reported by the schema and is skipped here), and reports every
problem it finds at the field it concerns:

- templates: syntax, unresolved `params.*` and other references; step arguments are
  rendered for every targeted NE type with parameter defaults and checked against the
  atom's argument schema (values that need an inventory fact wait for compile);
- steps: unique names, `gate` only on checks, `onFailure: continue` never on a change,
  a compensation for every mutating step, a backup before the first change;
- pairs: every drain_traffic has a later restore_traffic; confirm_commit names an earlier
  config_change with `confirm: later`, and every such change is confirmed in time;
- upgrades: both versions exist for every NE type, from differs from to, a dial-test gate
  and (for CDR-writing types) a billing gate after activation;
- catalogue: NE types, dial-test scenarios, KPI names and configuration containers come
  from the NE catalogue (changeline.catalogue);
- campaign: waves well formed;
- credentials: no secret-looking keys or values anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from jinja2 import TemplateError

from changeline.catalogue import NE_NAMESPACE
from changeline.errors import InputError, Problem
from changeline.errors import credential_kind as secret_value  # one detector for every input kind
from changeline.models import step_args, templates
from changeline.models.model import Parameter
from changeline.models.schema import KINDS, PARAMETER_TYPES
from changeline.yamlsource import FieldPath, SourceMap

NE_NS = NE_NAMESPACE
# Atoms whose effect the `rollback` atom reverses from the backup (software and configuration),
# so either rollback strategy covers them even without an undo of their own.
RESTORED_FROM_BACKUP = frozenset({"config_change", "confirm_commit", "install_software", "activate_software"})


@dataclass
class _Step:
    index: int                 # position in the whole model
    path: FieldPath
    raw: dict[str, Any]
    name: str | None
    atom: str | None
    module: ModuleType | None

    @property
    def args(self) -> dict[str, Any] | None:
        value = self.raw.get("with", {})
        return value if isinstance(value, dict) else None

    @property
    def gate(self) -> bool:
        return self.raw.get("gate") is True


def lint(raw: Any, source: SourceMap, *, registry: dict[str, ModuleType], catalogue: dict[str, Any]) -> list[Problem]:
    if not isinstance(raw, dict):
        return []
    return _Lint(raw, source, registry, catalogue).run()


class _Lint:
    def __init__(self, raw: dict, source: SourceMap, registry: dict[str, ModuleType], catalogue: dict[str, Any]) -> None:
        self.raw, self.source, self.registry, self.catalogue = raw, source, registry, catalogue
        self.found: dict[tuple[FieldPath, str], Problem] = {}
        self.meta = _dict(raw.get("metadata"))
        self.spec = _dict(raw.get("spec"))
        self.kind = raw.get("kind") if raw.get("kind") in KINDS else None
        self.upgrade = self.kind == "UpgradeModel"
        self.target = _dict(self.spec.get("target"))
        self.params = self._parameters()
        self.steps = list(self._steps())
        self.types = self._known_types()
        # rendered[step index][ne type]
        self.rendered: dict[int, dict[str, step_args.Prepared]] = {}

    def problem(self, path: FieldPath, message: str) -> None:
        self.found.setdefault((tuple(path), message), self.source.problem(tuple(path), message))

    def run(self) -> list[Problem]:
        self.check_target()
        self.check_parameters()
        self.check_templates()
        self.check_steps()
        self.render_and_check_args()
        self.check_compensation()
        self.check_pairs()
        if self.upgrade:
            self.check_upgrade_gates()
        self.check_rollback()
        self.check_campaign()
        self.check_credentials(self.raw, ())
        return list(self.found.values())

    # --- structure -------------------------------------------------------------------

    def _parameters(self) -> dict[str, Parameter]:
        out = {}
        for name, p in _dict(self.spec.get("parameters")).items():
            if isinstance(p, dict) and p.get("type") in PARAMETER_TYPES and isinstance(name, str):
                out[name] = Parameter(name=name, type=p["type"], description=str(p.get("description", "")),
                                      default=p.get("default"), has_default="default" in p,
                                      enum=tuple(p["enum"]) if isinstance(p.get("enum"), list) else None,
                                      minimum=_num(p.get("minimum")), maximum=_num(p.get("maximum")),
                                      items=p.get("items") if p.get("items") in PARAMETER_TYPES else None,
                                      example=p.get("example"))
        return out

    def _steps(self) -> Iterator[_Step]:
        index = 0
        for i, stage in enumerate(_list(self.spec.get("stages"))):
            for j, step in enumerate(_list(_dict(stage).get("steps"))):
                if not isinstance(step, dict):
                    continue
                name = step.get("name") if isinstance(step.get("name"), str) else None
                atom = step.get("atom") if isinstance(step.get("atom"), str) else None
                module = self.registry.get(atom) if atom else None
                yield _Step(index, ("spec", "stages", i, "steps", j), step, name, atom, module)
                index += 1

    def _known_types(self) -> list[str]:
        return [t for t in _list(self.target.get("neTypes")) if isinstance(t, str) and t in self.catalogue]

    def step_named(self, name: str) -> _Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def estimate(self, step: _Step) -> float:
        value = step.raw.get("estimate")
        if _num(value) is not None:
            return float(value)
        return float(step.module.SPEC.estimate_s) if step.module else 0.0

    # --- target and versions -----------------------------------------------------------

    def check_target(self) -> None:
        t = self.target
        for i, ne_type in enumerate(_list(t.get("neTypes"))):
            if not isinstance(ne_type, str) or ne_type in self.catalogue:
                continue
            spelled = next((k for k in self.catalogue if k.lower() == ne_type.lower()), None)
            if spelled:
                self.problem(("spec", "target", "neTypes", i), f"write the NE type as {spelled!r}")
            else:
                self.problem(("spec", "target", "neTypes", i),
                             f"unknown NE type {ne_type!r} (known: {', '.join(sorted(self.catalogue))})")
        if self.kind == "ChangeModel":
            for key in ("fromVersions", "toVersion"):
                if key in t:
                    self.problem(("spec", "target", key), f"only an UpgradeModel has {key}; "
                                 "a ChangeModel lists the versions it applies to in 'versions'")
            if "software" in self.spec:
                self.problem(("spec", "software"), "only an UpgradeModel installs software")
        if self.upgrade and "versions" in t:
            self.problem(("spec", "target", "versions"), "an UpgradeModel uses fromVersions and toVersion")
        to_version = t.get("toVersion") if isinstance(t.get("toVersion"), str) else None
        from_versions = [v for v in _list(t.get("fromVersions")) if isinstance(v, str)]
        if self.upgrade and to_version and to_version in from_versions:
            self.problem(("spec", "target", "toVersion"),
                         f"{to_version} is also in fromVersions: from-version and to-version must differ")
        for key in ("fromVersions", "versions"):
            for i, version in enumerate(_list(t.get(key))):
                if isinstance(version, str):
                    self._version_exists(("spec", "target", key, i), version)
        if to_version:
            self._version_exists(("spec", "target", "toVersion"), to_version)

    def _version_exists(self, path: FieldPath, version: str) -> None:
        for ne_type in self.types:
            available = self.catalogue[ne_type].versions
            if version not in available:
                self.problem(path, f"version {version} does not exist for {ne_type} "
                             f"(available: {', '.join(available)})")

    # --- parameters --------------------------------------------------------------------

    def check_parameters(self) -> None:
        for name, raw in _dict(self.spec.get("parameters")).items():
            if not isinstance(raw, dict) or raw.get("type") not in PARAMETER_TYPES:
                continue
            param = self.params.get(name)
            if param is None:
                continue
            where = ("spec", "parameters", name)
            if param.type not in ("integer", "number"):
                for key in ("minimum", "maximum"):
                    if key in raw:
                        self.problem(where + (key,), "applies only to integer and number parameters")
            if "items" in raw and param.type != "list":
                self.problem(where + ("items",), "applies only to list parameters")
            if param.enum is not None:
                for i, option in enumerate(param.enum):
                    wrong = Parameter(name, param.type, "", items=param.items).problem(option)
                    if wrong:
                        self.problem(where + ("enum", i), wrong)
            if param.has_default:
                wrong = param.problem(param.default)
                if wrong:
                    self.problem(where + ("default",), wrong)
            if param.example is not None:
                wrong = param.problem(param.example)
                if wrong:
                    self.problem(where + ("example",), wrong)

    # --- templates ---------------------------------------------------------------------

    def check_templates(self) -> None:
        names = set(self.params)
        for path, text in _strings(self.spec.get("software"), ("spec", "software")):
            if templates.is_template(text):
                if "software" in _roots(text):
                    self.problem(path, "spec.software.image cannot refer to software.*")
                    continue
                for message in templates.reference_problems(text, param_names=names, upgrade=self.upgrade):
                    self.problem(path, message)
        for step in self.steps:
            for path, text in _strings(step.args, step.path + ("with",)):
                if templates.is_template(text):
                    for message in templates.reference_problems(text, param_names=names, upgrade=self.upgrade):
                        self.problem(path, message)
            when = step.raw.get("when")
            if isinstance(when, str):
                if templates.is_template(when):
                    self.problem(step.path + ("when",), "write the condition as a bare expression, "
                                 "without {{ }} (like: host.data.pool)")
                else:
                    for message in templates.reference_problems(when, param_names=names, upgrade=self.upgrade,
                                                                expression=True):
                        self.problem(step.path + ("when",), message)
        verify = _dict(_dict(self.spec.get("rollback")).get("verify"))
        if isinstance(verify.get("scenarios"), str):
            for message in templates.reference_problems(verify["scenarios"], param_names=names, upgrade=self.upgrade):
                self.problem(("spec", "rollback", "verify", "scenarios"), message)

    # --- steps -------------------------------------------------------------------------

    def check_steps(self) -> None:
        seen: dict[str, _Step] = {}
        for step in self.steps:
            if step.name is not None:
                if step.name in seen:
                    line, _ = self.source.where(seen[step.name].path + ("name",))
                    self.problem(step.path + ("name",), f"duplicate step name {step.name!r} (first used on line {line})")
                else:
                    seen[step.name] = step
            if step.module is None:
                continue
            spec = step.module.SPEC
            if step.gate and spec.mutating:
                self.problem(step.path + ("gate",), f"gate is for checks; {step.atom} changes the NE")
            if step.raw.get("onFailure") == "continue" and spec.mutating:
                self.problem(step.path + ("onFailure",), f"{step.atom} changes the NE: continuing after it "
                             "failed would go on with the NE half changed (use rollback, pause or abort)")
            timeout = _num(step.raw.get("timeout"))
            if timeout is not None and timeout < self.estimate(step):
                self.problem(step.path + ("timeout",), f"timeout {timeout:g} s is shorter than the step's "
                             f"estimated {self.estimate(step):g} s: it would time out on a normal run")
        stage_names: dict[str, int] = {}
        for i, stage in enumerate(_list(self.spec.get("stages"))):
            name = _dict(stage).get("name")
            if isinstance(name, str):
                if name in stage_names:
                    line, _ = self.source.where(("spec", "stages", stage_names[name], "name"))
                    self.problem(("spec", "stages", i, "name"), f"duplicate stage name {name!r} (first used on line {line})")
                stage_names.setdefault(name, i)

    def render_and_check_args(self) -> None:
        """Each step's arguments prepared as compile will prepare them (changeline.models.step_args),
        for a stand-in NE of every targeted type; values that need an inventory fact wait for compile."""
        for step in self.steps:
            if step.module is None or step.args is None:
                continue
            per_type: dict[str, step_args.Prepared] = {}
            base = step.path + ("with",)
            for ne_type in self.types or [None]:
                prepared = step_args.prepare(step.module.SPEC.args_schema, step.args, self._context(ne_type),
                                             complete=False)
                for p in prepared.problems:
                    self.problem(base + p.path, f"{p.message} (rendered from {p.template!r})" if p.template
                                 else p.message)
                if ne_type is not None:
                    per_type[ne_type] = prepared
            self.rendered[step.index] = per_type
            for ne_type, prepared in per_type.items():
                self._check_catalogue(step, ne_type, prepared)

    def _context(self, ne_type: str | None) -> dict[str, Any]:
        profile = self.catalogue.get(ne_type) if ne_type else None
        from_versions = [v for v in _list(self.target.get("fromVersions")) if isinstance(v, str)]
        versions = [v for v in _list(self.target.get("versions")) if isinstance(v, str)]
        current = (from_versions or versions or [profile.versions[0] if profile else "1.0.0"])[0]
        target: dict[str, Any] = {"ne_types": list(self.types), "versions": versions}
        if ne_type:
            target.update(ne_type=ne_type, from_version=current)
        if profile:
            target["scenarios"] = list(profile.scenarios)
            target["cdr_scenarios"] = [n for n, s in profile.scenarios.items() if s.writes_cdr]
        if self.upgrade:
            target["from_versions"] = from_versions
            if isinstance(self.target.get("toVersion"), str):
                target["to_version"] = self.target["toVersion"]
        params = {n: p.default for n, p in self.params.items() if p.has_default and p.problem(p.default) is None}
        context = {
            "params": params,
            "host": {"name": "lint-ne-1", "hostname": "192.0.2.1", "data": {}, "ne_type": ne_type or "",
                     "software_version": current},
            "model": {k: self.meta.get(k) for k in ("name", "version", "description", "owner")} | {"kind": self.kind},
            "target": target,
        }
        image = _dict(self.spec.get("software")).get("image")
        if self.upgrade and isinstance(image, str):
            rendered, found = step_args.render(image, context, complete=False)
            for p in found:
                self.problem(("spec", "software", "image"), p.message)
            if isinstance(rendered, str):
                context["software"] = {"image": rendered, "file": rendered.rsplit("/", 1)[-1]}
        return context

    # --- the NE catalogue (changeline.catalogue) ---------------------------------------------

    def _check_catalogue(self, step: _Step, ne_type: str, r: step_args.Prepared) -> None:
        profile = self.catalogue[ne_type]
        base = step.path + ("with",)
        scenarios = list(profile.scenarios)

        def scenario_exists(path: FieldPath, name: Any) -> bool:
            if not isinstance(name, str):
                return False
            if name not in profile.scenarios:
                self.problem(base + r.written_path(path), f"{ne_type} has no dial-test scenario {name!r} "
                             f"(its scenarios: {', '.join(scenarios)})")
                return False
            return True

        if step.atom in ("dial_test", "rollback"):
            key = "scenarios" if step.atom == "dial_test" else "verify_scenarios"
            for i in range(len(_list(r.known(key)))):
                scenario_exists((key, i), r.known(key, i))
        elif step.atom == "billing_check":
            name = r.known("scenario")
            if not profile.writes_cdrs:
                self.problem(step.path + ("atom",), f"{ne_type} writes no CDRs: a billing check cannot pass")
            elif scenario_exists(("scenario",), name) and not profile.scenarios[name].writes_cdr:
                self.problem(base + ("scenario",), f"scenario {name!r} of {ne_type} writes no CDRs")
        elif step.atom in ("precheck", "kpi_check"):
            kpis = [k.name for k in profile.kpis]
            for key in ("kpi_minimums", "max_drop_pct", "minimums"):
                for kpi in _dict(r.known(key)):
                    if kpi not in kpis:
                        self.problem(base + (key, kpi), f"{ne_type} has no KPI {kpi!r} (its KPIs: {', '.join(kpis)})")
        elif step.atom == "activate_software" and self.upgrade:
            version, to_version = r.known("version"), self.target.get("toVersion")
            if isinstance(version, str) and isinstance(to_version, str) and version != to_version:
                self.problem(base + ("version",), f"activates {version}, but the model's toVersion is {to_version}")
        elif step.atom == "config_change":
            config = r.known("config")
            if isinstance(config, str) and config.strip():
                for message in config_problems(config, ne_type, profile):
                    self.problem(base + ("config",), message)

    # --- compensation ------------------------------------------------------------------

    def check_compensation(self) -> None:
        strategy = _dict(self.spec.get("rollback")).get("strategy", "journal")
        backups = [s.index for s in self.steps if s.atom == "backup"]
        # A step whose atom is unknown (reported by the schema) might have been the backup.
        order_known = all(s.module is not None for s in self.steps)
        for step in self.steps:
            if step.module is None or not step.module.SPEC.mutating:
                continue
            covered_by_backup = step.atom in RESTORED_FROM_BACKUP
            if not (getattr(step.module, "undo", None) or step.module.SPEC.undo_note or covered_by_backup):
                self.problem(step.path + ("atom",), f"{step.atom} changes the NE but has no undo, no undo_note "
                             f"saying why none is needed, and rollback strategy {strategy!r} does not restore it")
            if order_known and step.atom != "rollback" and not any(b < step.index for b in backups):
                self.problem(step.path + ("atom",), f"step {step.name!r} changes the NE before any backup step: "
                             "add a backup step before it (rollback restores from it)")
        if strategy == "backup" and not backups:
            self.problem(("spec", "rollback", "strategy"), "strategy backup restores this run's backup: "
                         "the model needs a backup step")

    # --- pairs -------------------------------------------------------------------------

    def check_pairs(self) -> None:
        for step in self.steps:
            if step.atom == "drain_traffic":
                restores = [s for s in self.steps if s.atom == "restore_traffic" and s.index > step.index]
                if not restores:
                    self.problem(step.path + ("atom",), "drain_traffic needs a later restore_traffic step "
                                 "(else the NE stays out of its pool)")
                elif not any(s.raw.get("when") in (None, step.raw.get("when")) for s in restores):
                    self.problem(restores[0].path + ("when",), f"restore_traffic must run whenever drain "
                                 f"step {step.name!r} did (same 'when', or none)")
            elif step.atom == "confirm_commit":
                self._check_confirm(step)
            elif step.atom == "config_change" and step.args is not None and step.args.get("confirm") == "later":
                confirms = [s for s in self.steps if s.atom == "confirm_commit" and s.index > step.index
                            and _dict(s.args).get("change_step") == step.name]
                if not confirms:
                    self.problem(step.path + ("with", "confirm"), f"confirm: later needs a later confirm_commit step "
                                 f"with change_step: {step.name} (else the NE reverts after confirm_timeout_s)")
                else:
                    self._check_confirm_time(step, confirms[0])

    def _check_confirm(self, step: _Step) -> None:
        args = step.args
        name = args.get("change_step") if args is not None else None
        if not isinstance(name, str) or templates.is_template(name):
            return
        where = step.path + ("with", "change_step")
        change = self.step_named(name)
        if change is None:
            self.problem(where, f"no step named {name!r} in this model")
        elif change.atom != "config_change":
            self.problem(where, f"step {name!r} is a {change.atom} step, not config_change")
        elif change.index > step.index:
            self.problem(where, f"step {name!r} comes after this confirm_commit")
        elif _dict(change.args).get("confirm") != "later":
            self.problem(where, f"step {name!r} commits with confirm: now; set confirm: later on it "
                         "to confirm it here")

    def _check_confirm_time(self, change: _Step, confirm: _Step) -> None:
        between = sum(self.estimate(s) for s in self.steps if change.index < s.index < confirm.index)
        for rendered in self.rendered.get(change.index, {}).values():
            timeout = rendered.known("confirm_timeout_s")  # the atom's default when not given
            if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= between:
                self.problem(change.path + ("with", "confirm_timeout_s") if "confirm_timeout_s" in change.args
                             else change.path + ("with",),
                             f"confirm_timeout_s {timeout:g} s is not longer than the {between:g} s estimated for "
                             f"the steps before {confirm.name!r}: the NE would revert before it is confirmed")
                return

    # --- upgrades ----------------------------------------------------------------------

    def check_upgrade_gates(self) -> None:
        activations = [s for s in self.steps if s.atom == "activate_software"]
        if not activations:
            if self.steps:
                self.problem(("spec", "stages"), "an upgrade model needs an activate_software step")
            return
        last = activations[-1]
        after = [s for s in self.steps if s.index > last.index and s.gate]
        dial = [s for s in after if s.atom == "dial_test" and _dict(s.args).get("record_baseline") is not True]
        if not dial:
            self.problem(last.path + ("atom",), f"upgrade models must gate on a dial test after activation: "
                         f"add a dial_test step with gate: true after {last.name!r}")
        cdr_types = [t for t in self.types if self.catalogue[t].writes_cdrs]
        if cdr_types and not any(s.atom == "billing_check" for s in after):
            writes = "writes" if len(cdr_types) == 1 else "write"
            self.problem(last.path + ("atom",), f"{', '.join(cdr_types)} {writes} CDRs: upgrade models must gate on "
                         f"a billing_check (gate: true) after {last.name!r}")

    # --- rollback and campaign ---------------------------------------------------------

    def check_rollback(self) -> None:
        verify = _dict(_dict(self.spec.get("rollback")).get("verify"))
        for i, name in enumerate(_list(verify.get("scenarios"))):
            for ne_type in self.types:
                scenarios = self.catalogue[ne_type].scenarios
                if isinstance(name, str) and name not in scenarios:
                    self.problem(("spec", "rollback", "verify", "scenarios", i),
                                 f"{ne_type} has no dial-test scenario {name!r} (its scenarios: {', '.join(scenarios)})")

    def check_campaign(self) -> None:
        campaign = _dict(self.spec.get("campaign"))
        waves = _list(campaign.get("waves"))
        seen: set[str] = set()
        total_percent = 0.0
        for i, wave in enumerate(waves):
            if not isinstance(wave, dict):
                continue
            where = ("spec", "campaign", "waves", i)
            name = wave.get("name")
            if isinstance(name, str):
                if name in seen:
                    self.problem(where + ("name",), f"duplicate wave name {name!r}")
                seen.add(name)
            if "count" in wave and "percent" in wave:
                self.problem(where, "give count or percent, not both")
            if "count" not in wave and "percent" not in wave and i != len(waves) - 1:
                self.problem(where, "a wave without count or percent takes every NE left: it must be the last wave")
            if _num(wave.get("percent")) is not None:
                total_percent += float(wave["percent"])
        if total_percent > 100:
            self.problem(("spec", "campaign", "waves"), f"the percent waves add up to {total_percent:g}% (over 100%)")

    # --- credentials -------------------------------------------------------------------

    def check_credentials(self, value: Any, path: FieldPath) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and secret_key(key):
                    self.problem(path + (key,), f"{key!r} looks like a credential: models are shared and committed; "
                                 "credentials come from the inventory (password_env, password_secret) at run time")
                self.check_credentials(item, path + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.check_credentials(item, path + (i,))
        elif isinstance(value, str):
            what = secret_value(value)
            if what:
                self.problem(path, f"value looks like a secret ({what}): never write credentials into a model")


# --- pure helpers (also used by tests) ------------------------------------------------

_SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "tokens",
                 "credential", "credentials", "apikey", "privatekey"}
_SECRET_PAIRS = {("private", "key"), ("api", "key"), ("access", "key"), ("secret", "key")}


def secret_key(key: str) -> bool:
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", key)]
    return bool(_SECRET_WORDS & set(words)) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def config_problems(config: str, ne_type: str, profile: Any) -> list[str]:
    """Why a config_change `config` cannot apply to an NE of this type (XML, namespace, containers)."""
    from lxml import etree

    from changeline.atoms.config_change import parse_change

    try:
        root = parse_change(config)
    except InputError as err:
        return [err.problems[0].message if err.problems else str(err)]
    problems = []
    containers = set(profile.containers) if profile is not None else set()
    for top in root:
        if not isinstance(top.tag, str):
            continue
        if top.tag != f"{{{NE_NS}}}ne":
            problems.append(f"configuration must be the NE tree <ne xmlns=\"{NE_NS}\">, "
                            f"not <{etree.QName(top).localname}> (see docs/platforms.md)")
            continue
        for child in top:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child).localname
            if name in ("name", "type"):
                problems.append(f"<{name}> identifies the NE and cannot be changed")
            elif containers and name not in containers:
                problems.append(f"{ne_type} has no <{name}> configuration (its containers: {', '.join(sorted(containers))})")
    return problems


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _strings(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, path + (i,))


def _roots(text: str) -> set[str]:
    try:
        names, _ = templates.references(text)
    except TemplateError:  # reported by reference_problems
        return set()
    return names
