"""The Prefect UI as the operator's console, in headless Chromium after a demo campaign with
one injected fault: truthful run states, the live board (one artifact per campaign, the faulty
NE first), runs filtered by a wave tag, and the one-click rollback - from the campaign run's
page, two clicks and the form's confirmation start it; the NE is then read over NETCONF.

Screenshots go to test-output/screenshots/ (console-*.png).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse

import pytest

from tests.ui.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.prefect, pytest.mark.slow]


def campaign_run_id(demo_run) -> str:
    return demo_run.flow_run_url.rstrip("/").rsplit("/", 1)[-1]


def child(api, demo_run, ne) -> dict:
    return next(r for r in api.children(campaign_run_id(demo_run)) if r["name"] == ne)


def test_campaign_and_ne_runs_say_what_happened(demo_run, api, page):
    faulty = demo_run.faulty_ne
    run = api.flow_runs(id={"any_": [campaign_run_id(demo_run)]})[0]
    assert run["state"]["name"] == "Completed with rollbacks", run["state"]
    assert f"1 rolled back ({faulty}: dial-test" in run["state"]["message"], run["state"]["message"]
    assert run["state"]["message"].startswith(f"{len(demo_run.summary['nes']) - 1} at target")
    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{run['id']}?tab=Details")
    page.get_by_text("Completed with rollbacks").first.wait_for()
    page.get_by_text(run["state"]["message"]).first.wait_for()  # Details: "State Message"
    screenshot(page, "console-01-campaign-run", full_page=True)

    ne_run = child(api, demo_run, faulty)
    assert ne_run["state"]["name"] == "Rolled back" and ne_run["state_type"] == "FAILED", ne_run["state"]
    assert "dial-test" in ne_run["state"]["message"] and "rolled back after" in ne_run["state"]["message"]
    wave = next(t for t in ne_run["tags"] if t.startswith("wave:"))
    assert {f"campaign:{demo_run.campaign_id}", f"ne-type:{demo_run.summary['nes'][faulty]['ne_type']}"} \
        <= set(ne_run["tags"])
    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{ne_run['id']}?tab=Details")
    page.get_by_text("Rolled back").first.wait_for()
    page.get_by_text(ne_run["state"]["message"]).first.wait_for()
    body = page.inner_text("main")
    assert wave in body
    screenshot(page, "console-02-faulty-ne-run", full_page=True)

    # A handled anomaly logs its reason, not a traceback.
    logs = api.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [ne_run["id"]]}}, "limit": 200})
    assert logs and not [entry for entry in logs if "Traceback" in entry["message"]], \
        [entry["message"][:200] for entry in logs if "Traceback" in entry["message"]]

    # The runs list, filtered by the faulty NE's wave tag, lists exactly that wave's NE runs.
    assert wave.startswith(f"wave:{demo_run.campaign_id}/")
    in_wave = sorted(r["name"] for r in api.flow_runs(tags={"all_": [wave]}))
    assert faulty in in_wave and len(in_wave) < len(demo_run.summary["nes"])
    page.goto(f"{demo_run.ui_url}/v2/runs?{urllib.parse.urlencode({'tags': wave})}")
    page.get_by_role("link", name=faulty, exact=True).wait_for()
    for ne in demo_run.summary["nes"]:
        shown = page.get_by_role("link", name=ne, exact=True).count()
        assert bool(shown) == (ne in in_wave), (ne, in_wave)
    screenshot(page, "console-03-runs-by-wave-tag", full_page=True)

    # Each wave is a task run of the campaign, ended with its counts.
    waves = {t.rsplit("/", 1)[1] for r in api.children(run["id"]) for t in r["tags"] if t.startswith("wave:")}
    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{run['id']}?tab=TaskRuns")
    for name in waves:
        page.get_by_text(re.compile(f"^wave {re.escape(name)} \\(\\d+ NEs\\)")).first.wait_for()
    screenshot(page, "console-09-campaign-wave-task-runs", full_page=True)


def test_board_is_one_artifact_per_campaign_with_the_faulty_ne_first(demo_run, api, page):
    key = f"campaign-{demo_run.campaign_id}-board"
    versions = api.post("/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}})
    assert len(versions) == 1, f"{len(versions)} versions of {key}"
    board = versions[0]["data"]
    first_row = next(line for line in board.splitlines() if line.startswith("- **"))
    assert first_row.startswith(f"- **{demo_run.faulty_ne}** rolled-back"), first_row
    page.goto(f"{demo_run.ui_url}/v2/artifacts/artifact/{versions[0]['id']}")
    page.get_by_role("heading", name="Needs attention").wait_for()
    page.get_by_role("link", name=f"Roll back {demo_run.faulty_ne}").first.wait_for()
    screenshot(page, "console-04-board", full_page=True)


def test_one_click_rollback_from_the_campaign_run_page(demo_run, api, page):
    from changeline.devices import ne_api
    from changeline.devices.inventory import load_inventory
    from changeline.devices.session import DeviceSession, Endpoint

    faulty = demo_run.faulty_ne
    # The address the demo prints opens the run on its log, whose last lines are the anomalies
    # with their prefilled rollback links (the UI makes addresses in log lines links).
    page.goto(demo_run.flow_run_url)
    page.get_by_text("Completed with rollbacks").first.wait_for()
    page.get_by_text(re.compile(f"^{re.escape(faulty)} rolled-back: .* one-click rollback")).first.wait_for()
    # The link of the faulty NE's line: its parameters name that NE (URL-encoded JSON).
    nes = urllib.parse.quote(json.dumps({"nes": [faulty]}, separators=(",", ":"))[1:-1], safe="")
    link = page.get_by_role("link", name=re.compile(re.escape(nes))).first
    link.wait_for()
    link.scroll_into_view_if_needed()
    screenshot(page, "console-05-campaign-run-log")
    clicks = 0
    with page.context.expect_page() as opened:  # the UI opens log links in a new tab
        link.click()
    clicks += 1
    page = opened.value
    page.set_default_timeout(30_000)
    page.wait_for_url(re.compile(r"/deployments/deployment/[^/]+/run"))
    # The custom-run form arrives filled in: campaign, NE, inventory.
    page.get_by_role("button", name="Submit").wait_for()
    screenshot(page, "console-06-rollback-form", full_page=True)
    # Form fields hold their values as properties, not in the page's HTML.
    values = "() => [...document.querySelectorAll('input, textarea')].map(e => e.value).join(' | ')"
    try:
        page.wait_for_function(f"({values})().includes({json.dumps(demo_run.campaign_id)})", timeout=15_000)
    finally:
        screenshot(page, "console-06-rollback-form", full_page=True)
    shown = page.evaluate(values)
    assert demo_run.campaign_id in shown and faulty in shown and "inventory.yaml" in shown, shown
    # Wait in the browser, not in Python: its requests pass the route filter only while
    # playwright is being driven.
    with page.expect_response(lambda r: r.url.endswith("/create_flow_run") and r.request.method == "POST") as made:
        page.get_by_role("button", name="Submit").click()  # the confirmation
    assert clicks <= 2  # one here, plus the confirmation
    assert made.value.ok, made.value.text()
    run_id = made.value.json()["id"]

    deadline = time.monotonic() + 180
    while True:  # the served rollback deployment (a process the demo left running) picks it up
        run = api.flow_runs(id={"any_": [run_id]})[0]
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        assert time.monotonic() < deadline, f"the rollback run did not finish: {run['state']}"
        time.sleep(1)
    assert run["parameters"]["nes"] == [faulty] and run["parameters"]["campaign_id"] == demo_run.campaign_id
    assert run["state"]["name"] == "Rolled back", run["state"]
    message = run["state"]["message"]
    assert f"{faulty}: " in message and "undone earlier" in message and "running version 1.2.0" in message, message
    assert "byte-identical" in message

    host = load_inventory(demo_run.state_dir / "inventory.yaml").hosts[faulty]
    with DeviceSession(Endpoint.from_host(host)) as session:
        assert ne_api.read_state(session).running_version == "1.2.0"

    # The rollback run's page: its state message says what was undone and verified...
    page.goto(f"{demo_run.ui_url}/v2/runs/flow-run/{run['id']}?tab=Details")
    page.get_by_text("Rolled back").first.wait_for()
    page.get_by_text(message).first.wait_for()
    screenshot(page, "console-07-rollback-run", full_page=True)
    # ...and its artifact, one card on the run's Artifacts tab, lists it step by step.
    page.get_by_role("tab", name="Artifacts").click()
    artifact = api.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})[0]
    assert artifact["key"] == f"rollback-{demo_run.campaign_id}"
    page.get_by_text(artifact["key"]).first.wait_for()
    page.goto(f"{demo_run.ui_url}/v2/artifacts/artifact/{artifact['id']}")
    page.get_by_role("heading", name="Verification").wait_for()
    text = page.inner_text("main")
    assert "undone earlier" in text and "running version 1.2.0" in text and "byte-identical" in text, text[:2000]
    screenshot(page, "console-08-rollback-artifact", full_page=True)

    # The campaign's summary says what the rollback run did.
    summary = api.latest_artifact(f"campaign-{demo_run.campaign_id}-summary")
    assert f"Rollback run {run['name']}" in summary["data"] and faulty in summary["data"], summary["data"][:800]
