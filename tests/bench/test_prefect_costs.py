"""bench/prefect_costs.py: its arithmetic (per-operation spread, the per-NE budget) and its
refusal of bad arguments before any server starts. The measurement itself needs a Prefect
server and minutes; it is run by hand (docs/performance.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import prefect_costs  # noqa: E402


def test_summary_is_per_operation_median_and_p95_over_batches():
    batches = [{"client_cpu_s": c / 1000, "server_cpu_s": s / 1000, "walls": [w / 1000] * 3}
               for c, s, w in ((1.0, 2.0, 10.0), (3.0, 4.0, 20.0), (2.0, 3.0, 30.0))]
    summary = prefect_costs.summarise(batches)
    assert summary["client_cpu_ms"] == {"median": 2.0, "p95": 3.0, "n": 3}
    assert summary["server_cpu_ms"]["median"] == 3.0
    assert summary["total_cpu_ms"]["median"] == 5.0
    assert summary["wall_ms"] == {"median": 20.0, "p95": 30.0, "n": 9}


def test_per_ne_budget_multiplies_counts_by_median_total_cost():
    costs = {"task_run": {"total_cpu_ms": {"median": 20.0}}, "log_line": {"total_cpu_ms": {"median": 0.5}}}
    budget = prefect_costs.per_ne_cpu_s(costs, {"task_run": 12, "log_line": 30})
    assert budget["by_primitive"]["task_run"] == {"per_ne": 12, "cpu_s": 0.24}
    assert budget["by_primitive"]["log_line"]["cpu_s"] == 0.015
    assert budget["total_cpu_s"] == 0.255


@pytest.mark.parametrize("args, says", [
    (["--only", "task_run,nonsense"], "unknown primitive(s) nonsense"),
    (["--only", "lock_renew"], "need lock_acquire"),
    (["--only", "artifact_update"], "needs artifact_create"),
    (["--ops", "0"], "must be at least 1"),
])
def test_bad_arguments_are_refused_by_name_without_a_server(args, says):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "prefect_costs.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
