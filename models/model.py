"""The in-memory form of a validated model (built only after schema and lint passed).

Field names are Python's (`ne_types`, `to_version`); the YAML's are Kubernetes-style
(`neTypes`, `toVersion`). Templates stay unrendered here: rendering needs a host and
parameters, which is `compile.py`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from changeline.errors import shown
from changeline.yamlsource import FieldPath, SourceMap

_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                  "false": False, "no": False, "off": False, "0": False}


@dataclass(frozen=True)
class Parameter:
    """A typed model parameter. `default=None` with `optional` makes it optional (null)."""

    name: str
    type: str
    description: str
    default: Any = None
    has_default: bool = False
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: str | None = None
    # A typical value for previews and tests of a parameter that must not have a default (a
    # capacity, an address): a run never uses it.
    example: Any = None

    @property
    def optional(self) -> bool:
        return self.has_default and self.default is None

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable for this parameter, or None."""
        if value is None:
            return None if self.optional else "must have a value"
        wrong = _type_problem(self.type, value)
        if wrong:
            return wrong
        if self.type == "list" and self.items:
            for i, item in enumerate(value):
                wrong = _type_problem(self.items, item)
                if wrong:
                    return f"item {i} {wrong}"
        if self.enum is not None and value not in self.enum:
            return f"must be one of: {', '.join(map(str, self.enum))}; got {shown(value)}"
        if self.type in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                return f"must be >= {self.minimum:g}, got {value!r}"
            if self.maximum is not None and value > self.maximum:
                return f"must be <= {self.maximum:g}, got {value!r}"
        return None

    def coerce(self, text: str) -> Any:
        """A command-line `--param name=text` as this parameter's type (ValueError if it is not)."""
        return _coerce(self.type, text, self.items)


def _type_problem(kind: str, value: Any) -> str | None:
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool)
                  and not (isinstance(value, float) and not math.isfinite(value)),
        "boolean": isinstance(value, bool),
        "list": isinstance(value, list),
    }.get(kind, False)
    article = "an" if kind == "integer" else "a"
    return None if ok else f"must be {article} {kind}, got {shown(value)}"


def _coerce(kind: str, text: str, items: str | None = None) -> Any:
    if kind == "string":
        return text
    if kind == "integer":
        try:
            return int(text.strip(), 10)
        except ValueError:
            raise ValueError(f"{shown(text)} is not an integer") from None
    if kind == "number":
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{shown(text)} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{shown(text)} is not a finite number")
        return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    if kind == "boolean":
        word = text.strip().lower()
        if word not in _BOOLEAN_WORDS:
            raise ValueError(f"{shown(text)} is not true or false")
        return _BOOLEAN_WORDS[word]
    if kind == "list":
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                value = yaml.safe_load(stripped)
            except yaml.YAMLError as err:
                raise ValueError(f"{shown(text)} is not a list: {err}") from None
            if not isinstance(value, list):
                raise ValueError(f"{shown(text)} is not a list")
            return [_coerce(items, str(v)) if items and isinstance(v, str) else v for v in value]
        parts = [p.strip() for p in stripped.split(",") if p.strip()]
        return [_coerce(items, p) if items else p for p in parts]
    raise ValueError(f"unknown parameter type {kind!r}")


@dataclass(frozen=True)
class StepSpec:
    """One step as written: `args` may hold templates; None means "use the default"."""

    name: str
    stage: str
    atom: str
    args: dict[str, Any]
    path: FieldPath
    when: str | None = None
    timeout_s: float | None = None
    retries: int | None = None
    on_failure: str | None = None
    estimate_s: float | None = None
    manual_minutes: float | None = None
    gate: bool = False
    description: str = ""


@dataclass(frozen=True)
class Stage:
    name: str
    steps: tuple[StepSpec, ...]
    description: str = ""


@dataclass(frozen=True)
class RollbackSpec:
    """`journal`: undo the journaled mutating steps newest first, then run the `rollback` atom
    to restore/verify against the backup. `backup`: run only the `rollback` atom."""

    strategy: str = "journal"
    verify_scenarios: list[str] | str | None = None  # None: every dial test of the NE's type
    restart_timeout_s: float | None = None
    estimate_s: float | None = None


@dataclass(frozen=True)
class WaveSpec:
    """`count` NEs, or `percent` of the eligible NEs (rounded up), or neither: every NE left."""

    name: str
    count: int | None = None
    percent: float | None = None

    @property
    def is_rest(self) -> bool:
        return self.count is None and self.percent is None


DEFAULT_WAVES = (WaveSpec("canary", count=1), WaveSpec("rest"))


