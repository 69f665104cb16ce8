"""The fault and crash matrix: which faults, which NEs, which kill points, and the check every
cell makes with its own NETCONF reads.

A cell ends well when each NE is either at the target version with its gates green (a fresh
dial test passes, no critical alarm, not drained), or back at its original version with its
running config canonically identical to its backup and traffic restored; its backup is intact;
the report lists it with its status and reason; no NE was activated twice.

`CHANGELINE_FULL_MATRIX=1` runs every cell; otherwise a fast subset (a few minutes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FULL = os.environ.get("CHANGELINE_FULL_MATRIX", "") not in ("", "0")
SPEED = 0.01
LIBRARY = Path(__file__).resolve().parents[2] / "models" / "library"
MODELS = {"AMF": LIBRARY / "amf/1.3/amf-upgrade.yaml", "UPF": LIBRARY / "upf/1.3/upf-upgrade.yaml",
          "P-CSCF": LIBRARY / "p-cscf/1.3/pcscf-upgrade.yaml"}
DIAL = {"AMF": ["ue-registration"], "UPF": ["pdu-session"], "P-CSCF": ["sip-register", "volte-call"]}
KPI = {"AMF": "registration-success-rate", "UPF": "pdu-session-success-rate", "P-CSCF": "call-success-rate"}
TARGET, ORIGINAL = "1.3.0", "1.2.0"
POOLED = "rel-amf-pool"


@dataclass(frozen=True)
class FaultCell:
    """One fault kind aimed at one atom: set before the campaign, or once the NE starts `at_step`
    (a fault the earlier steps would otherwise see: a KPI baseline, a pre-check)."""

    id: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    atom: str = ""
    at_step: str | None = None
    fast: bool = False
    # Gone once the NE rolls back: a degradation the new version brought (a KPI fault left on
    # would fail the rollback's own verification dial test, rightly: rollback-failed).
    until_rollback: bool = False

    def params_for(self, ne_type: str) -> dict[str, Any]:
        if self.kind == "kpi-degrade":
            return {"kpi": KPI[ne_type], **self.params}
        return dict(self.params)


_ALARM = {"severity": "critical", "text": "reliability matrix: card failure"}
FAULT_CELLS = [
    FaultCell("transfer-fail-once", "transfer-fail", {"count": 1}, "transfer_software"),
    FaultCell("transfer-fail", "transfer-fail", {"count": 20}, "transfer_software"),
    FaultCell("transfer-corrupt", "transfer-corrupt", {"count": 20}, "transfer_software", fast=True),
    FaultCell("disk-full", "disk-full", {}, "precheck"),
    FaultCell("install-fail", "install-fail", {"count": 20}, "install_software", fast=True),
    FaultCell("activate-hang", "activate-hang", {"count": 1}, "activate_software"),
    FaultCell("activate-old-version", "activate-old-version", {"count": 1}, "activate_software"),
    FaultCell("dial-test-fail", "dial-test-fail-after-upgrade", {}, "dial_test", fast=True),
    FaultCell("cdr-missing", "cdr-missing", {}, "billing_check"),
    FaultCell("kpi-degrade", "kpi-degrade", {"factor": 0.5}, "kpi_check", at_step="activate", until_rollback=True),
    FaultCell("alarm-precheck", "alarm", _ALARM, "precheck"),
    FaultCell("alarm-validate", "alarm", _ALARM, "validate_upgrade", at_step="dial-test"),
    FaultCell("slow-replies", "slow-replies", {"delay_s": 0.2}, "every atom"),
    FaultCell("drop-edit-config", "drop-mid-rpc", {"rpc": "edit-config"}, "backup/config"),
    FaultCell("drop-commit-after", "drop-mid-rpc", {"rpc": "commit", "after": True}, "config"),
    FaultCell("drop-get-config", "drop-mid-rpc", {"rpc": "get-config"}, "backup"),
    FaultCell("drop-get", "drop-mid-rpc", {"rpc": "get"}, "precheck"),
    FaultCell("drop-install-after", "drop-mid-rpc", {"rpc": "install-software", "after": True}, "install_software"),
    FaultCell("drop-activate-after", "drop-mid-rpc", {"rpc": "activate-software", "after": True},
              "activate_software", fast=True),
    FaultCell("drop-activate-before", "drop-mid-rpc", {"rpc": "activate-software"}, "activate_software"),
    FaultCell("drop-drain-after", "drop-mid-rpc", {"rpc": "drain-traffic", "after": True}, "drain_traffic"),
    FaultCell("drop-restore", "drop-mid-rpc", {"rpc": "restore-traffic"}, "restore_traffic"),
    FaultCell("drop-dial-test", "drop-mid-rpc", {"rpc": "dial-test"}, "dial_test"),
    FaultCell("drop-rollback-software", "drop-mid-rpc", {"rpc": "rollback-software", "count": 2},
              "rollback (undo of activate)"),
]


def cell_nes(cell_id: str) -> dict[str, str]:
    """The three NEs a fault cell runs on, by type: a pooled AMF, a UPF, a P-CSCF."""
    return {"AMF": f"amf-{cell_id}", "UPF": f"upf-{cell_id}", "P-CSCF": f"pcscf-{cell_id}"}


def _ne(name: str, ne_type: str, pool: str | None = None) -> dict:
    return {"name": name, "type": ne_type, "version": ORIGINAL, **({"pool": pool} if pool else {})}


CELL_NES = [_ne(n, t, POOLED if t == "AMF" else None) for c in FAULT_CELLS for t, n in cell_nes(c.id).items()]
# Crash scenarios: each takes NEs of its own, AMFs in a pool of their own (a killed engine's
# pool lock lives on until its lease runs out, and must not hold up another scenario).
CRASH_SCENARIOS = ("midrb", "oneclick", "rbfail", "chain", "inside")
CRASH_NES = [n for s in CRASH_SCENARIOS for n in (
    _ne(f"amf-{s}-1", "AMF", f"pool-{s}"), _ne(f"amf-{s}-2", "AMF", f"pool-{s}"),
    _ne(f"upf-{s}-1", "UPF"), _ne(f"upf-{s}-2", "UPF"), _ne(f"upf-{s}-3", "UPF"), _ne(f"pcscf-{s}-1", "P-CSCF"))]
POOLS = [{"name": POOLED, "type": "AMF", "calls_per_second": 50},
         *({"name": f"pool-{s}", "type": "AMF", "calls_per_second": 50} for s in CRASH_SCENARIOS)]


def model_variant(tmp: Path, ne_type: str, *, waves: str, max_failures: int, concurrency: int) -> str:
    """The library model of this type with another campaign policy (the first model's governs)."""
    text = MODELS[ne_type].read_text()
    policy = re.compile(r"    waves:\n(?:      - .*\n)+    concurrency: \d+\n    maxFailures: \d+\n")
    assert policy.search(text), "the library model's campaign block changed shape"
    text = policy.sub(f"    waves:\n{waves}    concurrency: {concurrency}\n    maxFailures: {max_failures}\n", text)
    path = tmp / f"{ne_type.lower()}-{abs(hash((waves, max_failures, concurrency)))}.yaml"
    path.write_text(text)
    return str(path)


def models_with(first: str) -> list[str]:
    return [first, *(str(p) for p in MODELS.values())]


# --- reading the NEs ------------------------------------------------------------------------

def read_ne(sim, name: str) -> tuple[Any, bytes]:
    from changeline.devices import ne_api
    from changeline.devices.configxml import canonical, config_from_data
    from changeline.devices.session import DeviceSession, Endpoint

    with DeviceSession(Endpoint.from_host(sim.inventory.hosts[name])) as session:
        return ne_api.read_state(session), canonical(config_from_data(session.get_config("running")))


def dial_passes(sim, name: str, ne_type: str) -> list[str]:
    """Scenarios of a fresh dial test that fail (none: traffic flows)."""
    from changeline.devices import ne_api
    from changeline.devices.session import DeviceSession, Endpoint

    with DeviceSession(Endpoint.from_host(sim.inventory.hosts[name])) as session:
        return [f"{s}: {r.reason}" for s in DIAL[ne_type] if not (r := ne_api.dial_test(session, s)).passed]


def configs_before(sim, names) -> dict[str, bytes]:
    return {name: read_ne(sim, name)[1] for name in names}


def check_ne(sim, campaign_id: str, name: str, ne_type: str, config_before: bytes, report: dict) -> str:
    """The cell's verdict on one NE, from its own reads; returns its status. Faults are cleared first
    (what is checked is where the line left the NE, not what the fault still does)."""
    from changeline.devices.configxml import canonical
    from changeline.engine import policy
    from changeline.flows import stores

    sim.control.clear_faults(name)
    sim.control.clear_alarms(name)
    state, running = read_ne(sim, name)
    entry = next((ne for ne in report["nes"] if ne["ne"] == name), None)
    assert entry is not None, f"{name} missing from the report"
    assert entry["reason"], f"{name}: no reason in the report"
    status = entry["status"]
    ne_info = sim.control.ne(name)
    baseline = stores.journal().baseline(campaign_id, name)
    if baseline.get("backup_id"):  # the backup the change was made against is intact
        store = stores.backups()
        backup = store.load(baseline["backup_id"])
        assert canonical(store.get_object(backup.running_sha256)) == config_before, f"{name}: backup differs"
    if status == policy.DONE:
        assert state.running_version == TARGET, (name, state.running_version, entry["reason"])
        assert not [a for a in state.alarms if a.severity == "critical"], (name, state.alarms)
        assert ne_info["restarts"] == 1, f"{name} activated {ne_info['restarts']} times"
    else:
        assert status in (policy.ROLLED_BACK, policy.FAILED, policy.SKIPPED, policy.DEFERRED), (name, entry)
        assert state.running_version == ORIGINAL, (name, status, state.running_version, entry["reason"])
        assert running == config_before, f"{name}: config not identical to its backup after {status}"
        assert ne_info["restarts"] <= 2, f"{name} restarted {ne_info['restarts']} times"
    assert not state.drained, f"{name} left drained ({status})"
    failing = dial_passes(sim, name, ne_type)
    assert not failing, f"{name} ({status}): traffic not restored: {failing}"
    return status


def build_report(campaign_id: str) -> dict:
    from changeline.reports.build import build_campaign_report

    paths = build_campaign_report(campaign_id)
    assert paths.html.is_file()
    return json.loads(paths.json.read_text())


def summary_of(**kwargs) -> dict:
    """A campaign run in this process, its summary whatever its state (a run with a failed NE
    ends Failed, its summary the state's data)."""
    from changeline.flows.campaign import campaign

    state = campaign(**kwargs, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, dict), f"the campaign crashed: {summary!r}"
    return summary


# --- the engine from outside ------------------------------------------------------------------

def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "changeline.cli", *args]


