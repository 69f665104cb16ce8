"""The console with `ne_run=task` (CHANGELINE_NE_RUN=task), in headless Chromium after a demo
campaign with one injected fault: each NE is a task run of the campaign's run, named after it,
ending in a state named for its outcome, its steps nested in it; the board links each NE to its
task run. What the console loses against `ne_run=flow` (a page per NE listing its steps; the
runs list's flow-run filter by wave) is in docs/performance.md.

Screenshots go to test-output/screenshots/ (task-console-*.png).
"""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import env_setting, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture(scope="module")
def ne_runs_as_tasks():
    with env_setting("CHANGELINE_NE_RUN", "task"):
        yield


@pytest.fixture(scope="module")
def demo_run(ne_runs_as_tasks, demo_run):
    """The package's demo campaign, run with each NE as a task run."""
    return demo_run


def campaign_run_id(demo_run) -> str:
    return demo_run.flow_run_url.rstrip("/").rsplit("/", 1)[-1]


def steps_of(demo_run, ne: str) -> list[str]:
    return [s["name"] for s in demo_run.summary["nes"][ne]["steps"] if s["status"] != "skipped"]


def task_runs(api, flow_run_id: str, names: list[str]) -> dict[str, dict]:
    found = api.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}},
                                           "task_runs": {"name": {"any_": names}}, "limit": 200})
    return {r["name"]: r for r in found}


def test_each_ne_is_a_named_task_run_with_its_steps_nested(demo_run, api, page):
    assert demo_run.ok, demo_run.unexpected
    parent = campaign_run_id(demo_run)
    faulty = demo_run.faulty_ne
    nes = sorted(demo_run.summary["nes"])
    assert api.children(parent) == []  # no flow run per NE
    runs = task_runs(api, parent, nes)
    assert sorted(runs) == nes
    for ne in nes:
        want = ("FAILED", "Rolled back") if ne == faulty else ("COMPLETED", "Completed")
        assert (runs[ne]["state"]["type"], runs[ne]["state"]["name"]) == want, (ne, runs[ne]["state"])
        assert f"campaign:{demo_run.campaign_id}" in runs[ne]["tags"]
    steps = task_runs(api, parent, [f"{faulty} {s}" for s in ("precheck", "dial-test", "rollback")])
    assert len(steps) == 3, sorted(steps)
    for run in steps.values():
        assert [p["id"] for p in run["task_inputs"]["__parents__"]] == [runs[faulty]["id"]], run["name"]
    assert [steps[f"{faulty} {s}"]["state"]["name"] for s in ("precheck", "dial-test", "rollback")] == \
        ["Completed", "Failed", "Completed"]

    # The faulty NE's task run page: its named state, and the reason in its log (a task run's
    # page has no state-message field).
    page.goto(f"{demo_run.ui_url}/v2/runs/task-run/{runs[faulty]['id']}")
    page.get_by_text("Rolled back").first.wait_for()
    page.get_by_text(re.compile(r"Finished in state Rolled back\('rolled back after dial-test")).first.wait_for()
    assert f"wave:{demo_run.campaign_id}/" in page.inner_text("main")
    screenshot(page, "task-console-01-faulty-ne-task-run", full_page=True)

    # The campaign run's task runs, searched for the faulty NE: the NE and its steps.
    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{parent}?tab=TaskRuns")
    page.get_by_placeholder(re.compile("Search", re.I)).first.fill(faulty)
    # Searched (the list shows the filtered runs after a moment): the NE, each step, its rollback.
    for name in [faulty] + [f"{faulty} {s}" for s in steps_of(demo_run, faulty)] + [f"{faulty} rollback"]:
        page.get_by_text(name, exact=True).first.wait_for()
    page.get_by_text("Rolled back", exact=True).first.wait_for()
    screenshot(page, "task-console-03-campaign-task-runs-searched", full_page=True)

    # The campaign run's graph (the NE's steps drawn inside its node).
    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{parent}")
    page.get_by_text("Completed with rollbacks").first.wait_for()
    page.locator("canvas").first.wait_for()
    screenshot(page, "task-console-04-campaign-run-graph", full_page=True)


def test_the_board_links_each_ne_to_its_task_run(demo_run, api, page):
    faulty = demo_run.faulty_ne
    runs = task_runs(api, campaign_run_id(demo_run), [faulty])
    board = api.latest_artifact(f"campaign-{demo_run.campaign_id}-board")
    page.goto(f"{demo_run.ui_url}/v2/artifacts/artifact/{board['latest_id']}")
    row = page.locator("tr", has=page.get_by_text(faulty, exact=True)).first
    row.wait_for()
    link = row.get_by_role("link", name="run")
    assert link.get_attribute("href").endswith(f"/runs/task-run/{runs[faulty]['id']}")
    screenshot(page, "task-console-05-board")
    link.click()
    page.wait_for_url(re.compile(r"/runs/task-run/"))
    page.get_by_text("Rolled back").first.wait_for()
    screenshot(page, "task-console-06-board-to-task-run", full_page=True)
