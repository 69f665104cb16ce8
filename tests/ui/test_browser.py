"""What an operator sees, in headless Chromium: a finished demo campaign in the Prefect UI
(the campaign run, its per-NE runs and their steps, the NE table artifact), the HTML
report's timeline, and the pause form of an anomaly, answered from the browser.

Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.slow]

STEPS = ("precheck", "backup", "install-image", "activate", "dial-test", "validate")


def ui(demo_run) -> str:
    return demo_run.ui_url


def campaign_run_id(demo_run) -> str:
    return demo_run.flow_run_url.rstrip("/").rsplit("/", 1)[-1]


def test_campaign_run_shows_every_ne_run_and_the_steps(demo_run, api, page):
    nes = sorted(demo_run.summary["nes"])
    assert demo_run.ok, demo_run.unexpected
    page.goto(f"{ui(demo_run)}/v2/runs/flow-run/{campaign_run_id(demo_run)}?tab=SubflowRuns")
    page.get_by_text(f"{len(nes)} Subflow runs").wait_for()
    page.get_by_text(demo_run.campaign_id, exact=True).first.wait_for()
    page.get_by_text("Completed").first.wait_for()
    for ne in nes:  # the per-NE runs are named after their NE (the list renders after its count)
        page.get_by_role("link", name=ne, exact=True).wait_for()
    screenshot(page, "01-campaign-subflow-runs", full_page=True)

    # From the list to the faulty NE's run: its steps, the failed dial test and the rollback.
    faulty = demo_run.faulty_ne
    page.get_by_role("link", name=faulty, exact=True).click()
    page.wait_for_url(re.compile(r"/runs/flow-run/"))
    page.get_by_role("tab", name="Task Runs").click()
    page.wait_for_url(re.compile(r"tab=TaskRuns"))
    page.get_by_text("rollback").first.wait_for()  # the last step: the list is there
    body = page.inner_text("main")
    for step in STEPS[:-1] + ("rollback",):
        assert step in body, f"{step} not in {faulty}'s task runs"
    assert "Failed" in body  # the dial test
    screenshot(page, "02-faulty-ne-task-runs", full_page=True)

    # A healthy NE ran every step.
    healthy = next(n for n in nes if n != faulty)
    run = next(r for r in api.children(campaign_run_id(demo_run)) if r["name"] == healthy)
    page.goto(f"{ui(demo_run)}/v2/runs/flow-run/{run['id']}?tab=TaskRuns")
    page.get_by_text("validate").first.wait_for()
    body = page.inner_text("main")
    for step in STEPS:
        assert step in body, f"{step} not in {healthy}'s task runs"
    screenshot(page, "03-healthy-ne-task-runs", full_page=True)

    # The address the demo prints opens the same run.
    page.goto(demo_run.flow_run_url)
    page.get_by_text(demo_run.campaign_id).first.wait_for()


def test_campaign_artifacts_show_every_ne_and_its_state(demo_run, api, page):
    key = f"campaign-{demo_run.campaign_id}-board"
    page.goto(f"{ui(demo_run)}/v2/runs/flow-run/{campaign_run_id(demo_run)}?tab=Artifacts")
    for what in ("board", "summary", "progress"):
        page.get_by_text(f"campaign-{demo_run.campaign_id}-{what}").first.wait_for()
    page.get_by_text(key).first.scroll_into_view_if_needed()
    screenshot(page, "04-campaign-artifacts")

    page.goto(f"{ui(demo_run)}/v2/artifacts/artifact/{api.latest_artifact(key)['latest_id']}")
    tables = page.locator("table")
    page.get_by_role("cell", name=demo_run.faulty_ne, exact=True).first.wait_for()
    # The UI renders the Markdown after the first cell can already be found: wait for each row
    # (expect retries until it holds; its timeout only bounds a hang), never count once.
    for ne, out in demo_run.summary["nes"].items():
        row = tables.locator("tr", has=page.get_by_text(ne, exact=True))
        expect(row, ne).to_have_count(1, timeout=60_000)
        expect(row.locator("td").nth(1), ne).to_have_text(out["status"], timeout=60_000)
    assert demo_run.summary["nes"][demo_run.faulty_ne]["status"] == "rolled-back"
    screenshot(page, "05-ne-board-artifact")


def test_report_timeline_renders_one_row_per_ne(demo_run, browser, page):
    tried_before = len(browser.blocked)
    page.goto(demo_run.report.as_uri())
    timeline = page.locator("svg#timeline")
    timeline.wait_for()
    rows = page.locator("#timeline g.ne-row")
    assert rows.count() == len(demo_run.summary["nes"])
    assert sorted(rows.nth(i).get_attribute("data-ne") for i in range(rows.count())) == sorted(demo_run.summary["nes"])
    box = timeline.bounding_box()
    assert box and box["width"] > 400 and box["height"] > rows.count() * 10
    for i in range(rows.count()):
        row_box = rows.nth(i).bounding_box()
        assert row_box and row_box["width"] > 0 and row_box["height"] > 0
    faulty_row = page.locator(f'#timeline g.ne-row[data-ne="{demo_run.faulty_ne}"]')
    assert faulty_row.get_attribute("data-status") == "rolled-back"
    # The pools' probe calls the demo measured are in the figures.
    assert "probe calls" in page.locator("#fig-disruption").inner_text()
    assert len(browser.blocked) == tried_before  # the report fetches nothing
    timeline.scroll_into_view_if_needed()
    screenshot(page, "06-report-timeline")
    screenshot(page, "07-report-full", full_page=True)


def test_operator_answers_the_anomaly_pause_form_in_the_browser(demo_run, api, page):
    """The faulty NE was rolled back and still carries its fault: run it again with the pause
    policy, open the paused run's Resume form, read the anomaly and choose rollback."""
    from changeline.demo import upgrade_models
    from changeline.flows import stores
    from changeline.flows.campaign import campaign
    from prefect.flow_runs import resume_flow_run

    ne = demo_run.faulty_ne
    ne_type = demo_run.summary["nes"][ne]["ne_type"]
    model = next(m for m in upgrade_models() if f"/{ne_type.lower()}/" in m)
    campaign_id = f"{demo_run.campaign_id}-pause"
    comment = "calls fail after the upgrade; back out (answered in the browser)"
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(campaign(
        models=[model], inventory=str(demo_run.state_dir / "inventory.yaml"), targets=ne, campaign_id=campaign_id,
        params={"image_repo": str(stores.home() / "images")}, on_anomaly="pause", pause_timeout_s=180)), daemon=True)
    runner.start()
    paused = None
    try:
        deadline = time.monotonic() + 120
        while paused is None:
            assert runner.is_alive() and time.monotonic() < deadline, f"{ne} never paused: {result}"
            parents = api.runs_named(campaign_id)
            children = api.children(parents[0]["id"], "PAUSED") if parents else []
            paused = children[0] if children else None
            time.sleep(0.5)
        page.goto(f"{ui(demo_run)}/v2/runs/flow-run/{paused['id']}")
        page.get_by_text("Paused").first.wait_for()
        page.get_by_role("button", name="Open menu").click()
        page.get_by_role("menuitem", name="Resume").click()
        form = page.get_by_role("dialog")
        # The form's description and fields arrive after the dialog opens.
        form.get_by_text(f"Anomaly on {ne}").wait_for()
        form.get_by_label("Comment (Optional)").wait_for()
        text = form.inner_text()
        assert f"Anomaly on {ne} ({ne_type}) at step dial-test" in text, text
        assert "no answer from the service after the upgrade" in text
        assert "rollback" in text and "Comment" in text
        screenshot(page, "08-pause-form")
        form.get_by_label("Comment (Optional)").fill(comment)
        screenshot(page, "09-pause-form-answered")
        # Wait in the browser, not in Python: requests pass the route filter only while
        # playwright is being driven.
        with page.expect_response(lambda r: r.url.endswith("/resume") and r.request.method == "POST") as answer:
            form.get_by_role("button", name="Resume").click()
        assert answer.value.ok, answer.value.text()
        runner.join(120)
        assert not runner.is_alive(), "the campaign did not finish after the answer"
    finally:
        if runner.is_alive() and paused is not None:  # the browser failed: answer from code so nothing hangs
            try:
                resume_flow_run(paused["id"], run_input={"action": "rollback", "comment": "test cleanup"})
            finally:
                runner.join(60)
    out = result["nes"][ne]
    assert out["status"] == "rolled-back", out
    assert out["decisions"] == [{"step": "dial-test", "action": "rollback", "comment": comment, "by": "operator",
                                 "waited_s": out["decisions"][0]["waited_s"]}]
