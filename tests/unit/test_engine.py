"""The engine without a server: the import boundary, and the Campaign scheduler's admissions
(waves, pool turns, slots, the window, the failure budget) as a caller sees them."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from changeline.devices.inventory import Host
from changeline.engine.campaign import Campaign, Prepared
from changeline.engine import policy
from changeline.models.waves import Wave


def test_the_engine_never_imports_prefect_nor_the_flows_around_it():
    code = ("import changeline.engine, changeline.engine.run, changeline.engine.campaign, sys; "
            "up = sorted(m for m in sys.modules if m.startswith(('prefect', 'changeline.flows'))); "
            "assert not up, up[:5]")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


class Journal:
    """The journal calls the scheduler makes (statuses only)."""

    def __init__(self) -> None:
        self.statuses: dict[str, tuple[str, str]] = {}

    def set_ne_status(self, _campaign: str, ne: str, status: str, reason: str) -> None:
        self.statuses[ne] = (status, reason)


def _host(name: str, pool: str | None = None) -> Host:
    return Host(name=name, hostname="127.0.0.1", data={"ne_type": "AMF", "software_version": "1.2.0",
                                                       **({"pool": pool} if pool else {})})


def _plan(estimate_s: float = 10.0):
    return SimpleNamespace(total_estimate_s=estimate_s, rollback_estimate_s=5.0)


def _campaign(waves, *, cap: int, journal: Journal, breached=lambda failed, attempted: None, **kw) -> Campaign:
    hosts = [h for w in waves for h in w.hosts]
    prepared = Prepared(hosts=hosts, chosen={}, plans={h.name: _plan() for h in hosts}, waves=waves)
    return Campaign("c-test", prepared, cap=cap, breached=breached, journal=journal, **kw)


def test_admissions_keep_the_cap_and_pool_peers_apart_and_the_budget_stops_the_next_wave():
    first = Wave("canary", (_host("amf-1", "p"), _host("amf-2", "p"), _host("amf-3"), _host("amf-4")))
    second = Wave("rest", (_host("amf-5"),))
    journal = Journal()
    working: set[str] = set()
    seen_together: list[set[str]] = []
    lock = threading.Lock()

    def launch(host, wave, admission):
        with admission.enter() as ticket:
            assert ticket.refusal is None
            with lock:
                working.add(host.name)
                seen_together.append(set(working))
            status = policy.FAILED if host.name == "amf-3" else policy.DONE
            with lock:
                working.discard(host.name)
            ticket.outcome = {"ne": host.name, "ne_type": host.ne_type, "status": status, "reason": "by test"}
            return ticket.outcome

    scheduler = _campaign([first, second], cap=2, journal=journal,
                          breached=lambda failed, attempted: f"{failed} of {attempted} failed" if failed else None)
    outcomes = scheduler.run(launch)
    assert max(len(s) for s in seen_together) <= 2
    assert not any({"amf-1", "amf-2"} <= s for s in seen_together)
    assert [outcomes[n]["status"] for n in ("amf-1", "amf-2", "amf-3", "amf-4")] == ["done", "done", "failed", "done"]
    assert outcomes["amf-5"]["status"] == policy.SKIPPED
    assert outcomes["amf-5"]["reason"] == "not started: the campaign stopped before wave rest: 1 of 4 failed"
    assert scheduler.stop_reason == "1 of 4 failed"


def test_an_ne_the_window_no_longer_holds_is_deferred_without_a_run():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    journal = Journal()
    launched = []
    # 10 s of work + 5 s worst-case rollback do not fit in 12 s.
    scheduler = _campaign([Wave("all", (_host("amf-1"),))], cap=1, journal=journal,
                          window_end=start + timedelta(seconds=12), now=lambda: start)
    outcomes = scheduler.run(lambda host, wave, admission: launched.append(host.name))
    assert launched == []
    assert outcomes["amf-1"]["status"] == policy.DEFERRED
    assert journal.statuses["amf-1"][0] == policy.DEFERRED
    assert "this NE needs 15 s" in outcomes["amf-1"]["reason"]
