"""The campaign benchmark end to end at a tiny size: every field present, values sane.

No timing thresholds (a shared 2-core machine): only what must hold on any machine, e.g.
that nothing beats the device-time limit and that every NE reached its target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # --peers named: a machine without a peer's tools fails here instead of skipping it quietly
    run = subprocess.run([sys.executable, str(REPO / "bench" / "campaign_bench.py"), "--nes", "4",
                          "--concurrency", "2", "--speed", "0.01", "--out-dir", str(out), "--profile",
                          "--peers", "nornir,ansible"],
                         capture_output=True, text=True, timeout=1740, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = run.stdout.strip()
    json_end = text.index("\n}\n") + 2  # the JSON, then the table, then the summary line
    printed = json.loads(text[:json_end])
    stored = json.loads((out / "campaign-n4-c2.json").read_text())
    assert printed == stored
    rest = text[json_end:].strip().splitlines()
    assert rest[-1] == stored["summary"]
    stored["_table"] = rest[:-1]
    return stored


def test_both_parts_changed_every_ne(result):
    for part in ("campaign", "baseline"):
        assert result[part]["counts"] == {"done": 4}, result[part]
        assert result[part]["steps_run"] == result["limit"]["steps_total"]
    assert result["baseline"]["prefect_imported"] is False


def test_limit_and_ratios(result):
    limit = result["limit"]
    assert limit["nes_eligible"] == 4 and limit["seconds"] > 0
    assert 0 < limit["ideal_dispatch_seconds"] <= limit["seconds"] <= limit["serial_device_seconds"]
    assert limit["critical_path"]["steps"] > 0 and limit["critical_path"]["path"]
    for part in ("campaign", "baseline"):  # nothing beats the device time
        assert result[part]["wall_s"] >= 0.95 * limit["seconds"], result[part]["wall_s"]
    ratios = result["ratios"]
    assert ratios["campaign_over_limit"] == pytest.approx(result["campaign"]["wall_s"] / limit["seconds"], rel=0.01)
    assert ratios["campaign_over_baseline"] == pytest.approx(
        result["campaign"]["wall_s"] / result["baseline"]["wall_s"], rel=0.01)


def test_engine_cost_and_overheads(result):
    campaign = result["campaign"]
    assert campaign["cpu_s"] > 0 and campaign["cpu_s_per_ne"] == pytest.approx(campaign["cpu_s"] / 4, abs=0.01)
    overhead = result["overhead"]
    for key in ("per_step_ms_critical_path", "per_step_ms_amortised", "engine_cpu_ms_per_step_over_baseline"):
        assert isinstance(overhead[key], float)
    assert overhead["prefect_task_ms"]["n"] == result["limit"]["steps_total"]
    assert overhead["prefect_task_ms"]["mean"] > 0
    for key in ("ne_and_pool_lock_acquire", "subflow_start", "subflow_end", "total_outside_steps"):
        assert overhead["prefect_per_ne_ms"][key]["n"] == 4
    profile = campaign["profile"]
    assert profile["samples"] > 0 and profile["by_activity_pct"]
    assert profile["device_pct"] + profile["engine_pct"] == pytest.approx(100, abs=0.2)


def test_memory_of_every_process(result):
    memory = result["memory_peak_rss_mb"]
    for role in ("engine_mb", "server_mb", "simulator_mb"):
        assert 10 < memory["campaign"][role] < 4096, memory
    assert memory["campaign"]["total_mb"] >= max(memory["campaign"][r] for r in ("engine_mb", "server_mb", "simulator_mb"))
    assert 10 < memory["baseline"]["engine_mb"] < 4096


def test_server_recorded_every_run(result):
    recording = result["server_recording"]
    # one task run per step, one per subflow call, one per wave; flow runs: the campaign and one per NE
    assert recording["expected_task_runs"] == result["limit"]["steps_total"] + 4 + len(result["limit"]["waves"])
    assert recording["expected_flow_runs"] == 5
    assert recording["all_recorded"] is True
    assert recording["final"]["task_runs_final"] == recording["expected_task_runs"]
    assert recording["seconds_until_all_recorded"] >= 0
    assert 0 <= recording["at_end"]["task_runs_final"] <= recording["expected_task_runs"]


def test_peers_changed_every_ne(result):
    """Each peer ran on its own simulator, and every NE was read back over NETCONF on the target
    version afterwards (by the bench, not taken from the peer's word)."""
    for name in ("nornir", "ansible"):
        peer = result["peers"][name]
        assert peer["returncode"] == 0, (name, peer["failures"])
        assert peer["counts"] == {"done": 4}, (name, peer)
        assert peer["nes_at_target_read_back"] == 4 and peer["versions_read_back"] == {"1.3.0": 4}, peer
        assert peer["wall_s"] >= 0.95 * result["limit"]["seconds"]  # nothing beats the device time
        assert set(peer["lacks"]) == {"resume", "rollback", "windows", "ui"}
        ratios = result["ratios"]
        assert ratios[f"campaign_over_{name}"] == pytest.approx(result["campaign"]["wall_s"] / peer["wall_s"], rel=0.01)
        assert ratios[f"{name}_over_limit"] == pytest.approx(peer["wall_s"] / result["limit"]["seconds"], rel=0.01)
    # Ansible's NETCONF sessions live in detached ansible-connection daemons: their CPU is counted
    assert result["peers"]["ansible"]["cpu_s_detached"] > 0


def test_cpu_per_ne_of_every_process(result):
    cpu = result["cpu_s_per_ne"]
    assert set(cpu) == {"baseline", "campaign", "nornir", "ansible"}
    for part in ("campaign", "baseline", "nornir", "ansible"):
        assert cpu[part]["engine"] > 0 and cpu[part]["simulator"] > 0, cpu
        assert cpu[part]["total"] >= cpu[part]["engine"] + cpu[part]["simulator"] - 0.002
    assert cpu["campaign"]["server"] > 0
    assert cpu["campaign"]["engine"] == pytest.approx(result["campaign"]["cpu_s"] / 4, abs=0.01)
    table = "\n".join(result["_table"])
    for part in ("limit", "baseline", "campaign", "nornir", "ansible"):
        assert any(line.startswith(part) for line in result["_table"]), table
    assert "resume, rollback, windows, ui" in table
