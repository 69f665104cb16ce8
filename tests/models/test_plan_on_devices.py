"""`changeline plan` against running simulated NEs: eligibility from the NEs, the config diff
a change would apply read from the device, and nothing changed on the NEs by planning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.simfixture import cli, running_sim

LIBRARY = Path(__file__).resolve().parents[2] / "models" / "library"
NES = [{"name": "amf-1", "type": "AMF", "version": "1.2.0"},
       {"name": "amf-2", "type": "AMF", "version": "1.3.0"},
       {"name": "amf-3", "type": "AMF", "version": "1.1.0"},
       {"name": "smf-1", "type": "SMF", "version": "1.2.0"}]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("plan-sim"), NES) as running:
        yield running


def test_upgrade_plan_for_a_mixed_inventory(sim):
    run = cli("plan", str(LIBRARY / "amf/1.3/amf-upgrade.yaml"), "-i", str(sim.inventory_path), "-t", "all", "--json")
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    reasons = {i["ne"]: i["reason"] for i in plan["ineligible"]}
    assert set(reasons) == {"amf-2", "amf-3", "smf-1"}
    assert "already at 1.3.0" in reasons["amf-2"]
    assert "not an upgrade source" in reasons["amf-3"]
    assert "type SMF is not targeted" in reasons["smf-1"]
    assert [ne for wave in plan["waves"] for ne in wave["nes"]] == ["amf-1"]
    steps = [s["atom"] for s in plan["nes"]["amf-1"]["steps"]]
    assert steps[:2] == ["precheck", "backup"] and "activate_software" in steps
    assert plan["nes"]["amf-1"]["rollback"]["strategy"] == "journal"


def test_change_plan_previews_the_config_diff_from_the_device(sim):
    before = cli("plan", str(LIBRARY / "amf/1.3/amf-t3512-timer.yaml"), "-i", str(sim.inventory_path),
                 "-t", "amf-1", "-p", "t3512_s=1800")
    assert before.returncode == 0, before.stderr
    text = before.stdout
    assert "t3512" in text and "+" in text and "1800" in text, text
    # Planning changed nothing: planning again shows the same diff.
    again = cli("plan", str(LIBRARY / "amf/1.3/amf-t3512-timer.yaml"), "-i", str(sim.inventory_path),
                "-t", "amf-1", "-p", "t3512_s=1800")
    assert again.stdout == text


def test_bad_plan_arguments_are_clear_errors(sim):
    run = cli("plan", str(LIBRARY / "amf/1.3/amf-upgrade.yaml"), "-i", str(sim.inventory_path), "-t", "colour=red")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "unknown key 'colour'" in run.stderr


def test_a_plan_that_cannot_read_the_nes_says_so_and_fails_unless_asked_not_to_read(sim):
    args = ("plan", str(LIBRARY / "amf/1.3/amf-t3512-timer.yaml"), "-i", str(sim.inventory_path), "-t", "amf-1",
            "-p", "t3512_s=1800")
    unread = cli(*args, env={"CHANGELINE_NE_PASSWORD": ""})
    assert unread.returncode == 1 and "Traceback" not in unread.stderr, unread.stderr
    assert "1 NE(s) could not be read (amf-1" in unread.stderr and "--no-device" in unread.stderr
    assert "amf-1" in unread.stdout  # the plan from the inventory is still shown
    on_purpose = cli(*args, "--no-device", env={"CHANGELINE_NE_PASSWORD": ""})
    assert on_purpose.returncode == 0, on_purpose.stderr