def start_engine(*args: str) -> subprocess.Popen:
    return subprocess.Popen(cli(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(engine: subprocess.Popen, campaign_id: str, ready: Callable[[dict], bool], *,
              timeout_s: float = 600) -> dict:
    """SIGKILL the engine (its whole process group) the moment the journal shows `ready`; the
    journal's NE statuses at that moment."""
    from changeline.flows import stores

    journal = stores.journal()
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = journal.ne_statuses(campaign_id)
        if ready(statuses):
            os.killpg(engine.pid, signal.SIGKILL)
            engine.wait(30)
            return statuses
        if engine.poll() is not None:
            raise AssertionError(f"engine ended before the kill point: {engine.stdout.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, f"kill point never reached: {statuses}"
        time.sleep(0.02)


def at_step(ne: str, step: str) -> Callable[[dict], bool]:
    return lambda statuses: statuses.get(ne, ("", ""))[1] == f"step {step}"


def rolling_back(ne: str) -> Callable[[dict], bool]:
    return lambda statuses: statuses.get(ne, ("", ""))[1].startswith("rolling back")


def rollback_under_way(campaign_id: str, ne: str, gate: str, after_s: float = 0.3) -> Callable[[dict], bool]:
    """`after_s` seconds after the NE's `gate` failed while it is still at work: inside the
    rollback (undoing an activation alone takes a restart, seconds even on a fast simulator)."""
    from changeline.engine import policy
    from changeline.flows import stores

    seen: dict[str, float] = {}

    def ready(statuses: dict) -> bool:
        if statuses.get(ne, ("", ""))[0] in policy.FINAL_STATES:
            raise AssertionError(f"{ne} ended before the kill: {statuses[ne]}")
        if stores.journal().step_records(campaign_id, ne).get(gate, ("",))[0] != "failed":
            return False
        seen.setdefault("at", time.monotonic())
        return time.monotonic() - seen["at"] >= after_s
    return ready


def run_to_end(*args: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout_s)
