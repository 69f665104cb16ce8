"""A realistic finished campaign on disk, written the way the line writes it, without NEs or Prefect.

The real state store and backups (changeline.state, as flows.stores picks them) hold the records, outcomes are `NEOutcome`/`StepOutcome`
written by the per-NE flow's own writer, and the summary comes from `progress.summarize`:

- amf-1  done: config change, upgrade 1.2.0 -> 1.3.0, dial tests and billing passed;
- smf-1  rolled-back: VoLTE dial test failed after activation, an operator chose rollback;
- upf-1  deferred: the change window could not hold it;
- nrf-1  ineligible: on a version the model does not upgrade from.

`extra_done=N` adds N more upgraded AMFs (amf-2...) run ten at a time, for the look of a big campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

from changeline.engine.atom import AtomResult
from changeline.state.api import Backups, StateStore
from changeline.devices.configxml import canonical, diff
from changeline.devices.ne_api import DialTestResult
from changeline.engine import policy
from changeline.flows import progress, stores
from changeline.engine.outcomes import NEOutcome, StepOutcome
from changeline.engine.run import write_outcome

CAMPAIGN = "c-sample"
NS = "urn:changeline:params:xml:ns:yang:changeline-ne"
PROBES = {"pools": {"amf-pool": {"attempted": 12000, "failed": 0}, "smf-pool": {"attempted": 9000, "failed": 27}}}
OPERATOR_WAIT_S = 95.0
DECISION_COMMENT = "VoLTE calls drop after activation; roll back and open a vendor case"


def config(ne: str, t3512: int) -> bytes:
    return canonical(f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><ne xmlns="{NS}"><name>{ne}</name>'
                     f'<plmn><mcc>460</mcc><mnc>00</mnc></plmn><timers><t3512>{t3512}</t3512></timers></ne></config>')


def dial(scenario: str, passed: bool = True, charging: tuple[str, ...] = ()) -> dict:
    return DialTestResult(scenario, passed, 10, 10 if passed else 7, 42.0 if passed else 310.0,
                          "" if passed else "3 of 10 calls dropped after answer", charging).to_dict()


def cdr(ne: str, charging_id: str) -> dict:
    return {"record_id": f"R-{charging_id}", "charging_id": charging_id, "ne": ne, "start_time": "2026-11-28T02:10:00Z",
            "duration_s": "30", "volume_uplink": "1024", "volume_downlink": "4096", "rating_group": "10",
            "charge_units": "5", "_file": f"{ne}-0001.csv"}


@dataclass
class Clock:
    now: float

    def step(self, seconds: float) -> tuple[float, float]:
        started = self.now
        self.now += seconds
        return started, seconds


class Writer:
    """Writes one NE's records as the atoms and the per-NE flow would."""

    def __init__(self, journal: StateStore, backups: Backups, ne: str, ne_type: str, start: float) -> None:
        self.journal, self.backups, self.ne = journal, backups, ne
        self.clock = Clock(start)
        self.outcome = NEOutcome(ne=ne, ne_type=ne_type, campaign_id=CAMPAIGN, from_version="1.2.0",
                                 to_version="1.3.0", started_at=start)
        journal.set_ne_status(CAMPAIGN, ne, "running", "")

    def step(self, name: str, atom: str, seconds: float, result: AtomResult, *, manual: float, gate: bool = False,
             undo: dict | None = None, mutating: bool = False, failed: str = "") -> None:
        started, duration = self.clock.step(seconds)
        if mutating:
            entry = self.journal.begin(CAMPAIGN, self.ne, name, atom, undo)
            self.journal.finish(entry, "failed" if failed else "done",
                                {"reason": failed} if failed else result.to_dict())
        status = "failed" if failed else "done"
        self.outcome.steps.append(StepOutcome(name, atom, status, result.changed and not failed, failed or result.reason,
                                              started, duration, gate, result.evidence, result.diff, manual, seconds))
        self.journal.record_step(CAMPAIGN, self.ne, name, status, {"reason": failed} if failed else result.to_dict())

    def upgrade(self, *, fail_dial_after: bool = False) -> None:
        ne = self.ne
        before = config(ne, 3240)
        after = config(ne, 3600)
        pool = "smf-pool" if ne.startswith("smf") else "amf-pool"
        self.step("precheck", "precheck", 2.0, AtomResult(atom="precheck", ne=ne, reason="fit for change", evidence={
            "name": ne, "running_version": "1.2.0", "pool": pool, "alarms": [], "kpis": {"reg_success_pct": 99.7}}),
            manual=15)
        self.journal.put_baseline(CAMPAIGN, ne, "kpis", {"reg_success_pct": 99.7})
        rec = self.backups.record(ne=ne, run_id=CAMPAIGN, software_version="1.2.0", running=before, startup=before,
                                  state=None)
        self.journal.put_baseline(CAMPAIGN, ne, "backup_id", rec.id)
        self.step("backup", "backup", 1.0, AtomResult(atom="backup", ne=ne, reason=f"backup {rec.id} stored and read back",
                                                      evidence={"backup_id": rec.id, "running_sha256": rec.running_sha256}),
                  manual=10)
        scenarios = {"registration": dial("registration"), "volte_call": dial("volte_call")}
        self.journal.put_baseline(CAMPAIGN, ne, "dial_test", scenarios)
        self.step("dial_before", "dial_test", 6.0, AtomResult(atom="dial_test", ne=ne, reason="2 scenario(s) passed",
                                                             evidence={"results": scenarios, "baseline": True}), manual=20)
        change = diff(before, after, before_name="running", after_name="candidate")
        persist = f"changeline-{CAMPAIGN}-{ne}-set_timer"
        self.step("set_timer", "config_change", 3.0,
                  AtomResult(atom="config_change", ne=ne, changed=True, diff=change, reason="committed and confirmed",
                             evidence={"persist_id": persist, "confirm": "now"}),
                  manual=20, mutating=True,
                  undo={"restore_running_sha256": self.backups.put_object(before), "persist_id": persist})
        self.journal.put_baseline(CAMPAIGN, ne, "expected_running_sha256", self.backups.put_object(after))
        self.step("transfer", "transfer_software", 20.0,
                  AtomResult(atom="transfer_software", ne=ne, changed=True, reason="ne-1.3.0.img transferred and verified",
                             evidence={"sha256": "ab" * 32, "bytes": 52428800}),
                  manual=15, mutating=True, undo={"image": "ne-1.3.0.img"})
        self.step("install", "install_software", 15.0,
                  AtomResult(atom="install_software", ne=ne, changed=True, reason="ne-1.3.0.img installed",
                             evidence={"image": "ne-1.3.0.img", "version": "1.3.0"}), manual=20, mutating=True)
        self.step("activate", "activate_software", 40.0,
                  AtomResult(atom="activate_software", ne=ne, changed=True, reason="running 1.3.0",
                             evidence={"running_version": "1.3.0"}),
                  manual=30, mutating=True, undo={"version": "1.2.0", "restart_timeout_s": 900})
        if fail_dial_after:
            failing = {"registration": dial("registration"), "volte_call": dial("volte_call", passed=False)}
            reason = "dial test: volte_call succeeded 7 of 10 times (baseline 10 of 10)"
            self.step("dial_after", "dial_test", 6.0, AtomResult(atom="dial_test", ne=ne, evidence={"results": failing}),
                      manual=20, gate=True, failed=reason)
            self.roll_back("dial_after", reason, rec.id)
            return
        charging = (f"CHG-{ne}-0001",)
        results = {"registration": dial("registration"), "volte_call": dial("volte_call", charging=charging)}
        self.step("dial_after", "dial_test", 6.0, AtomResult(atom="dial_test", ne=ne, reason="2 scenario(s) passed",
                                                            evidence={"results": results, "baseline": False}),
                  manual=20, gate=True)
        self.step("billing", "billing_check", 8.0,
                  AtomResult(atom="billing_check", ne=ne, reason="1 CDR(s) complete",
                             evidence={"expected": list(charging), "records": [cdr(ne, charging[0])]}),
                  manual=30, gate=True)
        self.step("kpis", "kpi_check", 3.0, AtomResult(atom="kpi_check", ne=ne, reason="KPIs within thresholds",
                                                       evidence={"baseline": {"reg_success_pct": 99.7},
                                                                 "current": {"reg_success_pct": 99.6}}),
                  manual=15, gate=True)
        self.step("validate", "validate_upgrade", 2.0,
                  AtomResult(atom="validate_upgrade", ne=ne, reason="version, config and alarms as expected",
                             evidence={"version": "1.3.0"}), manual=20, gate=True)
        self.finish(policy.DONE, "reached target")

    def roll_back(self, step: str, reason: str, backup_id: str) -> None:
        self.outcome.anomalies.append({"step": step, "atom": "dial_test", "gate": True, "reason": reason,
                                       "policy": "pause", "at": self.clock.now})
        self.journal.set_ne_status(CAMPAIGN, self.ne, "paused", f"{step}: {reason}")
        self.clock.step(OPERATOR_WAIT_S)
        self.outcome.operator_seconds += OPERATOR_WAIT_S
        self.outcome.decisions.append({"step": step, "action": "rollback", "comment": DECISION_COMMENT,
                                       "by": "operator", "waited_s": OPERATOR_WAIT_S})
        ne = self.ne
        undone = [AtomResult(atom="undo:activate_software", ne=ne, changed=True, reason="back on 1.2.0"),
                  AtomResult(atom="undo:transfer_software", ne=ne, changed=True, reason="ne-1.3.0.img removed"),
                  AtomResult(atom="undo:config_change", ne=ne, changed=True, reason="config restored byte-identical",
                             diff=diff(config(ne, 3600), config(ne, 3240), before_name="running", after_name="backup"))]
        # install_software journals no undo record (an inactive image is inert), so the
        # runner undoes activate, transfer and set_timer, newest first.
        for entry, result in zip(self.journal.to_undo(CAMPAIGN, ne), undone):
            self.journal.mark_undo(entry.id, "undone", result.to_dict())
        verified = AtomResult(atom="rollback", ne=ne, changed=False, duration_s=35.0,
                              reason=f"restored to backup {backup_id} and verified",
                              evidence={"backup_id": backup_id, "dial_tests": {"volte_call": dial("volte_call")}})
        self.clock.step(60.0)
        self.outcome.rollback = {"ok": True, "undone": [u.to_dict() for u in undone], "verified": verified.to_dict()}
        self.finish(policy.ROLLED_BACK, f"rolled back after {step}: {reason}")

    def finish(self, status: str, reason: str) -> None:
        self.outcome.status, self.outcome.reason = status, reason
        self.outcome.finished_at = self.clock.now
        self.journal.set_ne_status(CAMPAIGN, self.ne, status, reason)
        write_outcome(self.outcome, stores.evidence_dir(self.outcome.campaign_id, self.outcome.ne))


