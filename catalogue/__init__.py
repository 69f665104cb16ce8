"""The NE catalogue: what changeline knows about the network elements it changes, as data.

The product owns this contract; the simulator (devices/sim) reads it to simulate NEs of
these types, model lint and plans read it to check models, and nothing here reads the
simulator. Layout (all packaged data):

- `types/<type>.yaml`: one NE type - domain, configuration containers, KPIs with units,
  alarms, dial-test scenarios;
- `releases/<type>/<version>.yaml`: one file per software release of that type, so adding
  a release is one data file;
- `yang/`: the YANG modules of the NETCONF contract (changeline-ne and what it imports).

Every file is validated on load and every problem is raised at once as InputError,
located as FILE:LINE:COL.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from changeline.errors import InputError, Problem

from .located_yaml import Located, Section, load_located

CATALOGUE_DIR = Path(__file__).resolve().parent
YANG_DIR = CATALOGUE_DIR / "yang"
NE_NAMESPACE = "urn:changeline:params:xml:ns:yang:changeline-ne"
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
class KpiSpec:
    name: str
    unit: str


@dataclass(frozen=True)
class AlarmSpec:
    id: str
    severity: str
    text: str


@dataclass(frozen=True)
class Scenario:
    """A dial test an NE of this type runs: its attempts count in `kpi` (a % KPI)."""

    name: str
    kpi: str
    writes_cdr: bool


@dataclass(frozen=True)
class Release:
    ne_type: str
    version: str
    summary: str
    source: str


@dataclass(frozen=True)
class NeType:
    ne_type: str
    domain: str
    description: str
    writes_cdrs: bool
    containers: tuple[str, ...]
    kpis: tuple[KpiSpec, ...]
    alarms: tuple[AlarmSpec, ...]
    scenarios: dict[str, Scenario]
    releases: tuple[Release, ...]  # oldest first
    source: str

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(r.version for r in self.releases)

    def kpi(self, name: str) -> KpiSpec | None:
        return next((k for k in self.kpis if k.name == name), None)

    def alarm(self, alarm_id: str) -> AlarmSpec | None:
        return next((a for a in self.alarms if a.id == alarm_id), None)


_TYPE_FIELDS = ("type", "domain", "description", "writes_cdrs", "containers", "kpis", "alarms", "scenarios")
_RELEASE_FIELDS = ("type", "release", "summary")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@functools.cache
def builtin_catalogue() -> dict[str, NeType]:
    """The packaged catalogue keyed by type name (AMF, SMF, ...)."""
    return load_catalogue(CATALOGUE_DIR)


def load_catalogue(directory: Path) -> dict[str, NeType]:
    """Every `types/*.yaml` with its `releases/<stem>/*.yaml`; all problems raised at once."""
    problems: list[Problem] = []
    types: dict[str, NeType] = {}
    for path in sorted((directory / "types").glob("*.yaml")):
        try:
            ne_type = load_type(path, directory / "releases" / path.stem)
        except InputError as err:
            problems.extend(err.problems)
            continue
        if ne_type.ne_type in types:
            problems.append(Problem(str(path), 1, 1, "type", f"type {ne_type.ne_type} is defined twice"))
        types[ne_type.ne_type] = ne_type
    if not types and not problems:
        problems.append(Problem(str(directory / "types"), 0, 0, "", "no NE type files (*.yaml)"))
    if problems:
        raise InputError(problems)
    return types


def load_type(path: Path, release_dir: Path) -> NeType:
    doc = load_located(path)
    ne_type = _read_type(doc)
    problems = list(doc.problems)
    releases: list[Release] = []
    for release_path in sorted(release_dir.glob("*.yaml")):
        try:
            releases.append(load_release(release_path, ne_type.ne_type if ne_type else None))
        except InputError as err:
            problems.extend(err.problems)
    if not releases and not problems:
        problems.append(Problem(str(path), 1, 1, "type", f"no release files in {release_dir}"))
    if problems:
        raise InputError(problems)
    assert ne_type is not None  # no problems means every field was read
    releases.sort(key=lambda r: version_key(r.version))
    return NeType(**{**ne_type.__dict__, "releases": tuple(releases)})


def load_release(path: Path, ne_type: str | None) -> Release:
    doc = load_located(path)
    top = Section.of(doc, (), doc.data, _RELEASE_FIELDS)
    if top is None:
        doc.raise_problems()
    type_name = top.get("type", str, required=True, default="")
    if ne_type and type_name and type_name != ne_type:
        top.problem("type", f"this release file is in {ne_type}'s release directory, not {type_name!r}'s")
    version = top.get("release", str, required=True, default="")
    if version and not VERSION_RE.match(version):
        top.problem("release", f"must be a version like 1.2.0, got {version!r}")
    elif version and version != path.stem:
        top.problem("release", f"{version!r} must match the file name {path.name}")
    summary = top.get("summary", str, default="")
    doc.raise_problems()
    return Release(type_name, version, summary, str(path))


def _read_type(doc: Located) -> NeType | None:
    top = Section.of(doc, (), doc.data, _TYPE_FIELDS)
    if top is None:
        return None
    name = top.get("type", str, required=True, default="")
    if name and not NAME_RE.match(name):
        top.problem("type", f"{name!r} is not a valid type name")
    domain = top.get("domain", str, required=True, default="")
    if domain and domain not in DOMAINS:
        top.problem("domain", f"must be one of {', '.join(DOMAINS)}, got {domain!r}")
    writes_cdrs = top.get("writes_cdrs", bool, required=True, default=False)
    containers = _read_containers(top)
    kpis = _read_kpis(doc, top)
    scenarios = _read_scenarios(doc, top, kpis, writes_cdrs)
    return NeType(
        ne_type=name, domain=domain, description=top.get("description", str, default=""),
        writes_cdrs=writes_cdrs, containers=containers, kpis=kpis, alarms=_read_alarms(doc, top),
        scenarios=scenarios, releases=(), source=doc.file,
    )


def _read_containers(top: Section) -> tuple[str, ...]:
    raw = top.get("containers", list, required=True, default=[])
    out: list[str] = []
    for i, name in enumerate(raw):
        if name not in CONFIG_SCHEMA:
            top.doc.problem(("containers", i), f"{name!r} is not a container of changeline-ne.yang "
                            f"(known: {', '.join(CONFIG_SCHEMA)})")
        elif name in out:
            top.doc.problem(("containers", i), f"duplicate container {name}")
        else:
            out.append(name)
    return tuple(out)


def _read_kpis(doc: Located, top: Section) -> tuple[KpiSpec, ...]:
    kpis: list[KpiSpec] = []
    for i, raw in enumerate(top.get("kpis", list, required=True, default=[])):
        item = Section.of(doc, ("kpis", i), raw, ("name", "unit"))
        if item is None:
            continue
        kpi = KpiSpec(item.get("name", str, required=True, default=""), item.get("unit", str, required=True, default=""))
        if any(k.name == kpi.name for k in kpis):
            item.problem("name", f"duplicate KPI {kpi.name!r}")
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


def _read_scenarios(doc: Located, top: Section, kpis: tuple[KpiSpec, ...], writes_cdrs: bool) -> dict[str, Scenario]:
    scenarios: dict[str, Scenario] = {}
    for i, raw in enumerate(top.get("scenarios", list, required=True, default=[])):
        item = Section.of(doc, ("scenarios", i), raw, ("name", "kpi", "cdr"))
        if item is None:
            continue
        name = item.get("name", str, required=True, default="")
        kpi = item.get("kpi", str, required=True, default="")
        if kpi and not any(k.name == kpi and k.unit == "%" for k in kpis):
            item.problem("kpi", f"{kpi!r} is not a KPI in % of this type")
        cdr = item.get("cdr", bool, default=False)
        if cdr and not writes_cdrs:
            item.problem("cdr", "cannot be true: this type does not write CDRs")
        if writes_cdrs and not cdr:
            item.problem("cdr", "must be true: this type writes CDRs")
        if name in scenarios:
            item.problem("name", f"duplicate scenario {name!r}")
        scenarios[name] = Scenario(name, kpi, cdr)
    return scenarios


def find_type(types: dict[str, NeType], name: str) -> NeType | None:
    """Type names are matched case-insensitively: `amf` and `p-cscf` are fine on a command line."""
    return next((t for n, t in types.items() if n.lower() == name.lower()), None)
