"""The engine's per-NE loop with no Prefect and no server: `run_plan` upgrades a simulated NE,
its processors see every step, and a second run of the same campaign goes on from the journal
(every step finished, none entered again)."""

from __future__ import annotations

import json
from pathlib import Path

from changeline.devices.sim.images import generate_image
from changeline.engine.outcomes import StepOutcome
from changeline.engine.run import NeRun, Processor, run_plan
from changeline.models.compile import compile_for_host, load_model
from changeline.state.backups import BackupStore
from changeline.state.journal import Journal

MODEL = Path(__file__).resolve().parents[2] / "models" / "library" / "smf" / "1.3" / "smf-upgrade.yaml"


class Seen(Processor):
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.finished: list[str] = []

    def step_finished(self, run, step, result) -> None:
        self.steps.append(f"{step.name}:{result.status}")

    def ne_finished(self, run, outcome) -> None:
        self.finished.append(outcome.status)


def test_run_plan_upgrades_an_ne_and_a_second_run_goes_on_from_the_journal(sim, tmp_path):
    host = sim.inventory.hosts["smf-2"]
    generate_image(tmp_path / "images", "SMF", "1.3.0")
    plan = compile_for_host(load_model(MODEL), host, {"image_repo": str(tmp_path / "images")})
    journal, backups = Journal(tmp_path / "journal.sqlite"), BackupStore(tmp_path / "backups")

    def run() -> NeRun:
        return NeRun(host=host, campaign_id="engine-1", journal=journal, backups=backups,
                     evidence_dir=tmp_path / "ne", log=lambda _msg: None)

    seen = Seen()
    outcome = run_plan(plan, run(), [seen])
    assert (outcome.status, outcome.reason) == ("done", "reached target"), outcome.reason
    assert seen.steps == [f"{s.name}:done" for s in plan.steps]
    assert seen.finished == ["done"]
    assert [s.name for s in outcome.steps] == [s.name for s in plan.steps]
    assert all(0 < s.atom_s <= s.duration_s for s in outcome.steps)
    written = json.loads((tmp_path / "ne" / "outcome.json").read_text())
    assert written == outcome.to_dict()
    assert journal.ne_statuses("engine-1")[host.name] == ("done", "reached target")

    again = Seen()
    resumed = run_plan(plan, run(), [again])
    assert resumed.status == "done"
    assert again.steps == []  # every step finished in the first run keeps its recorded outcome
    assert [s.to_dict() for s in resumed.steps] == [s.to_dict() for s in outcome.steps]


class Stages(Processor):
    """Records each stage wrap and fails the verify stage's first gate once."""

    def __init__(self, fail: str = "") -> None:
        self.wraps: list[tuple[str, list[str]]] = []
        self.inside: list[str] = []
        self.current = ""
        self.fail = fail

    def run_stage(self, run, stage, steps, call):
        self.wraps.append((stage, [s.name for s in steps]))
        self.current = stage
        try:
            return call()
        finally:
            self.current = ""

    def run_step(self, run, step, call):
        self.inside.append(f"{self.current}/{step.name}")
        if step.name == self.fail:
            self.fail = ""
            return StepOutcome(atom=step.atom, status="failed", reason="no answer from the test number")
        return call()


def test_the_steps_of_a_stage_run_inside_one_wrap_and_an_accepted_anomaly_starts_the_rest_in_another(sim, tmp_path):
    host = sim.inventory.hosts["smf-3"]
    generate_image(tmp_path / "images", "SMF", "1.3.0")
    plan = compile_for_host(load_model(MODEL), host, {"image_repo": str(tmp_path / "images")}, on_anomaly="continue")
    stages = Stages(fail="dial-test")
    outcome = run_plan(plan, NeRun(host=host, campaign_id="engine-2", journal=Journal(tmp_path / "journal.sqlite"),
                                   backups=BackupStore(tmp_path / "backups"), log=lambda _msg: None), [stages])
    assert outcome.status == "done" and outcome.reason == "reached target with 1 accepted anomaly(ies)", outcome.reason
    by_stage = {}
    for step in plan.steps:
        by_stage.setdefault(step.stage, []).append(step.name)
    verify = by_stage.pop("verify")
    assert verify[0] == "dial-test", verify
    assert stages.wraps == [*by_stage.items(), ("verify", verify), ("verify", verify[1:])], stages.wraps
    # Every step ran inside its own stage's wrap, once.
    assert stages.inside == [f"{s.stage}/{s.name}" for s in plan.steps], stages.inside
    assert [a["step"] for a in outcome.anomalies] == ["dial-test"]