@dataclass(frozen=True)
class CampaignPolicy:
    waves: tuple[WaveSpec, ...] = DEFAULT_WAVES
    concurrency: int = 1
    max_failures: int | None = None
    max_failure_percent: float | None = None
    on_anomaly: str = "rollback"
    on_failure: str = "rollback"

    def breached(self, failed: int, attempted: int) -> str | None:
        """Why the campaign must stop starting NEs, or None. A limit is how many failures are
        tolerated (one more stops); the percentage is of the NEs attempted so far. No limit
        given means no failure is tolerated."""
        limit = self.max_failures
        if limit is None and self.max_failure_percent is None:
            limit = 0
        if limit is not None and failed > limit:
            return f"{failed} NE(s) failed, more than maxFailures {limit}"
        pct = self.max_failure_percent
        if pct is not None and attempted and failed * 100 / attempted > pct:
            return (f"{failed} of {attempted} NE(s) failed ({failed * 100 / attempted:.1f}%), "
                    f"more than maxFailurePercent {pct:g}%")
        return None


@dataclass(frozen=True)
class Model:
    kind: str
    name: str
    version: str
    description: str
    owner: str
    ne_types: tuple[str, ...]
    from_versions: tuple[str, ...]
    to_version: str | None
    versions: tuple[str, ...]
    software_image: str | None
    parameters: dict[str, Parameter]
    stages: tuple[Stage, ...]
    rollback: RollbackSpec
    campaign: CampaignPolicy
    file: str
    sha256: str
    api_version: str = "changeline/v1"
    source: SourceMap = field(default_factory=lambda: SourceMap("<memory>"), compare=False, repr=False)

    @property
    def is_upgrade(self) -> bool:
        return self.kind == "UpgradeModel"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def steps(self) -> tuple[StepSpec, ...]:
        return tuple(step for stage in self.stages for step in stage.steps)

    def describe_target(self) -> str:
        types = ", ".join(self.ne_types)
        if self.is_upgrade:
            return f"{types} {', '.join(self.from_versions)} -> {self.to_version}"
        return f"{types} {', '.join(self.versions) if self.versions else 'any version'}"


def build_model(raw: dict[str, Any], source: SourceMap, sha256: str) -> Model:
    """Raw data that passed schema and lint, as a Model."""
    meta, spec = raw["metadata"], raw["spec"]
    target = spec["target"]
    parameters = {
        name: Parameter(name=name, type=p["type"], description=p["description"], default=p.get("default"),
                        has_default="default" in p, enum=tuple(p["enum"]) if "enum" in p else None,
                        minimum=p.get("minimum"), maximum=p.get("maximum"), items=p.get("items"),
                        example=p.get("example"))
        for name, p in (spec.get("parameters") or {}).items()
    }
    stages = []
    for i, stage in enumerate(spec["stages"]):
        steps = []
        for j, step in enumerate(stage["steps"]):
            steps.append(StepSpec(
                name=step["name"], stage=stage["name"], atom=step["atom"], args=dict(step.get("with") or {}),
                path=("spec", "stages", i, "steps", j), when=step.get("when"), timeout_s=step.get("timeout"),
                retries=step.get("retries"), on_failure=step.get("onFailure"), estimate_s=step.get("estimate"),
                manual_minutes=step.get("manualMinutes"), gate=bool(step.get("gate", False)),
                description=step.get("description", ""),
            ))
        stages.append(Stage(stage["name"], tuple(steps), stage.get("description", "")))
    rb = spec.get("rollback") or {}
    verify = rb.get("verify") or {}
    rollback = RollbackSpec(strategy=rb.get("strategy", "journal"), verify_scenarios=verify.get("scenarios"),
                            restart_timeout_s=verify.get("restartTimeout"), estimate_s=rb.get("estimate"))
    cp = spec.get("campaign") or {}
    waves = tuple(WaveSpec(w["name"], w.get("count"), w.get("percent")) for w in cp.get("waves", ())) or DEFAULT_WAVES
    campaign = CampaignPolicy(waves=waves, concurrency=cp.get("concurrency", 1), max_failures=cp.get("maxFailures"),
                              max_failure_percent=cp.get("maxFailurePercent"),
                              on_anomaly=cp.get("onAnomaly", "rollback"), on_failure=cp.get("onFailure", "rollback"))
    return Model(
        kind=raw["kind"], name=meta["name"], version=meta["version"], description=meta["description"],
        owner=meta["owner"], ne_types=tuple(target["neTypes"]), from_versions=tuple(target.get("fromVersions", ())),
        to_version=target.get("toVersion"), versions=tuple(target.get("versions", ())),
        software_image=(spec.get("software") or {}).get("image"), parameters=parameters, stages=tuple(stages),
        rollback=rollback, campaign=campaign, file=source.file, sha256=sha256, api_version=raw["apiVersion"],
        source=source,
    )
