"""What the operator's console says, as pure decisions: run state names and messages, the
board's order, the prefilled rollback link, and the live probe's counting."""

from __future__ import annotations

import json
import urllib.parse

from changeline.flows import progress
from changeline.flows.probe import ServiceProbe


def ne(name: str, status: str, reason: str = "", steps: list | None = None) -> dict:
    return {"ne": name, "status": status, "reason": reason, "steps": steps or []}


DEMO_LIKE = [ne(f"amf-{i}", "done", "reached target") for i in range(1, 11)] + [
    ne("upf-2", "rolled-back", "rolled back after dial-test: no answer from the service",
       [{"name": "dial-test", "status": "failed"}]),
    ne("nrf-1", "deferred", "deferred to the next window: 10 min left, 25 needed"),
    ne("scscf-9", "ineligible", "type S-CSCF is not targeted")]


def test_the_campaign_message_counts_outcomes_and_names_the_rolled_back_ne():
    assert progress.outcome_message(DEMO_LIKE) == (
        "10 at target, 1 rolled back (upf-2: dial-test: no answer from the service), 1 deferred, "
        "1 not targeted (ineligible)")


def test_completed_only_when_every_targeted_ne_reached_its_target():
    assert progress.campaign_state_name(DEMO_LIKE) == ("COMPLETED", "Completed with rollbacks")
    assert progress.campaign_state_name(DEMO_LIKE[:10] + DEMO_LIKE[-1:]) == ("COMPLETED", "Completed")
    assert progress.campaign_state_name(DEMO_LIKE[:10] + [ne("x", "deferred")]) == ("COMPLETED", "Partly completed")
    assert progress.campaign_state_name(DEMO_LIKE + [ne("y", "rollback-failed")]) == ("FAILED", "Failed")
    assert progress.campaign_state_name(DEMO_LIKE[-1:]) == ("COMPLETED", "Nothing to do")


def test_each_ne_run_state_is_named_for_its_outcome():
    assert progress.ne_state_name("rolled-back") == ("FAILED", "Rolled back")
    assert progress.ne_state_name("deferred") == ("CANCELLED", "Deferred")
    assert progress.ne_state_name("skipped") == ("CANCELLED", "Skipped")
    assert progress.ne_state_name("done") == ("COMPLETED", "Completed")


def test_the_board_groups_by_wave_with_anomalies_first():
    rows = progress.board_rows({"canary": ["amf-1"], "rest": ["amf-2", "upf-2", "nrf-1", "amf-3"]},
                               {n["ne"]: n for n in DEMO_LIKE if n["ne"] in ("amf-1", "amf-2", "upf-2")},
                               {"nrf-1": ("running", "step install-image")}, {"upf-2": "http://ui/runs/flow-run/1"})
    assert [(r["wave"], r["ne"], r["state"]) for r in rows] == [
        ("canary", "amf-1", "done"), ("rest", "upf-2", "rolled-back"), ("rest", "nrf-1", "running"),
        ("rest", "amf-3", "waiting"), ("rest", "amf-2", "done")]
    assert rows[1]["step"] == "dial-test" and rows[1]["run"] == "http://ui/runs/flow-run/1"
    assert rows[2]["step"] == "install-image"
    board = progress.board_markdown("c1", rows, rollback_links={"upf-2": "http://ui/rb"}, campaign_rollback="")
    first = next(line for line in board.splitlines() if line.startswith("- **"))
    assert first.startswith("- **upf-2** rolled-back at `dial-test`") and "[Roll back upf-2](http://ui/rb)" in first


def test_the_rollback_link_carries_the_campaign_ne_and_inventory_as_json():
    url = progress.rollback_run_url("http://127.0.0.1:4200/v2", "dep-1",
                                    progress.rollback_parameters("c1", "/inv/inventory.yaml", ["upf-2"]))
    base, query = url.split("?")
    assert base == "http://127.0.0.1:4200/v2/deployments/deployment/dep-1/run"
    assert json.loads(urllib.parse.parse_qs(query)["parameters"][0]) == {
        "campaign_id": "c1", "inventory": "/inv/inventory.yaml", "nes": ["upf-2"]}
    # Log lines are made links up to the first blank, quote or bracket: the address has none.
    assert not set(url) & set(' "()[]{}<>\'')


def test_the_live_probe_counts_each_service_over_the_seconds_it_covered():
    now = [100.0]
    failing = {"upf-2"}
    probe = ServiceProbe(["amf-pool", "upf-2"], call=lambda s: "no answer" if s in failing else None,
                         clock=lambda: now[0])
    probe.started = now[0]
    probe.probe_once()
    failing.clear()
    probe.probe_once()
    now[0] = 102.0
    probe.ended = now[0]
    snap = probe.snapshot()
    assert snap["pools"] == {"amf-pool": {"attempted": 2, "failed": 0}, "upf-2": {"attempted": 2, "failed": 1}}
    assert snap["basis"] == ("real-time probe calls, one every 1 s to each of 2 service(s), "
                             "over 2 real seconds of the campaign")
    assert "upf-2 1/2 (last: no answer)" in probe.markdown()


def test_a_probe_whose_own_path_fails_counts_a_failed_call():
    def broken(service):
        raise OSError("control interface down")

    probe = ServiceProbe(["amf-pool"], call=broken)
    probe.probe_once()
    assert probe.counts["amf-pool"].failed == 1 and "control interface down" in probe.counts["amf-pool"].last_failure
