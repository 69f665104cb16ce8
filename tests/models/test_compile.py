"""Compiling a model for one NE: eligibility, parameters, rendered and checked arguments, rollback."""

from __future__ import annotations

import pytest

from changeline.arguments import parse_param_args
from changeline.errors import InputError
from changeline.models.compile import compile_for_host, eligibility, load_model, resolve_params
from changeline.models.validate import load_model_text
from tests.models.helpers import LIBRARY, MODELINE, host

AMF_UPGRADE = LIBRARY / "amf" / "1.3" / "amf-upgrade.yaml"
SMF_UPGRADE = LIBRARY / "smf" / "1.3" / "smf-upgrade.yaml"
T3512 = LIBRARY / "amf" / "1.3" / "amf-t3512-timer.yaml"
ROLLBACK = LIBRARY / "common" / "any" / "ne-rollback.yaml"


@pytest.fixture(scope="module")
def upgrade():
    return load_model(AMF_UPGRADE)


@pytest.mark.parametrize(("ne_type", "version", "reason"), [
    ("AMF", "1.2.0", None),
    ("AMF", "1.3.0", "already at 1.3.0"),
    ("AMF", "1.1.0", "runs 1.1.0, not an upgrade source (fromVersions: 1.2.0)"),
    ("AMF", "", "the inventory gives no software_version"),
    ("SMF", "1.2.0", "type SMF is not targeted (the model targets AMF)"),
    ("", "1.2.0", "type unknown (no data.ne_type in the inventory) is not targeted (the model targets AMF)"),
])
def test_eligibility_of_an_upgrade(upgrade, ne_type, version, reason):
    assert eligibility(upgrade, host("ne-1", ne_type, version)) == reason


def test_eligibility_of_a_change():
    timer = load_model(T3512)
    assert eligibility(timer, host("amf-1", "AMF", "1.3.0")) is None
    assert eligibility(timer, host("amf-1", "AMF", "1.1.0")) == "runs 1.1.0; the change applies to 1.2.0, 1.3.0"
    rollback = load_model(ROLLBACK)
    assert eligibility(rollback, host("x", "S-CSCF", "0.9.0")) is None


def test_compiled_upgrade_for_a_pooled_ne(upgrade):
    plan = compile_for_host(upgrade, host("amf-1", "AMF", pool="amf-pool-1"), {"image_repo": "/srv/images"})
    assert (plan.ne, plan.ne_type, plan.model_name, plan.model_version) == ("amf-1", "AMF", "amf-upgrade", "1.0.0")
    steps = {s.name: s for s in plan.steps}
    assert steps["transfer-image"].args == {"image": "/srv/images/AMF-1.3.0.img"}
    assert steps["install-image"].args == {"image": "AMF-1.3.0.img"}
    assert steps["precheck"].args == {"ne_types": ["AMF"], "expected_versions": ["1.2.0"], "min_disk_free_mb": 1024}
    assert steps["activate"].args == {"version": "1.3.0", "restart_timeout_s": 900}   # the atom's default filled in
    assert steps["kpi-check"].args["max_drop_pct"] == {"registration-success-rate": 1.0, "paging-success-rate": 1.0}
    assert steps["activate"].mutating and not steps["activate"].gate and steps["activate"].estimate_s == 120
    assert steps["dial-test"].gate and not steps["dial-test"].mutating
    assert steps["precheck"].manual_minutes == 15 and steps["precheck"].retries == 3
    assert plan.total_estimate_s == sum(s.estimate_s for s in plan.steps)
    assert plan.rollback.strategy == "journal"
    assert plan.rollback.undo_steps == ("activate", "drain", "transfer-image")
    assert plan.rollback.verify.args == {"verify_scenarios": ["ue-registration"], "restart_timeout_s": 900}
    assert plan.rollback_estimate_s == 420
    assert plan.skipped == ()


def test_when_leaves_out_drain_and_restore_for_an_unpooled_ne(upgrade):
    plan = compile_for_host(upgrade, host("amf-7", "AMF"))
    assert "drain" not in [s.name for s in plan.steps] and "restore" not in [s.name for s in plan.steps]
    assert plan.skipped == (("drain", "when: host.pool is false"), ("restore", "when: host.pool is false"))
    assert plan.rollback.undo_steps == ("activate", "transfer-image")


def test_on_failure_defaults_come_from_the_campaign():
    text = AMF_UPGRADE.read_text().replace("onAnomaly: rollback", "onAnomaly: pause").replace(
        "onFailure: rollback", "onFailure: abort")
    model = load_model_text(text, "m.yaml")
    plan = compile_for_host(model, host("amf-1", "AMF"))
    assert {s.on_failure for s in plan.steps if s.gate} == {"pause"}
    assert {s.on_failure for s in plan.steps if not s.gate} == {"abort"}


