"""NE types as data: one YAML profile per type in `profiles/`, validated on load.

A profile says what an NE of that type is (domain, software versions, initial
configuration, KPIs, alarms, dial tests, disk, CDRs) and how long its operations take in
realistic seconds; the simulator scales those delays by its speed factor.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from changeline.errors import InputError, Problem

from .located_yaml import Located, Section, load_located

PROFILE_DIR = Path(__file__).with_name("profiles")
DOMAINS = ("5gc", "ims")
SEVERITIES = ("critical", "major", "minor", "warning")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# The configuration containers an NE may have under <ne>, mirroring yang/changeline-ne.yang:
# container -> (list element name, leaves) or (None, leaves) for a plain container.
# Rendering follows this order so every NE's tree has the YANG order.
CONFIG_SCHEMA: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "timers": ("timer", ("name", "value")),
    "interfaces": ("interface", ("name", "address")),
    "plmns": ("plmn", ("name", "mcc", "mnc")),
    "dnns": ("dnn", ("name", "ip-pool")),
    "peers": ("peer", ("name", "address")),
    "capacity": (None, ("max-sessions",)),
}
# The KPIs every type reports, so checks can be written once for all types.
REQUIRED_KPIS = ("sessions", "cpu")


@dataclass(frozen=True)
class Kpi:
    """A KPI is `idle + (nominal - idle) * load`: load 1.0 is this NE's fair share of
    its pool's traffic, so rates (idle == nominal) stay flat while sessions and cpu
    follow the traffic the NE carries."""

    name: str
    unit: str
    nominal: float
    idle: float
    decimals: int


@dataclass(frozen=True)
class AlarmSpec:
    id: str
    severity: str
    text: str


@dataclass(frozen=True)
class CdrSpec:
    """What one charged test session looks like in a CDR."""

    duration_s: int
    volume_uplink: int
    volume_downlink: int
    rating_group: int


@dataclass(frozen=True)
class DialScenario:
    name: str
    kpi: str  # the success-rate KPI the test's attempts succeed with
    attempts: int
    latency_ms: int
    cdr: CdrSpec | None


@dataclass(frozen=True)
class Delays:
    """Realistic durations in seconds (rate in MB/s), before the speed factor."""

    install: float
    restart: float
    dial_test: float
    transfer_mb_per_s: float
    cdr_write: float


@dataclass(frozen=True)
class Profile:
    ne_type: str
    domain: str
    description: str
    versions: tuple[str, ...]
    default_version: str
    writes_cdrs: bool
    disk_total_mb: int
    disk_system_mb: int
    delays: Delays
    config: dict[str, Any]
    kpis: tuple[Kpi, ...]
    alarms: tuple[AlarmSpec, ...]
    dial_tests: dict[str, DialScenario]
    source: str

    def kpi(self, name: str) -> Kpi | None:
        return next((k for k in self.kpis if k.name == name), None)

    def alarm(self, alarm_id: str) -> AlarmSpec | None:
        return next((a for a in self.alarms if a.id == alarm_id), None)


_TOP_FIELDS = ("type", "domain", "description", "versions", "default_version", "writes_cdrs",
               "disk", "delays", "config", "kpis", "alarms", "dial_tests")


def load_profile(path: Path | str) -> Profile:
    """Read and validate one profile; every problem found is raised at once as InputError."""
    doc = load_located(path)
    profile = _read_profile(doc)
    doc.raise_problems()
    assert profile is not None  # no problems means every field was read
    return profile


def _read_profile(doc: Located) -> Profile | None:
    top = Section.of(doc, (), doc.data, _TOP_FIELDS)
    if top is None:
        return None
    ne_type = top.get("type", str, required=True, default="")
    if ne_type and not NAME_RE.match(ne_type):
        top.problem("type", f"{ne_type!r} is not a valid type name")
    domain = top.get("domain", str, required=True, default="")
    if domain and domain not in DOMAINS:
        top.problem("domain", f"must be one of {', '.join(DOMAINS)}, got {domain!r}")
    versions = _read_versions(top)
    default_version = top.get("default_version", str, required=True, default="")
    if default_version and versions and default_version not in versions:
        top.problem("default_version", f"{default_version!r} is not in versions")
    writes_cdrs = top.get("writes_cdrs", bool, required=True, default=False)
    disk_total, disk_system = _read_disk(doc, top)
    delays = _read_delays(doc, top)
    kpis = _read_kpis(doc, top)
    dial_tests = _read_dial_tests(doc, top, kpis, writes_cdrs)
    profile = Profile(
        ne_type=ne_type,
        domain=domain,
        description=top.get("description", str, default=""),
        versions=versions,
        default_version=default_version,
        writes_cdrs=writes_cdrs,
        disk_total_mb=disk_total,
        disk_system_mb=disk_system,
        delays=delays,
        config=_read_config(doc, top),
        kpis=kpis,
        alarms=_read_alarms(doc, top),
        dial_tests=dial_tests,
        source=doc.file,
    )
    return None if doc.problems else profile


def _read_versions(top: Section) -> tuple[str, ...]:
    raw = top.get("versions", list, required=True, default=[])
    versions: list[str] = []
    for i, version in enumerate(raw):
        if not isinstance(version, str) or not VERSION_RE.match(version):
            top.doc.problem(("versions", i), f"must be a version like 1.2.0, got {version!r}")
        elif version in versions:
            top.doc.problem(("versions", i), f"duplicate version {version}")
        else:
            versions.append(version)
    if not raw and "versions" in top.data:
        top.problem("versions", "must list at least one version")
    return tuple(versions)


def _read_disk(doc: Located, top: Section) -> tuple[int, int]:
    disk = Section.of(doc, ("disk",), top.data.get("disk"), ("total_mb", "system_mb"))
    if disk is None:
        return 0, 0
    total = disk.get("total_mb", int, required=True, default=0)
    system = disk.get("system_mb", int, required=True, default=0)
    if total <= 0 and "total_mb" in disk.data:
        disk.problem("total_mb", "must be positive")
    if total and not 0 <= system < total:
        disk.problem("system_mb", "must be at least 0 and below total_mb")
    return total, system


def _read_delays(doc: Located, top: Section) -> Delays:
    names = ("install", "restart", "dial_test", "transfer_mb_per_s", "cdr_write")
    section = Section.of(doc, ("delays",), top.data.get("delays"), names)
    values = {name: 1.0 for name in names}
    for name in names if section else ():
        values[name] = section.get(name, float, required=True, default=1.0)
        if values[name] <= 0:
            section.problem(name, "must be positive")
    return Delays(**values)


def _read_config(doc: Located, top: Section) -> dict[str, Any]:
    config = Section.of(doc, ("config",), top.data.get("config"), tuple(CONFIG_SCHEMA))
    if config is None:
        return {}
    for container, value in config.data.items():
        if container not in CONFIG_SCHEMA:
            continue
        list_name, leaves = CONFIG_SCHEMA[container]
        path = ("config", container)
        if list_name is None:
            section = Section.of(doc, path, value, leaves)
            for leaf in leaves if section else ():
                section.get(leaf, int, required=True)
            continue
        section = Section.of(doc, path, value, (list_name,))
        if section is None:
            continue
        entries = section.get(list_name, list, required=True, default=[])
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            item = Section.of(doc, (*path, list_name, i), entry, leaves)
            if item is None:
                continue
            for leaf in leaves:
                item.get(leaf, int if leaf == "value" else str, required=True)
            if item.data.get("name") in seen:
                item.problem("name", f"duplicate {list_name} {item.data['name']!r}")
            seen.add(item.data.get("name"))
    return config.data


def _read_kpis(doc: Located, top: Section) -> tuple[Kpi, ...]:
    kpis: list[Kpi] = []
    for i, raw in enumerate(top.get("kpis", list, required=True, default=[])):
        item = Section.of(doc, ("kpis", i), raw, ("name", "unit", "nominal", "idle", "decimals"))
        if item is None:
            continue
        name = item.get("name", str, required=True, default="")
        nominal = item.get("nominal", float, required=True, default=0.0)
        kpi = Kpi(
            name=name,
            unit=item.get("unit", str, required=True, default=""),
            nominal=nominal,
            idle=item.get("idle", float, default=nominal),
            decimals=item.get("decimals", int, default=2),
        )
        if any(k.name == name for k in kpis):
            item.problem("name", f"duplicate KPI {name!r}")
        kpis.append(kpi)
    names = {k.name for k in kpis}
    for required in REQUIRED_KPIS:
        if "kpis" in top.data and required not in names:
            top.problem("kpis", f"must include a KPI named {required!r}")
    if "kpis" in top.data and not any(k.unit == "%" and k.name.endswith("success-rate") for k in kpis):
        top.problem("kpis", "must include a '...success-rate' KPI in %")
    return tuple(kpis)


def _read_alarms(doc: Located, top: Section) -> tuple[AlarmSpec, ...]:
    alarms: list[AlarmSpec] = []
    for i, raw in enumerate(top.get("alarms", list, default=[])):
        item = Section.of(doc, ("alarms", i), raw, ("id", "severity", "text"))
        if item is None:
            continue
        alarm = AlarmSpec(item.get("id", str, required=True, default=""),
                          item.get("severity", str, required=True, default="major"),
                          item.get("text", str, required=True, default=""))
        if alarm.severity not in SEVERITIES:
            item.problem("severity", f"must be one of {', '.join(SEVERITIES)}")
        if any(a.id == alarm.id for a in alarms):
            item.problem("id", f"duplicate alarm id {alarm.id!r}")
        alarms.append(alarm)
    return tuple(alarms)


def _read_dial_tests(doc: Located, top: Section, kpis: tuple[Kpi, ...],
                     writes_cdrs: bool) -> dict[str, DialScenario]:
    scenarios: dict[str, DialScenario] = {}
    for i, raw in enumerate(top.get("dial_tests", list, required=True, default=[])):
        path = ("dial_tests", i)
        item = Section.of(doc, path, raw, ("name", "kpi", "attempts", "latency_ms", "cdr"))
        if item is None:
            continue
        name = item.get("name", str, required=True, default="")
        kpi = item.get("kpi", str, required=True, default="")
        if kpi and not any(k.name == kpi and k.unit == "%" for k in kpis):
            item.problem("kpi", f"{kpi!r} is not a KPI in % of this profile")
        attempts = item.get("attempts", int, required=True, default=1)
        if attempts < 1:
            item.problem("attempts", "must be at least 1")
        cdr = _read_cdr_spec(doc, (*path, "cdr"), item.data.get("cdr")) if "cdr" in item.data else None
        if writes_cdrs and cdr is None:
            item.problem("cdr", "is required: this type writes CDRs")
        if not writes_cdrs and "cdr" in item.data:
            item.problem("cdr", "is not allowed: this type does not write CDRs")
        if name in scenarios:
            item.problem("name", f"duplicate scenario {name!r}")
        scenarios[name] = DialScenario(name, kpi, attempts,
                                       item.get("latency_ms", int, required=True, default=0), cdr)
    return scenarios


def _read_cdr_spec(doc: Located, path: tuple, raw: Any) -> CdrSpec | None:
    fields = ("duration_s", "volume_uplink", "volume_downlink", "rating_group")
    item = Section.of(doc, path, raw, fields)
    if item is None:
        return None
    values = {f: item.get(f, int, required=True, default=0) for f in fields}
    for f, value in values.items():
        if value < 0:
            item.problem(f, "must not be negative")
    return CdrSpec(**values)


@functools.cache
def builtin_profiles() -> dict[str, Profile]:
    """The packaged profiles keyed by type name (AMF, SMF, ...)."""
    return load_profiles(PROFILE_DIR)


def load_profiles(directory: Path) -> dict[str, Profile]:
    problems: list[Problem] = []
    profiles: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            profile = load_profile(path)
        except InputError as err:
            problems.extend(err.problems)
            continue
        if profile.ne_type in profiles:
            problems.append(Problem(str(path), 1, 1, "type", f"type {profile.ne_type} is defined twice"))
        profiles[profile.ne_type] = profile
    if problems:
        raise InputError(problems)
    return profiles


def find_type(profiles: dict[str, Profile], name: str) -> Profile | None:
    """Type names are matched case-insensitively: `amf` and `p-cscf` are fine on a command line."""
    return next((p for t, p in profiles.items() if t.lower() == name.lower()), None)
