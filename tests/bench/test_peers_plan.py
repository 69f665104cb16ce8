"""The peers' plan (bench/peers/plan.py) and the reading of Ansible's output (bench/peers/runner.py):
pure functions, no devices."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.campaign_bench import MODELS, simulated_inventory  # noqa: E402
from bench.peers.plan import PlanError, build_plan, host_vars, serial_batches, write_peer_inventories  # noqa: E402
from bench.peers.runner import ansible_outcomes  # noqa: E402

STEPS = [("precheck", "precheck", {"ne_types": ["SMF"], "expected_versions": ["1.2.0"], "min_disk_free_mb": 1024}),
         ("baseline-dial-test", "dial_test", {"scenarios": ["pdu-session"], "record_baseline": True}),
         ("transfer-image", "transfer_software", {"image": "/img/SMF-1.3.0.img"}),
         ("install-image", "install_software", {"image": "SMF-1.3.0.img"}),
         ("activate", "activate_software", {"version": "1.3.0"}),
         ("dial-test", "dial_test", {"scenarios": ["pdu-session"]}),
         ("billing-check", "billing_check", {"scenario": "pdu-session", "wait_s": 120})]


def test_host_vars_from_compiled_steps():
    out = host_vars("smf-1", STEPS)
    assert out["steps"] == [["precheck", "precheck"], ["baseline-dial-test", "baseline_dial_test"],
                            ["transfer-image", "transfer_software"], ["install-image", "install_software"],
                            ["activate", "activate_software"], ["dial-test", "dial_test"],
                            ["billing-check", "billing_check"]]
    assert out["from_versions"] == ["1.2.0"] and out["to_version"] == "1.3.0"
    assert out["baseline_scenarios"] == out["scenarios"] == ["pdu-session"]
    assert out["image_path"] == "/img/SMF-1.3.0.img" and out["image_name"] == "SMF-1.3.0.img"
    assert out["billing"] == {"scenario": "pdu-session", "sessions": 1, "wait_s": 120.0}
    assert out["drain_settle_s"] is None  # no drain step: not pooled


def test_host_vars_refuses_what_the_peers_cannot_do():
    with pytest.raises(PlanError, match="smf-1: step 'tune' uses atom 'config_change'"):
        host_vars("smf-1", [*STEPS, ("tune", "config_change", {})])
    with pytest.raises(PlanError, match="lacks to_version"):
        host_vars("smf-1", [s for s in STEPS if s[1] != "activate_software"])


def test_serial_batches_hold_one_member_per_pool():
    waves = [["a1"], ["a2", "s1"], ["n1", "n2", "s2", "u1", "x"]]
    pools = {"a1": "a", "a2": "a", "s1": "s", "s2": "s", "n1": "n", "n2": "n", "u1": "u", "x": None}
    assert serial_batches(waves, pools) == [["a1"], ["a2", "s1"], ["n1", "s2", "u1", "x"], ["n2"]]


def test_plan_and_inventories_for_the_simulated_topology(tmp_path):
    inventory = simulated_inventory(tmp_path, nes=8, types="AMF,SMF,UPF,NRF,P-CSCF,S-CSCF", speed=0.05)
    # the planned inventory names no known_hosts file beside it until the simulator writes one
    plan = build_plan(inventory, MODELS, str(tmp_path / "images"))
    assert sorted(ne for wave in plan["waves"] for ne in wave) == sorted(plan["hosts"]) and len(plan["hosts"]) == 8
    assert plan["password_env"] == "CHANGELINE_NE_PASSWORD" and plan["time_scale"] == 0.05
    paths = write_peer_inventories(plan, tmp_path / "peers")
    ansible = yaml.safe_load(paths["ansible_inventory"].read_text())["all"]
    batches = json.loads(paths["ansible_batches"].read_text())["serial_batches"]
    assert sum(batches) == 8 and list(ansible["hosts"])  # play order: the batches in turn
    assert "{{ lookup('ansible.builtin.env', 'CHANGELINE_NE_PASSWORD') }}" == ansible["vars"]["ansible_password"]
    nornir_hosts = yaml.safe_load((paths["nornir"] / "hosts.yaml").read_text())
    assert list(nornir_hosts) == [ne for wave in plan["waves"] for ne in wave]
    config = paths["ssh_config"].read_text()
    assert f"UserKnownHostsFile {plan['known_hosts']}" in config and "StrictHostKeyChecking yes" in config
    # the password is named (an environment variable, a template reading it), never written
    assert not any("password" in h or "password" in h["data"] for h in nornir_hosts.values())
    assert not any("password" in key for h in plan["hosts"].values() for key in h)
    assert not any("password" in key for h in ansible["hosts"].values() for key in h)


RECAP_LOG = """\
TASK [activate | switch version] ***
fatal: [smf-1]: FAILED! => {"changed": false, "msg": "Could not open socket"}
...ignoring
TASK [validate | version and no new alarms] ***
fatal: [upf-1]: FAILED! => {"changed": false, "msg": "running 1.2.0"}

PLAY RECAP *********************************************************************
amf-1                      : ok=54   changed=2    unreachable=0    failed=0    skipped=55   rescued=0    ignored=1
smf-1                      : ok=57   changed=2    unreachable=0    failed=0    skipped=52   rescued=0    ignored=1
upf-1                      : ok=50   changed=2    unreachable=0    failed=1    skipped=52   rescued=0    ignored=0
"""


def test_ansible_outcomes_from_the_recap():
    out = ansible_outcomes(RECAP_LOG)
    assert out["amf-1"]["status"] == out["smf-1"]["status"] == "done"  # an ignored fatal is no failure
    assert out["upf-1"] == {"status": "failed", "reason": '{"changed": false, "msg": "running 1.2.0"}'}