def make_run(home: Path, *, extra_done: int = 0) -> dict:
    """Write the sample campaign under `home` (CHANGELINE_HOME must point there) and into the state
    store it configures (SQLite under `home` unless CHANGELINE_STATE_URL is set); returns the summary."""
    journal, backups = stores.journal(), stores.backups()
    # The summary is stamped "finished" now; start the campaign as long ago as it ran.
    ran_s = 260 + 110 * -(-extra_done // 10)
    started = (datetime.now(timezone.utc) - timedelta(seconds=ran_s)).replace(microsecond=0)
    t0 = started.timestamp()
    journal.record_campaign(CAMPAIGN, {"model": "models/library/amf/1.3/amf-upgrade.yaml",
                                       "inventory": "inventory.yaml", "targets": "all", "params": {},
                                       "on_anomaly": "pause", "window_end": (started + timedelta(hours=2)).isoformat(),
                                       "concurrency_cap": 10, "pause_timeout_s": 3600})
    outcomes: dict[str, dict] = {}
    amf = Writer(journal, backups, "amf-1", "AMF", t0 + 1.0)
    amf.upgrade()
    smf = Writer(journal, backups, "smf-1", "SMF", t0 + 1.5)
    smf.upgrade(fail_dial_after=True)
    outcomes["amf-1"], outcomes["smf-1"] = amf.outcome.to_dict(), smf.outcome.to_dict()
    for i in range(extra_done):
        name = f"amf-{i + 2}"
        writer = Writer(journal, backups, name, "AMF", t0 + 110.0 * (1 + i // 10) + 3.0 * (i % 10))
        writer.upgrade()
        outcomes[name] = writer.outcome.to_dict()
    deferred = NEOutcome(ne="upf-1", ne_type="UPF", campaign_id="", status=policy.DEFERRED,
                         reason="deferred to the next window: window ends in 240 s; this NE needs 900 s "
                                "(600 s change + 300 s worst-case rollback)", from_version="1.2.0")
    journal.set_ne_status(CAMPAIGN, "upf-1", policy.DEFERRED, deferred.reason)
    outcomes["upf-1"] = deferred.to_dict()
    # As the campaign writes an NE the model does not apply to: a short dict, not an NEOutcome.
    outcomes["nrf-1"] = {"ne": "nrf-1", "ne_type": "NRF", "status": policy.INELIGIBLE,
                         "reason": "NE type NRF is not one of AMF, SMF, UPF"}
    journal.set_ne_status(CAMPAIGN, "nrf-1", policy.INELIGIBLE, outcomes["nrf-1"]["reason"])
    meta = SimpleNamespace(name="amf-smf-upgrade", version="1.3.0")
    model = SimpleNamespace(metadata=meta, name=meta.name, version=meta.version)
    return progress.summarize(CAMPAIGN, [model], outcomes, started, None, started + timedelta(hours=2))
