"""Typed calls for the changeline NE contract (docs/platforms.md) over a DeviceSession.

The NETCONF side of the `changeline-ne` platform (devices/platforms.py): software
lifecycle RPCs, operational state, dial tests and CDR files, and the result types every
platform's driver returns. Atoms ask their NE's driver, never this module directly.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lxml import etree

from changeline.catalogue import NE_NAMESPACE

if TYPE_CHECKING:  # the platform table imports this module without opening sessions
    from changeline.devices.session import DeviceSession

NS = NE_NAMESPACE
CDR_DIR = "/cdr"
IMAGE_DIR = "/images"


def q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _text(el: etree._Element | None, tag: str, default: str = "") -> str:
    if el is None:
        return default
    found = el.find(q(tag))
    return found.text.strip() if found is not None and found.text else default


@dataclass(frozen=True)
class Image:
    name: str
    version: str
    ne_type: str
    size: int
    sha256: str
    state: str


@dataclass(frozen=True)
class Alarm:
    id: str
    severity: str
    text: str
    raised_at: str = ""


@dataclass
class NeState:
    name: str
    ne_type: str
    running_version: str
    previous_version: str
    available_versions: list[str]
    images: list[Image]
    alarms: list[Alarm]
    kpis: dict[str, float]
    cpu_percent: float
    disk_total_mb: float
    disk_free_mb: float
    pool: str
    drained: bool
    active_sessions: int
    uptime_s: float
    raw: str = field(repr=False, default="")

    def to_dict(self) -> dict:
        return {
            "name": self.name, "ne_type": self.ne_type, "running_version": self.running_version,
            "previous_version": self.previous_version, "alarms": [a.__dict__ for a in self.alarms],
            "kpis": dict(self.kpis), "disk_free_mb": self.disk_free_mb, "cpu_percent": self.cpu_percent,
            "pool": self.pool, "drained": self.drained, "images": [i.__dict__ for i in self.images],
        }


@dataclass(frozen=True)
class DialTestResult:
    scenario: str
    passed: bool
    attempts: int
    successes: int
    latency_ms: float
    reason: str
    charging_ids: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "passed": self.passed, "attempts": self.attempts,
                "successes": self.successes, "latency_ms": self.latency_ms, "reason": self.reason,
                "charging_ids": list(self.charging_ids)}


def _parse_images(parent: etree._Element | None) -> list[Image]:
    if parent is None:
        return []
    out = []
    for img in parent.iter(q("image")):
        out.append(Image(name=_text(img, "name"), version=_text(img, "version"), ne_type=_text(img, "ne-type"),
                         size=int(_text(img, "size", "0") or 0), sha256=_text(img, "sha256"),
                         state=_text(img, "state")))
    return out


def _num(value: str, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def read_state(session: DeviceSession, *, timeout: float | None = None) -> NeState:
    data = session.get(f'<ne-state xmlns="{NS}"/>', timeout=timeout)
    st = data.find(q("ne-state"))
    if st is None:
        raise_missing(session, "ne-state")
    sw = st.find(q("software"))
    res = st.find(q("resources"))
    tr = st.find(q("traffic"))
    alarms_el = st.find(q("alarms"))
    kpis_el = st.find(q("kpis"))
    return NeState(
        name=_text(st, "name"), ne_type=_text(st, "type"),
        running_version=_text(sw, "running-version"), previous_version=_text(sw, "previous-version"),
        available_versions=[v.text for v in (sw.iter(q("version")) if sw is not None else []) if v.text],
        images=_parse_images(st.find(q("images"))),
        alarms=[Alarm(_text(a, "id"), _text(a, "severity"), _text(a, "text"), _text(a, "raised-at"))
                for a in (alarms_el.iter(q("alarm")) if alarms_el is not None else [])],
        kpis={_text(k, "name"): _num(_text(k, "value")) for k in (kpis_el.iter(q("kpi")) if kpis_el is not None else [])},
        cpu_percent=_num(_text(res, "cpu-percent")), disk_total_mb=_num(_text(res, "disk-total-mb")),
        disk_free_mb=_num(_text(res, "disk-free-mb")), pool=_text(tr, "pool"),
        drained=_text(tr, "drained").lower() == "true", active_sessions=int(_num(_text(tr, "active-sessions"))),
        uptime_s=_num(_text(st, "uptime-seconds")), raw=etree.tostring(st, encoding="unicode"),
    )


def read_kpis(session: DeviceSession) -> dict[str, float]:
    """Only the KPIs: a subtree filter, so the NE does not build its whole state for them."""
    data = session.get(f'<ne-state xmlns="{NS}"><kpis/></ne-state>')
    kpis_el = data.find(f"{q('ne-state')}/{q('kpis')}")
    if kpis_el is None:
        raise_missing(session, "ne-state/kpis")
    return {_text(k, "name"): _num(_text(k, "value")) for k in kpis_el.iter(q("kpi"))}


def read_state_optional(session: DeviceSession) -> NeState | None:
    """The NE's state, or None when it does not implement the changeline state tree."""
    from changeline.errors import DeviceError, RpcError, TransientError

    try:
        return read_state(session)
    except TransientError:
        raise
    except (RpcError, DeviceError):
        return None


def raise_missing(session: DeviceSession, what: str) -> None:
    from changeline.errors import DeviceError

    raise DeviceError(f"NE did not report <{what}>; is it a changeline-contract NE?", host=session.endpoint.name)


def list_images(session: DeviceSession) -> list[Image]:
    reply = session.rpc(f'<list-images xmlns="{NS}"/>')
    return _parse_images(reply)


def install_software(session: DeviceSession, image: str) -> None:
    session.rpc(f'<install-software xmlns="{NS}"><image>{_esc(image)}</image></install-software>')


def activate_software(session: DeviceSession, version: str) -> None:
    session.rpc(f'<activate-software xmlns="{NS}"><version>{_esc(version)}</version></activate-software>')


def rollback_software(session: DeviceSession) -> None:
    session.rpc(f'<rollback-software xmlns="{NS}"/>')


def drain_traffic(session: DeviceSession) -> None:
    session.rpc(f'<drain-traffic xmlns="{NS}"/>')


def restore_traffic(session: DeviceSession) -> None:
    session.rpc(f'<restore-traffic xmlns="{NS}"/>')


def dial_test(session: DeviceSession, scenario: str) -> DialTestResult:
    reply = session.rpc(f'<dial-test xmlns="{NS}"><scenario>{_esc(scenario)}</scenario></dial-test>')
    res = next(reply.iter(q("dial-test-result")), None)
    if res is None:
        raise_missing(session, "dial-test-result")
    ids = tuple(el.text for el in res.iter(q("charging-id")) if el.text)
    return DialTestResult(
        scenario=_text(res, "scenario", scenario), passed=_text(res, "result") == "pass",
        attempts=int(_num(_text(res, "attempts"))), successes=int(_num(_text(res, "successes"))),
        latency_ms=_num(_text(res, "latency-ms")), reason=_text(res, "reason"), charging_ids=ids,
    )


def read_cdrs(session: DeviceSession) -> list[dict[str, str]]:
    """Every CDR record in the NE's CDR directory (CSV files per the contract)."""
    records: list[dict[str, str]] = []
    for name in session.list_dir(CDR_DIR):
        if not name.endswith(".csv"):
            continue
        text = session.read_file(f"{CDR_DIR}/{name}").decode("utf-8", errors="replace")
        for row in csv.DictReader(io.StringIO(text)):
            row["_file"] = name
            records.append(row)
    return records


def _esc(value: str) -> str:
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
