"""Simulation profiles: how the simulator plays each NE type of the catalogue.

The catalogue (changeline.catalogue) owns the contract - domain, releases, KPIs and their
units, alarms, dial-test scenarios, configuration containers. A profile in `profiles/`
adds only the simulation's numbers for one catalogue type: its initial configuration and
release, disk, KPI levels, dial-test attempts and latencies, CDR shapes, and how long its
operations take in realistic seconds (scaled by the simulator's speed factor). A profile
that names a KPI, scenario or container the catalogue does not give its type is refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from changeline.catalogue import CONFIG_SCHEMA, AlarmSpec, NeType, builtin_catalogue
from changeline.catalogue.located_yaml import Located, Section, load_located
from changeline.errors import InputError, Problem

PROFILE_DIR = Path(__file__).with_name("profiles")


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


_TOP_FIELDS = ("type", "default_version", "disk", "delays", "config", "kpis", "dial_tests")


def load_profile(path: Path | str, catalogue: dict[str, NeType] | None = None) -> Profile:
    """Read one profile and check it against its catalogue type; every problem found is
    raised at once as InputError."""
    doc = load_located(path)
    profile = _read_profile(doc, builtin_catalogue() if catalogue is None else catalogue)
    doc.raise_problems()
    assert profile is not None  # no problems means every field was read
    return profile


def _read_profile(doc: Located, catalogue: dict[str, NeType]) -> Profile | None:
    top = Section.of(doc, (), doc.data, _TOP_FIELDS)
    if top is None:
        return None
    name = top.get("type", str, required=True, default="")
    ne_type = catalogue.get(name)
    if name and ne_type is None:
        top.problem("type", f"{name!r} is not an NE type of the catalogue (known: {', '.join(sorted(catalogue))})")
        return None
    if ne_type is None:
        return None
    default_version = top.get("default_version", str, required=True, default="")
    if default_version and default_version not in ne_type.versions:
        top.problem("default_version", f"{default_version!r} is not a release of {name} in the catalogue "
                    f"(releases: {', '.join(ne_type.versions)})")
    disk_total, disk_system = _read_disk(doc, top)
    delays = _read_delays(doc, top)
    kpis = _read_kpis(doc, top, ne_type)
    dial_tests = _read_dial_tests(doc, top, ne_type)
    profile = Profile(
        ne_type=name,
        domain=ne_type.domain,
        description=ne_type.description,
        versions=ne_type.versions,
        default_version=default_version,
        writes_cdrs=ne_type.writes_cdrs,
        disk_total_mb=disk_total,
        disk_system_mb=disk_system,
        delays=delays,
        config=_read_config(doc, top, ne_type),
        kpis=kpis,
        alarms=ne_type.alarms,
        dial_tests=dial_tests,
        source=doc.file,
    )
    return None if doc.problems else profile


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


def _read_config(doc: Located, top: Section, ne_type: NeType) -> dict[str, Any]:
    config = Section.of(doc, ("config",), top.data.get("config"), ne_type.containers)
    if config is None:
        return {}
    for container, value in config.data.items():
        if container not in ne_type.containers:
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


def _read_kpis(doc: Located, top: Section, ne_type: NeType) -> tuple[Kpi, ...]:
    kpis: list[Kpi] = []
    for i, raw in enumerate(top.get("kpis", list, required=True, default=[])):
        item = Section.of(doc, ("kpis", i), raw, ("name", "nominal", "idle", "decimals"))
        if item is None:
            continue
        name = item.get("name", str, required=True, default="")
        spec = ne_type.kpi(name)
        if name and spec is None:
            item.problem("name", f"{ne_type.ne_type} has no KPI {name!r} in the catalogue")
            continue
        if any(k.name == name for k in kpis):
            item.problem("name", f"duplicate KPI {name!r}")
        nominal = item.get("nominal", float, required=True, default=0.0)
        kpis.append(Kpi(name=name, unit=spec.unit if spec else "", nominal=nominal,
                        idle=item.get("idle", float, default=nominal), decimals=item.get("decimals", int, default=2)))
    missing = [k.name for k in ne_type.kpis if not any(s.name == k.name for s in kpis)]
    if "kpis" in top.data and missing:
        top.problem("kpis", f"must simulate every catalogue KPI of {ne_type.ne_type}: missing {', '.join(missing)}")
    return tuple(kpis)


def _read_dial_tests(doc: Located, top: Section, ne_type: NeType) -> dict[str, DialScenario]:
    scenarios: dict[str, DialScenario] = {}
    for i, raw in enumerate(top.get("dial_tests", list, required=True, default=[])):
        path = ("dial_tests", i)
        item = Section.of(doc, path, raw, ("name", "attempts", "latency_ms", "cdr"))
        if item is None:
            continue
        name = item.get("name", str, required=True, default="")
        spec = ne_type.scenarios.get(name)
        if name and spec is None:
            item.problem("name", f"{ne_type.ne_type} has no scenario {name!r} in the catalogue "
                         f"(its scenarios: {', '.join(ne_type.scenarios)})")
            continue
        attempts = item.get("attempts", int, required=True, default=1)
        if attempts < 1:
            item.problem("attempts", "must be at least 1")
        cdr = _read_cdr_spec(doc, (*path, "cdr"), item.data.get("cdr")) if "cdr" in item.data else None
        if spec and spec.writes_cdr and cdr is None:
            item.problem("cdr", "is required: this scenario writes a CDR")
        if spec and not spec.writes_cdr and "cdr" in item.data:
            item.problem("cdr", "is not allowed: this scenario writes no CDR")
        if name in scenarios:
            item.problem("name", f"duplicate scenario {name!r}")
        scenarios[name] = DialScenario(name, spec.kpi if spec else "", attempts,
                                       item.get("latency_ms", int, required=True, default=0), cdr)
    missing = [n for n in ne_type.scenarios if n not in scenarios]
    if "dial_tests" in top.data and missing:
        top.problem("dial_tests", f"must simulate every catalogue scenario of {ne_type.ne_type}: missing {', '.join(missing)}")
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


def load_profiles(directory: Path, catalogue: dict[str, NeType] | None = None) -> dict[str, Profile]:
    problems: list[Problem] = []
    profiles: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            profile = load_profile(path, catalogue)
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
