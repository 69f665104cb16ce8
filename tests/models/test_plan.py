"""`changeline plan` without devices, the campaign plan, and the config-diff preview on XML."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from changeline.devices.inventory import load_inventory
from changeline.errors import InputError
from changeline.models.compile import compile_for_host, format_duration, load_model, plan_campaign
from changeline.models.preview import EditRefused, as_config, preview_config_change, preview_plan
from tests.models.helpers import INVENTORY, LIBRARY, host, run_cli

NE_NS = "urn:changeline:params:xml:ns:yang:changeline-ne"
RUNNING = f"""<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <ne xmlns="{NE_NS}"><name>amf-1</name><type>AMF</type>
    <timers><timer><name>t3512</name><value>3240</value></timer><timer><name>t3502</name><value>720</value></timer></timers>
    <capacity><max-sessions>2000000</max-sessions></capacity>
  </ne>
</data>"""


@pytest.fixture(scope="module")
def campaign():
    model = load_model(LIBRARY / "amf" / "1.3" / "amf-upgrade.yaml")
    return plan_campaign(model, load_inventory(INVENTORY).select("group=5gc"), {"max_kpi_drop_pct": "2"})


def test_campaign_plan_for_a_mixed_inventory(campaign):
    assert [(w.name, w.nes) for w in campaign.waves] == [
        ("canary", ("amf-1",)), ("early", ("amf-2", "amf-3")), ("rest", ("amf-4", "amf-7"))]
    assert [(i.ne, i.reason) for i in campaign.ineligible] == [
        ("amf-5", "already at 1.3.0"),
        ("amf-6", "runs 1.1.0, not an upgrade source (fromVersions: 1.2.0)"),
        ("nrf-1", "type NRF is not targeted (the model targets AMF)"),
        ("smf-1", "type SMF is not targeted (the model targets AMF)"),
    ]
    pooled, unpooled = campaign.plans["amf-1"].total_estimate_s, campaign.plans["amf-7"].total_estimate_s
    assert pooled - unpooled == 35  # drain 30 s + restore 5 s only for pooled NEs
    # concurrency 2: each wave's two NEs run side by side.
    assert [w.budget_s for w in campaign.waves] == [pooled, pooled, pooled]
    rollback = campaign.plans["amf-1"].rollback_estimate_s
    assert campaign.waves[0].worst_case_s == pooled + rollback
    assert campaign.total_budget_s == sum(w.budget_s for w in campaign.waves)
    assert campaign.params["max_kpi_drop_pct"] == 2


def test_plan_json_without_devices():
    result = run_cli("plan", str(LIBRARY / "amf" / "1.3" / "amf-upgrade.yaml"), "--inventory", str(INVENTORY),
                     "--targets", "group=5gc", "--param", "max_kpi_drop_pct=2", "--no-device", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["model"] == {"name": "amf-upgrade", "version": "1.0.0", "kind": "UpgradeModel",
                             "target": "AMF 1.2.0 -> 1.3.0"}
    assert [w["nes"] for w in plan["waves"]] == [["amf-1"], ["amf-2", "amf-3"], ["amf-4", "amf-7"]]
    assert {i["ne"]: i["reason"] for i in plan["ineligible"]}["amf-5"] == "already at 1.3.0"
    amf1 = plan["nes"]["amf-1"]
    assert [s["atom"] for s in amf1["steps"]][:4] == ["precheck", "backup", "dial_test", "transfer_software"]
    assert amf1["steps"][3]["args"] == {"image": ".changeline/images/AMF-1.3.0.img"}
    assert plan["nes"]["amf-7"]["skipped"] == [{"step": "drain", "reason": "when: host.pool is false"},
                                               {"step": "restore", "reason": "when: host.pool is false"}]
    assert amf1["rollback"]["undo_steps"] == ["activate", "drain", "transfer-image"]
    assert plan["budget"]["total_s"] == sum(w["budget_s"] for w in plan["waves"])
    assert plan["device_reads"] is None and plan["config_diffs"] == {}
    assert plan["selected"] == ["amf-1", "amf-2", "amf-3", "amf-4", "amf-5", "amf-6", "amf-7", "nrf-1", "smf-1"]


def test_plan_human_output_by_library_name():
    result = run_cli("plan", "amf-t3512-timer", "-i", str(INVENTORY), "-t", "type=AMF", "-p", "t3512_s=5400",
                     "--no-device")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Plan: amf-t3512-timer@1.0.0 (ChangeModel: AMF 1.2.0, 1.3.0)\n")
    assert "Targets: 7 selected by 'type=AMF', 6 eligible, 1 ineligible" in out
    assert "Wave 1/2 'canary' (1 NE): budget 2m12s, worst case 3m12s: amf-1" in out
    assert "Device reads: skipped (--no-device): no config diffs" in out
    assert "          <value>5400</value>" in out
    assert "amf-2 (AMF 1.2.0), wave 'rest': 7 steps, 2m12s: same steps, arguments and rollback as amf-1" in out
    assert "  amf-6: runs 1.1.0; the change applies to 1.2.0, 1.3.0" in out
    assert "rollback (journal, up to 1m00s): undo set-t3512 (newest first, those that ran), then rollback" in out
    assert out.rstrip().splitlines()[-1].startswith("Time budget: ")


@pytest.mark.parametrize(("args", "message"), [
    (["--targets", "type=UPF"], "--targets 'type=UPF' matches no host of"),
    (["--targets", "all", "--param", "t3512_s=soon"], "spec.parameters.t3512_s: --param t3512_s=soon: "
                                                      "'soon' is not an integer"),
    (["--targets", "all", "--param", "t3512_s=10"], "spec.parameters.t3512_s: --param t3512_s=10: must be >= 60, got 10"),
    (["--targets", "colour=red"], "selector term 'colour=red': unknown key 'colour'"),
])
def test_plan_input_errors_exit_2_without_traceback(args, message):
    result = run_cli("plan", "amf-t3512-timer", "-i", str(INVENTORY), "--no-device", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_preview_merges_the_change_into_running():
    change = f'<ne xmlns="{NE_NS}"><timers><timer><name>t3512</name><value>5400</value></timer></timers></ne>'
    diff = preview_config_change(RUNNING, change)
    assert [line for line in diff.splitlines() if line[:1] in "+-"] == [
        "--- running", "+++ after change", "-        <value>3240</value>", "+        <value>5400</value>"]
    same = f'<ne xmlns="{NE_NS}"><timers><timer><name>t3512</name><value>3240</value></timer></timers></ne>'
    assert preview_config_change(RUNNING, same) == ""


def test_preview_adds_list_entries_and_keeps_the_rest():
    change = f'<ne xmlns="{NE_NS}"><dnns><dnn><name>enterprise</name><ip-pool>10.47.0.0/16</ip-pool></dnn></dnns></ne>'
    diff = preview_config_change(RUNNING, change).splitlines()
    added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert added == ["<dnns>", "<dnn>", "<name>enterprise</name>", "<ip-pool>10.47.0.0/16</ip-pool>", "</dnn>",
                     "</dnns>"]
    assert not [line for line in diff if line.startswith("-") and not line.startswith("---")]


def test_preview_reports_an_edit_the_ne_would_refuse():
    delete = (f'<ne xmlns="{NE_NS}" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><timers>'
              '<timer nc:operation="delete"><name>t9999</name></timer></timers></ne>')
    with pytest.raises(EditRefused, match="data-missing: data to delete does not exist"):
        preview_config_change(RUNNING, delete)
    with pytest.raises(EditRefused, match="not well-formed XML"):
        preview_config_change(RUNNING, "<ne><timers>")


def test_preview_of_a_plan_applies_its_config_changes_in_order():
    text = (LIBRARY / "amf" / "1.3" / "amf-t3512-timer.yaml").read_text()
    model = load_model(LIBRARY / "amf" / "1.3" / "amf-t3512-timer.yaml")
    plan = compile_for_host(model, host("amf-1", "AMF"), {"t3512_s": 5400})
    (preview,) = preview_plan(plan, etree.fromstring(RUNNING.encode()))
    assert preview.step == "set-t3512" and preview.problem is None
    assert "+        <value>5400</value>" in preview.diff and "+++ after set-t3512" in preview.diff
    assert "confirm: later" in text  # the change is confirmed by a later step, the diff is the same


def test_as_config_accepts_data_config_or_bare_elements():
    bare = f'<ne xmlns="{NE_NS}"><name>x</name></ne>'
    wrapped = f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{bare}</config>'
    assert etree.tostring(as_config(bare)) == etree.tostring(as_config(wrapped))


def test_format_duration():
    assert [format_duration(s) for s in (0, 59, 60, 61.2, 3600, 3725)] == ["0s", "59s", "1m00s", "1m02s", "1h00m",
                                                                          "1h02m"]


def test_plan_campaign_collects_compile_problems_of_every_ne():
    model = load_model(LIBRARY / "amf" / "1.3" / "amf-upgrade.yaml")
    with pytest.raises(InputError) as caught:
        plan_campaign(model, [host("amf-1", "AMF")], {"image_repo": "x", "nope": 1})
    assert [p.message for p in caught.value.problems] == [
        "unknown parameter 'nope' given (declared: image_repo, kpi_settle_s, max_kpi_drop_pct, min_disk_free_mb)"]