def test_parameters_from_the_command_line_are_typed(upgrade):
    values = resolve_params(upgrade, parse_param_args(["max_kpi_drop_pct=2.5", "min_disk_free_mb=2048"]))
    assert values["max_kpi_drop_pct"] == 2.5 and values["min_disk_free_mb"] == 2048
    assert values["image_repo"] == ".changeline/images"


def test_bad_parameters_are_all_reported_at_their_declaration(upgrade):
    with pytest.raises(InputError) as caught:
        resolve_params(upgrade, {"min_disk_free_mb": "lots", "max_kpi_drop_pct": "-1", "colour": "red"})
    assert [f"{p.line}:{p.column}: {p.field}: {p.message}" for p in caught.value.problems] == [
        "19:3: spec.parameters: unknown parameter 'colour' given (declared: image_repo, kpi_settle_s, "
        "max_kpi_drop_pct, min_disk_free_mb)",
        "24:5: spec.parameters.min_disk_free_mb: --param min_disk_free_mb=lots: 'lots' is not an integer",
        "29:5: spec.parameters.max_kpi_drop_pct: --param max_kpi_drop_pct=-1: must be >= 0, got -1",
    ]


def test_parse_param_args_needs_name_and_value():
    with pytest.raises(InputError, match="'oops' is not NAME=VALUE"):
        parse_param_args(["a=1", "oops"])
    assert parse_param_args(["url=sip:x=y"]) == {"url": "sip:x=y"}


def test_null_renders_as_left_out():
    rollback = load_model(ROLLBACK)
    plan = compile_for_host(rollback, host("pcscf-1", "P-CSCF", "1.3.0"))
    assert plan.steps[0].args == {"verify_scenarios": ["sip-register", "volte-call"], "restart_timeout_s": 900}
    plan = compile_for_host(rollback, host("pcscf-1", "P-CSCF", "1.3.0"), {"backup_id": "b-42"})
    assert plan.steps[0].args["backup_id"] == "b-42"
    assert plan.steps[0].on_failure == "pause"


def test_compile_reports_per_host_problems_at_the_model_field():
    text = MODELINE + """apiVersion: changeline/v1
kind: ChangeModel
metadata: {name: m, version: 1.0.0, description: d, owner: o}
spec:
  target: {neTypes: [SMF]}
  stages:
    - name: s
      steps:
        - {name: backup, atom: backup}
        - {name: bill, atom: billing_check, with: {scenario: pdu-session, sessions: "{{ host.data.sessions }}"}}
"""
    model = load_model_text(text, "m.yaml")
    assert compile_for_host(model, host("smf-1", "SMF", sessions=3)).steps[1].args["sessions"] == 3
    with pytest.raises(InputError) as caught:
        compile_for_host(model, host("smf-2", "SMF", sessions="many"))
    assert [str(p) for p in caught.value.problems] == [
        "m.yaml:11:75: spec.stages[0].steps[1].with.sessions: smf-2: must be an integer, got 'many'"]
    with pytest.raises(InputError) as caught:
        compile_for_host(model, host("smf-3", "SMF"))
    assert [str(p) for p in caught.value.problems] == [
        "m.yaml:11:75: spec.stages[0].steps[1].with.sessions: smf-3: 'dict object' has no attribute 'sessions' "
        "(in '{{ host.data.sessions }}')"]


def test_compile_refuses_an_ineligible_host(upgrade):
    with pytest.raises(InputError, match="amf-9 is not a target of amf-upgrade@1.0.0: already at 1.3.0"):
        compile_for_host(upgrade, host("amf-9", "AMF", "1.3.0"))


def test_billing_gate_is_compiled_for_cdr_types():
    plan = compile_for_host(load_model(SMF_UPGRADE), host("smf-1", "SMF"))
    billing = plan.step("billing-check")
    assert billing.gate and billing.args == {"scenario": "pdu-session", "wait_s": 120, "sessions": 1}


def test_a_run_may_override_the_anomaly_policy_but_not_a_steps_own(upgrade):
    plan = compile_for_host(upgrade, host("amf-1", "AMF"), on_anomaly="pause")
    assert {s.on_failure for s in plan.steps if s.gate} == {"pause"}
    assert {s.on_failure for s in plan.steps if not s.gate} == {"rollback"}
    rollback = load_model(ROLLBACK)
    assert compile_for_host(rollback, host("x", "AMF"), on_anomaly="continue").steps[0].on_failure == "pause"
    with pytest.raises(InputError, match="on_anomaly must be one of rollback, pause, continue, abort, got 'retry'"):
        compile_for_host(upgrade, host("amf-1", "AMF"), on_anomaly="retry")
