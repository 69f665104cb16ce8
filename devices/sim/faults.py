"""The fault catalogue: ways a simulated NE misbehaves, set from the topology file or at
run time through the control interface.

A fault is data (`Fault`); validating one and deciding what it does to an operation are
pure functions here, and the NE only asks (`transfer_action`, `rpc_drop`, ...).
One-shot kinds take an optional `count` and disappear after firing that many times.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from changeline.errors import shown

SEVERITIES = ("critical", "major", "minor", "warning")


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    required: bool = False
    minimum: float | None = None


@dataclass(frozen=True)
class FaultKind:
    description: str
    params: tuple[Param, ...] = ()
    counted: bool = False  # fires per operation and accepts `count`
    default_count: int | None = None  # None: until cleared
    key: tuple[str, ...] = ()  # faults of one kind that differ in these params coexist


FAULT_KINDS: dict[str, FaultKind] = {
    "transfer-fail": FaultKind("SFTP uploads to /images/ break off part-way", counted=True),
    "transfer-corrupt": FaultKind("SFTP uploads complete but the stored file is corrupted", counted=True),
    "disk-full": FaultKind("no free disk: uploads fail, install-software fails with disk-full"),
    "install-fail": FaultKind("install-software fails with install-failed", counted=True),
    "activate-hang": FaultKind("activate-software and rollback-software never reply", counted=True),
    "activate-old-version": FaultKind("the NE restarts but comes back on the version it ran", counted=True),
    "dial-test-fail-after-upgrade": FaultKind(
        "dial tests fail once the NE runs another version than when the fault was set"),
    "cdr-missing": FaultKind("dial tests pass but write no CDR records"),
    "kpi-degrade": FaultKind("multiply a KPI by factor",
                             (Param("kpi", str, required=True), Param("factor", float, True, minimum=0)),
                             key=("kpi",)),
    "alarm": FaultKind("raise an alarm: a catalogue `id`, or `severity` and `text`",
                       (Param("id", str), Param("severity", str), Param("text", str)), key=("id", "text")),
    "slow-replies": FaultKind("delay every NETCONF reply by delay_s real seconds (not scaled by speed: "
                              "it exercises the client's real-time timeouts)",
                              (Param("delay_s", float, required=True, minimum=0),)),
    "drop-mid-rpc": FaultKind("drop the connection instead of answering the next `count` `rpc`s, "
                              "after applying them when `after` is true",
                              (Param("rpc", str, required=True), Param("after", bool)),
                              counted=True, default_count=1, key=("rpc",)),
}


@dataclass
class Fault:
    kind: str
    params: dict[str, Any]
    remaining: int | None = None
    # The version the NE ran when the fault was set (dial-test-fail-after-upgrade).
    baseline_version: str | None = None

    def key(self) -> tuple[Any, ...]:
        return self.kind, *(self.params.get(name) for name in FAULT_KINDS[self.kind].key)

    def to_json(self) -> dict[str, Any]:
        out = {"kind": self.kind, **self.params}
        if self.remaining is not None:
            out["count"] = self.remaining
        return out


def validate_fault(raw: Any, *, kpis: Collection[str], alarm_ids: Collection[str],
                   rpcs: Collection[str]) -> tuple[Fault | None, list[tuple[str, str]]]:
    """Check one fault spec (`{"kind": ..., **params}`) against the catalogue and the NE's
    type; returns the fault or (field, message) problems for the caller to locate."""
    if not isinstance(raw, Mapping):
        return None, [("", "a fault must be a mapping with a `kind`")]
    kind_name = raw.get("kind")
    kind = FAULT_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        return None, [("kind", f"unknown fault kind {kind_name!r} (known: {', '.join(FAULT_KINDS)})")]
    problems: list[tuple[str, str]] = []
    allowed = {p.name: p for p in kind.params}
    params: dict[str, Any] = {}
    count = kind.default_count
    for name, value in raw.items():
        if name == "kind":
            continue
        if name == "count" and kind.counted:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(("count", "must be a positive integer"))
            else:
                count = value
            continue
        param = allowed.get(name)
        if param is None:
            extra = ["count"] if kind.counted else []
            known = ", ".join([*allowed, *extra]) or "none"
            problems.append((name, f"unknown parameter for {kind_name} (parameters: {known})"))
            continue
        problem = _check_param(param, value)
        if problem:
            problems.append((name, problem))
        else:
            params[name] = float(value) if param.kind is float else value
    for param in kind.params:
        if param.required and param.name not in raw:
            problems.append((param.name, f"is required for {kind_name}"))
    problems += _check_context(kind_name, params, kpis=kpis, alarm_ids=alarm_ids, rpcs=rpcs)
    if problems:
        return None, problems
    return Fault(kind_name, params, count), []


def _check_param(param: Param, value: Any) -> str | None:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if param.kind is float and not numeric:
        return f"must be a number, got {shown(value)}"
    if param.kind is not float and not isinstance(value, param.kind):
        return f"must be {'true or false' if param.kind is bool else 'a string'}, got {shown(value)}"
    if param.minimum is not None and value < param.minimum:
        return f"must be at least {param.minimum}"
    return None


def _check_context(kind: str, params: dict[str, Any], *, kpis: Collection[str],
                   alarm_ids: Collection[str], rpcs: Collection[str]) -> list[tuple[str, str]]:
    if kind == "kpi-degrade" and "kpi" in params and params["kpi"] not in kpis:
        return [("kpi", f"unknown KPI {params['kpi']!r} (this type has: {', '.join(kpis)})")]
    if kind == "drop-mid-rpc" and "rpc" in params and params["rpc"] not in rpcs:
        return [("rpc", f"unknown RPC {params['rpc']!r}")]
    if kind == "alarm":
        if "id" in params:
            if params["id"] not in alarm_ids:
                return [("id", f"not in this type's alarm catalogue ({', '.join(alarm_ids)})")]
        elif "severity" not in params or "text" not in params:
            return [("", "an alarm needs a catalogue `id`, or `severity` and `text`")]
        if params.get("severity", SEVERITIES[0]) not in SEVERITIES:
            return [("severity", f"must be one of {', '.join(SEVERITIES)}")]
    return []


@dataclass
class FaultSet:
    """The faults active on one NE."""

    faults: list[Fault] = field(default_factory=list)

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self.faults))

    def add(self, fault: Fault) -> None:
        """A fault with the same kind (and key parameter) replaces the older one."""
        self.faults = [f for f in self.faults if f.key() != fault.key()] + [fault]

    def clear(self, kind: str | None = None) -> list[Fault]:
        removed = [f for f in self.faults if kind is None or f.kind == kind]
        self.faults = [f for f in self.faults if f not in removed]
        return removed

    def active(self, kind: str) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind]

    def fire(self, kind: str, **match: Any) -> Fault | None:
        """Take one shot of the first matching fault, dropping it when its count runs out."""
        for fault in self.faults:
            if fault.kind == kind and all(fault.params.get(k) == v for k, v in match.items()):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault
        return None


def transfer_action(faults: FaultSet) -> str | None:
    """What happens to an upload opened now: `fail`, `corrupt` or nothing."""
    if faults.fire("transfer-fail"):
        return "fail"
    if faults.fire("transfer-corrupt"):
        return "corrupt"
    return None


def rpc_drop(faults: FaultSet, rpc: str) -> str | None:
    """The engine's `before_rpc` answer for this RPC: `drop-before`, `drop-after` or None."""
    fault = faults.fire("drop-mid-rpc", rpc=rpc)
    if fault is None:
        return None
    return "drop-after" if fault.params.get("after") else "drop-before"


def reply_delay(faults: FaultSet) -> float:
    return max((f.params["delay_s"] for f in faults.active("slow-replies")), default=0.0)


def kpi_factors(faults: FaultSet) -> dict[str, float]:
    factors: dict[str, float] = {}
    for fault in faults.active("kpi-degrade"):
        factors[fault.params["kpi"]] = factors.get(fault.params["kpi"], 1.0) * fault.params["factor"]
    return factors


def dial_failure(faults: FaultSet, running_version: str) -> str | None:
    """Why dial tests fail now, if a fault says so: the upgrade broke call handling."""
    for fault in faults.active("dial-test-fail-after-upgrade"):
        if fault.baseline_version is not None and fault.baseline_version != running_version:
            return f"no answer from the service after the upgrade to {running_version}"
    return None
