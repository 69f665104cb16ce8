"""The console with `step_runs=stage` (CHANGELINE_STEP_RUNS=stage), in headless Chromium after a
demo campaign with one injected fault: each NE's page lists its model stages as task runs (the
faulty NE's verify stage Failed, naming the step and its reason, then its rollback), and the
failed stage's page shows the failed step's line.

Screenshots go to test-output/screenshots/ (stage-console-*.png).
"""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import env_setting, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.slow]

STAGES = ("prepare", "stage-software", "activate", "verify")


@pytest.fixture(scope="module")
def steps_as_stage_runs():
    with env_setting("CHANGELINE_STEP_RUNS", "stage"):
        yield


@pytest.fixture(scope="module")
def demo_run(steps_as_stage_runs, demo_run):
    """The package's demo campaign, run with a task run per stage."""
    return demo_run


def test_an_ne_page_lists_its_stages_and_the_failed_stage_names_its_step(demo_run, api, page):
    assert demo_run.ok, demo_run.unexpected
    parent = demo_run.flow_run_url.rstrip("/").rsplit("/", 1)[-1]
    faulty = demo_run.faulty_ne
    run = next(r for r in api.children(parent) if r["name"] == faulty)
    stages = {r["name"]: r for r in api.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}},
                                                                    "limit": 50})}
    assert sorted(stages) == sorted([*STAGES, "rollback"]), sorted(stages)
    verify = stages["verify"]
    assert verify["state"]["type"] == "FAILED" and verify["state"]["message"].startswith("dial-test: "), verify["state"]
    assert {stages[s]["state"]["name"] for s in STAGES if s != "verify"} == {"Completed"}

    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{run['id']}?tab=TaskRuns")
    page.get_by_text("rollback").first.wait_for()
    body = page.inner_text("main")
    for name in STAGES + ("rollback",):
        assert name in body, f"{name} not in {faulty}'s task runs"
    assert "Failed" in body
    screenshot(page, "stage-console-01-faulty-ne-stages", full_page=True)

    # The failed stage's page: the failed step's line in its logs (the suite ships Prefect's
    # WARNING lines only, tests/conftest.py; the steps' INFO lines are checked in
    # tests/flows/test_stage_runs.py).
    page.goto(f"{demo_run.ui_url}/v2/runs/task-run/{verify['id']}")
    page.get_by_text(re.compile(r"dial-test \(dial_test\) failed: ")).first.wait_for()
    screenshot(page, "stage-console-02-verify-stage-logs", full_page=True)
