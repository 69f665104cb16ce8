"""The whole report from a sample run on disk: figures, HTML, JSON and evidence packs."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import fields

import pytest

from changeline.state.journal import Journal
from changeline.errors import InputError
from changeline.engine.outcomes import NEOutcome, StepOutcome
from changeline.reports import records
from changeline.reports.build import build_campaign_report, campaign_report
from tests.reports.sample_run import CAMPAIGN, DECISION_COMMENT, OPERATOR_WAIT_S, PROBES, make_run

NES = ["amf-1", "nrf-1", "smf-1", "upf-1"]
# amf-1 ran 11 steps (215 manual minutes) and reached target; smf-1 ran 7 and failed its 8th (150
# manual minutes) and was rolled back: its work saved nobody anything and is not counted.
MANUAL_MINUTES = 215


def test_records_read_outcomes_in_the_flow_dataclasses_shape():
    short = records.normalised({"ne": "upf-9", "status": "deferred", "reason": "window"})
    assert set(short) == {f.name for f in fields(NEOutcome)}
    step = records.normalised({"ne": "upf-9", "steps": [{"name": "precheck", "status": "done"}]})["steps"][0]
    assert set(step) == {f.name for f in fields(StepOutcome)}


def test_report_paths_and_default_location(sample, home):
    paths = build_campaign_report(CAMPAIGN)
    report_dir = home / "runs" / CAMPAIGN / "report"
    assert paths.html == report_dir / "report.html" and paths.json == report_dir / "report.json"
    assert paths.evidence_dir == report_dir / "evidence"
    assert paths.html.is_file() and paths.json.is_file()


def test_figures_are_computed_from_the_run(sample):
    data = json.loads(build_campaign_report(CAMPAIGN, probes=PROBES).json.read_text())
    fig = data["figures"]
    # Per NE: of amf-1, smf-1 and upf-1 (nrf-1 was not targeted) only amf-1 reached its target.
    assert fig["automation"] == {"executed_steps": 19, "unattended_steps": 18, "failed_steps": 1,
                                 "operator_steps": 1, "rate": pytest.approx(18 / 19),
                                 "targeted_nes": 3, "unattended_nes": 1, "ne_rate": pytest.approx(1 / 3)}
    assert fig["effort"]["executed_steps"] == 11 and fig["effort"]["counted_nes"] == 1
    assert fig["effort"]["manual_hours"] == pytest.approx(MANUAL_MINUTES / 60, abs=1e-3)
    assert fig["effort"]["operator_hours"] == pytest.approx(OPERATOR_WAIT_S / 3600, abs=1e-3)
    assert fig["effort"]["saved_hours"] == pytest.approx(MANUAL_MINUTES / 60 - OPERATOR_WAIT_S / 3600, abs=1e-3)
    assert fig["disruption"]["measured"] and (fig["disruption"]["attempted"], fig["disruption"]["failed"]) == (21000, 27)
    assert fig["service_checks"] == {"dial_scenarios_run": 8, "dial_scenarios_passed": 7, "billing_checks_run": 1,
                                     "billing_checks_passed": 1, "cdr_records": 1}
    assert data["counts"] == {"rolled-back": 1, "done": 1, "deferred": 1, "ineligible": 1}


def test_html_draws_the_timeline_one_row_per_ne_and_the_figures(sample):
    html = build_campaign_report(CAMPAIGN, probes=PROBES).html.read_text()
    svg = re.search(r'<svg id="timeline".*?</svg>', html, re.S).group(0)
    assert sorted(re.findall(r'<g class="ne-row" data-ne="([^"]+)"', svg)) == NES
    assert svg.count('class="ne-row"') == 4
    assert 'class="bar rollback rollback-ok"' in svg and 'class="bar step failed"' in svg
    assert 'class="bar wait wait"' in svg
    for element_id in ('id="summary"', 'id="figures"', 'id="fig-automation"', 'id="fig-effort"',
                       'id="fig-disruption"', 'id="anomalies"', 'id="rollbacks"', 'id="not-changed"',
                       'id="ne-smf-1"'):
        assert element_id in html
    assert "94.7%" in html                       # 18 of 19
    assert "27 of 21000 probe calls failed" in html
    assert DECISION_COMMENT in html and "by operator" in html
    assert "window ends in 240 s" in html         # the deferred NE's reason
    assert "NE type NRF is not one of AMF, SMF, UPF" in html
    assert "CHG-amf-1-0001" in html               # charging id and CDR
    assert "-      &lt;t3512&gt;3240&lt;/t3512&gt;" in html   # the config diff, escaped


def test_html_is_self_contained(sample):
    html = build_campaign_report(CAMPAIGN).html.read_text()
    assert "http" not in html
    assert "<script" not in html and "src=" not in html and "@import" not in html
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html))
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("#") or not re.match(r"^[a-z][a-z0-9+.-]*:|^//", h) for h in hrefs)


def test_disruption_says_not_measured_without_probes(sample):
    paths = build_campaign_report(CAMPAIGN)
    assert json.loads(paths.json.read_text())["figures"]["disruption"] == {
        "measured": False, "attempted": 0, "failed": 0, "failure_pct": None, "pools": None, "basis": "",
        "text": "not measured"}
    assert "not measured" in paths.html.read_text()


def test_json_holds_the_same_data_as_the_run(sample):
    data = json.loads(build_campaign_report(CAMPAIGN, probes=PROBES).json.read_text())
    fresh = campaign_report(records.load_run(CAMPAIGN, probes=PROBES))
    assert data["figures"] == fresh["figures"] and data["counts"] == fresh["counts"]
    assert data["campaign"]["model"] == "amf-smf-upgrade" and data["campaign"]["stop_reason"] is None
    assert [ne["ne"] for ne in data["nes"]] == NES
    by_name = {ne["ne"]: ne for ne in data["nes"]}
    for name, stored in sample["nes"].items():     # each NE's entry holds its stored outcome unchanged
        for key, value in stored.items():
            if key != "steps":
                assert by_name[name][key] == value, (name, key)
        assert len(by_name[name]["steps"]) == len(stored.get("steps", []))
        for shown, kept in zip(by_name[name]["steps"], stored.get("steps", [])):
            assert shown.items() >= kept.items()
    assert data["anomalies"][0]["decision"]["action"] == "rollback"
    smf = by_name["smf-1"]
    assert smf["rollback"]["ok"] and [u["atom"] for u in smf["rollback"]["undone"]] == [
        "undo:activate_software", "undo:transfer_software", "undo:config_change"]
    assert [d["phase"] for d in smf["dial_tests"]] == ["baseline (before the change)", "check", "after rollback"]
    assert by_name["amf-1"]["billing"][0]["missing"] == []
    assert data["not_changed"] == [
        {"ne": "nrf-1", "ne_type": "NRF", "status": "ineligible", "reason": "NE type NRF is not one of AMF, SMF, UPF"},
        {"ne": "upf-1", "ne_type": "UPF", "status": "deferred", "reason": sample["nes"]["upf-1"]["reason"]}]
    assert [r["ne"] for r in data["rollbacks"]] == ["smf-1"]
    assert len(data["timeline"]["rows"]) == 4


def test_evidence_packs_hold_the_expected_files(sample):
    evidence = build_campaign_report(CAMPAIGN, probes=PROBES).evidence_dir
    def files(ne: str) -> set[str]:
        return {str(p.relative_to(evidence / ne)) for p in (evidence / ne).rglob("*") if p.is_file()}
    assert files("amf-1") == {"manifest.json", "outcome.json", "journal.json", "backup.json", "config-before.xml",
                              "config-after.xml", "config-before-after.diff", "diffs/04-set_timer.diff",
                              "dial-tests.json", "billing.json", "cdrs.csv", "service-probes.json"}
    assert files("smf-1") == {"manifest.json", "outcome.json", "journal.json", "backup.json", "config-before.xml",
                              "config-after.xml", "config-before-after.diff", "diffs/04-set_timer.diff",
                              "diffs/rollback-03-undo_config_change.diff", "dial-tests.json", "service-probes.json"}
    assert files("upf-1") == files("nrf-1") == {"manifest.json", "outcome.json", "journal.json"}
    assert "<t3512>3240</t3512>" in (evidence / "amf-1" / "config-before.xml").read_text()
    assert "<t3512>3600</t3512>" in (evidence / "amf-1" / "config-after.xml").read_text()
    assert json.loads((evidence / "amf-1" / "outcome.json").read_text()) == sample["nes"]["amf-1"]
    journal = json.loads((evidence / "smf-1" / "journal.json").read_text())
    assert journal["status"][0] == "rolled-back" and journal["baseline"]["backup_id"].startswith("smf-1/")
    undone = {e["step"]: e["undo_result"]["reason"] for e in journal["entries"] if e["status"] == "undone"}
    assert undone == {"activate": "back on 1.2.0", "transfer": "ne-1.3.0.img removed",
                      "set_timer": "config restored byte-identical"}
    assert json.loads((evidence / "smf-1" / "service-probes.json").read_text()) == {
        "pool": "smf-pool", "attempted": 9000, "failed": 27, "failure_pct": 0.3}
    assert "CHG-amf-1-0001" in (evidence / "amf-1" / "cdrs.csv").read_text()
    for ne in NES:
        manifest = json.loads((evidence / ne / "manifest.json").read_text())
        for entry in manifest["files"]:
            assert hashlib.sha256((evidence / ne / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
            assert entry["what"]


def test_credentials_never_reach_the_report(home):
    make_run(home)
    journal = Journal(home / "state" / "journal.sqlite")
    summary_path = home / "runs" / CAMPAIGN / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["nes"]["amf-1"]["steps"][0]["evidence"]["snmp"] = {"community": "s3cr3t-community"}
    summary_path.write_text(json.dumps(summary))
    from changeline.flows import stores
    secret_config = (b'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><aaa xmlns="urn:x"><user>'
                     b'<name>ops</name><password>hunter2-hash</password></user></aaa></config>')
    rec = stores.backups().record(ne="amf-1", run_id=CAMPAIGN, software_version="1.2.0", running=secret_config,
                                  startup=None, state=None)
    journal.put_baseline(CAMPAIGN, "amf-1", "backup_id", rec.id)
    paths = build_campaign_report(CAMPAIGN)
    written = [p for p in paths.html.parent.rglob("*") if p.is_file()]
    assert any(p.name == "config-before.xml" and "<name>ops</name>" in p.read_text() for p in written)
    for path in written:
        text = path.read_text()
        assert "hunter2-hash" not in text and "s3cr3t-community" not in text, path


def test_probes_are_kept_for_a_later_rebuild_elsewhere(sample, tmp_path):
    build_campaign_report(CAMPAIGN, probes=PROBES)
    again = build_campaign_report(CAMPAIGN, out_dir=tmp_path / "out")
    assert again.html == tmp_path / "out" / "report.html"
    assert json.loads(again.json.read_text())["figures"]["disruption"]["failed"] == 27
    assert (tmp_path / "out" / "evidence" / "amf-1" / "manifest.json").is_file()


def test_bad_probes_write_nothing(sample, home):
    with pytest.raises(InputError, match="attempted"):
        build_campaign_report(CAMPAIGN, probes={"pools": {"p": {"failed": 1}}})
    assert not (home / "runs" / CAMPAIGN / "probes.json").exists()
    assert not (home / "runs" / CAMPAIGN / "report").exists()


def test_unknown_campaign_names_the_id_and_the_journal(home):
    with pytest.raises(InputError) as err:
        build_campaign_report("c-nope")
    assert "c-nope" in str(err.value) and str(home / "state" / "journal.sqlite") in str(err.value)


def test_a_rollback_after_the_run_shows_from_the_journal(sample, home):
    Journal(home / "state" / "journal.sqlite").set_ne_status(CAMPAIGN, "amf-1", "rolled-back",
                                                             "rolled back by operator request")
    data = json.loads(build_campaign_report(CAMPAIGN).json.read_text())
    amf = next(ne for ne in data["nes"] if ne["ne"] == "amf-1")
    assert (amf["status"], amf["reason"]) == ("rolled-back", "rolled back by operator request")
    assert amf["status_at_run_end"] == {"status": "done", "reason": "reached target"}
    assert data["counts"] == {"rolled-back": 2, "deferred": 1, "ineligible": 1}
    assert {r["ne"]: r["after_run"] for r in data["rollbacks"]} == {"amf-1": True, "smf-1": False}


def test_an_interrupted_run_without_summary_still_reports(sample, home):
    (home / "runs" / CAMPAIGN / "summary.json").unlink()
    Journal(home / "state" / "journal.sqlite").set_ne_status(CAMPAIGN, "amf-9", "running", "step activate")
    paths = build_campaign_report(CAMPAIGN)
    data = json.loads(paths.json.read_text())
    assert data["campaign"]["finished"] is False
    assert {ne["ne"]: ne["status"] for ne in data["nes"]} == {
        "amf-1": "done", "amf-9": "running", "nrf-1": "ineligible", "smf-1": "rolled-back", "upf-1": "deferred"}
    assert next(ne for ne in data["nes"] if ne["ne"] == "amf-1")["steps"]      # from outcome.json
    assert "no summary yet" in paths.html.read_text()


def test_a_resumed_campaign_keeps_the_steps_of_the_earlier_attempt(sample, home):
    path = home / "runs" / CAMPAIGN / "summary.json"
    summary = json.loads(path.read_text())
    summary["nes"]["amf-1"] = {"ne": "amf-1", "ne_type": "AMF", "status": "done",
                               "reason": "reached target (earlier run of this campaign)", "resumed": True}
    path.write_text(json.dumps(summary))
    data = json.loads(build_campaign_report(CAMPAIGN).json.read_text())
    amf = next(ne for ne in data["nes"] if ne["ne"] == "amf-1")
    assert amf["resumed"] and amf["reason"].endswith("(earlier run of this campaign)")
    assert len(amf["steps"]) == 11
    assert data["figures"]["automation"]["executed_steps"] == 19


def test_a_rebuild_replaces_the_packs(sample):
    first = build_campaign_report(CAMPAIGN)
    stale = first.evidence_dir / "amf-1" / "stale.txt"
    stale.write_text("from an earlier build")
    build_campaign_report(CAMPAIGN)
    assert not stale.exists()


def test_two_hundred_nes(home):
    make_run(home, extra_done=196)
    paths = build_campaign_report(CAMPAIGN)
    html = paths.html.read_text()
    assert html.count('class="ne-row"') == 200
    height = float(re.search(r'<svg id="timeline"[^>]*height="([\d.]+)"', html).group(1))
    assert height > 200 * 12
    assert len(list(paths.evidence_dir.iterdir())) == 200


def test_an_older_journal_status_does_not_override_the_latest_attempt(sample, home):
    # e.g. an earlier attempt failed the NE; the latest one deferred it
    Journal(home / "state" / "journal.sqlite").set_ne_status(CAMPAIGN, "upf-1", "failed", "earlier attempt")
    data = json.loads(build_campaign_report(CAMPAIGN).json.read_text())
    upf = next(ne for ne in data["nes"] if ne["ne"] == "upf-1")
    assert upf["status"] == "deferred" and "status_at_run_end" not in upf
