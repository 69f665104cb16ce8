"""The inventory's platform picks a driver; an unknown platform, or an atom a platform cannot
do, is refused at plan time naming the host and the atom - before anything connects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from changeline.devices.inventory import load_inventory
from changeline.devices.platforms import ATOM_NEEDS, OPERATIONS, PLATFORMS, atom_problem, parse, refusal
from changeline.errors import InputError
from changeline.models.compile import compile_for_host, load_model, plan_campaign
from changeline.models.validate import load_model_text
from tests.models.helpers import LIBRARY, MODELINE, example_params, host

UPGRADE = LIBRARY / "amf" / "1.3" / "amf-upgrade.yaml"
CONFIG_ONLY = MODELINE + """apiVersion: changeline/v1
kind: ChangeModel
metadata: {name: generic-timer, version: 1.0.0, owner: core-ops, description: a config change any RFC 6241 server can take}
spec:
  target: {neTypes: [AMF]}
  rollback: {strategy: journal}
  stages:
    - name: change
      steps:
        - {name: backup, atom: backup}
        - name: timer
          atom: config_change
          with:
            config: '<ne xmlns="urn:changeline:params:xml:ns:yang:changeline-ne"><timers><timer><name>t3512</name><value>1800</value></timer></timers></ne>'
            confirm: later
            confirm_timeout_s: 120
        - {name: check, atom: validate_upgrade}
        - {name: confirm, atom: confirm_commit, with: {change_step: timer}}
"""


def test_every_atom_and_operation_is_in_the_tables():
    from changeline.atoms import registry

    assert set(ATOM_NEEDS) == set(registry())
    for platform in PLATFORMS.values():
        assert set(platform.operations) <= set(OPERATIONS), platform.name
    assert set(PLATFORMS["changeline-ne"].operations) == set(OPERATIONS)
    assert set(PLATFORMS["changeline-mml"].operations) == set(OPERATIONS)


def test_an_atom_the_platform_cannot_do_is_refused_at_plan_time_naming_host_and_atom():
    model = load_model(UPGRADE)
    generic = dataclasses.replace(host("amf-7", "AMF"), platform="netconf")
    with pytest.raises(InputError) as err:
        compile_for_host(model, generic, {"image_repo": "/srv"})
    text = str(err.value)
    assert "amf-7: platform 'netconf' cannot run atom 'precheck': it has no read_state operation" in text
    assert "cannot run atom 'install_software': it has no list_images, install operations" in text
    assert "amf-upgrade.yaml:" in text  # located at the step in the model
    mixed = [host("amf-1", "AMF"), dataclasses.replace(host("amf-2", "AMF"), platform="changeline-mml")]
    plan = plan_campaign(model, mixed, {"image_repo": "/srv"})  # both real platforms can upgrade
    assert set(plan.plans) == {"amf-1", "amf-2"}


def test_a_rollback_step_verified_by_dial_tests_is_refused_at_plan_time_without_dial_tests():
    model = load_model(LIBRARY / "common" / "any" / "ne-rollback.yaml")
    generic = dataclasses.replace(host("upf-4", "UPF"), platform="netconf")
    with pytest.raises(InputError) as err:
        compile_for_host(model, generic)
    text = str(err.value)
    assert "ne-rollback.yaml:" in text and "with.verify_scenarios" in text
    assert "upf-4: platform 'netconf' has no dial_test operation to verify a rollback with" in text
    assert compile_for_host(model, host("upf-5", "UPF")).steps[0].args["verify_scenarios"]  # changeline-ne verifies


def test_an_unknown_platform_is_refused_naming_the_host():
    model = load_model(UPGRADE)
    with pytest.raises(InputError, match=r"amf-8: unknown platform 'vendor-x' \(known: changeline-ne, changeline-mml, netconf\)"):
        compile_for_host(model, dataclasses.replace(host("amf-8", "AMF"), platform="vendor-x"), {"image_repo": "/srv"})
    assert atom_problem("amf-8", "changeline-ne", "backup") is None


def test_the_generic_platform_takes_a_config_only_model():
    model = load_model_text(CONFIG_ONLY, "generic-timer.yaml")
    plan = compile_for_host(model, dataclasses.replace(host("tp-1", "AMF"), platform="netconf"))
    assert [s.atom for s in plan.steps] == ["backup", "config_change", "validate_upgrade", "confirm_commit"]
    assert plan.rollback.verify.args["verify_scenarios"] == []  # no dial tests on this platform
    with pytest.raises(InputError, match=r"tp-1: platform 'netconf' has no dial_test operation to verify a rollback"):
        compile_for_host(load_model_text(CONFIG_ONLY.replace("strategy: journal}", "strategy: journal, verify: {scenarios: [ue-registration]}}"), "m.yaml"),
                         dataclasses.replace(host("tp-1", "AMF"), platform="netconf"))


def test_inventory_refuses_an_unknown_platform_with_file_and_line(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  amf-1:\n    hostname: 192.0.2.1\n    platform: vendor-x\n    data: {ne_type: AMF}\n")
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert f"{path}:4:5: hosts.amf-1.platform: unknown platform 'vendor-x' (known: changeline-ne, changeline-mml, netconf)" in str(err.value)


def test_a_rollback_with_verify_scenarios_is_refused_before_it_touches_an_ne_without_dial_tests(tmp_path: Path):
    from changeline.devices.platforms import PlatformError
    from changeline.devices.session import Endpoint
    from changeline.engine import runner
    from tests.atoms.helpers import make_context

    # 192.0.2.1 (TEST-NET-1) is never reached: the refusal comes first.
    ctx = make_context(tmp_path, Endpoint(name="tp-9", hostname="192.0.2.1", platform="netconf"))
    with pytest.raises(PlatformError, match=r"tp-9: platform 'netconf' has no dial_test operation"):
        runner.execute("rollback", ctx, {"verify_scenarios": ["ue-registration"]})
    assert ctx.session._nc is None  # no NETCONF session was opened


def test_an_inventory_from_before_platforms_were_data_is_told_the_new_name(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  amf-1:\n    hostname: 192.0.2.1\n    platform: changeline-sim\n    data: {ne_type: AMF}\n")
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert f"{path}:4:5: hosts.amf-1.platform: platform 'changeline-sim' is now called 'changeline-ne'" in str(err.value)


def test_mml_replies_parse_with_the_platforms_templates():
    reply = ("+++    SMF-1        2026-12-01 22:50:00\nO&M    #3\n%%DSP KPI:;%%\nRETCODE = 0  Operation succeeded.\n\n"
             "KPIs\n----\nKPI name                  Value   Unit\npdu-session-success-rate  99.5    %\n"
             "sessions                  1200    count\n\n(Number of results = 2)\n\n---    END")
    assert parse("changeline-mml", "dsp_kpi.textfsm", reply) == [
        {"name": "pdu-session-success-rate", "value": "99.5", "unit": "%"},
        {"name": "sessions", "value": "1200", "unit": "count"}]
    pattern = PLATFORMS["changeline-mml"].cli_failed_when
    assert refusal(pattern, reply) is None
    assert refusal(pattern, "RETCODE = 1001  image x not found in /images/\n---    END") == "1001 image x not found in /images/"


def test_the_librarys_generic_model_plans_on_every_platform():
    model = load_model(LIBRARY / "common" / "any" / "ne-capacity.yaml")
    for platform in PLATFORMS:
        plan = compile_for_host(model, dataclasses.replace(host("upf-9", "UPF"), platform=platform),
                                example_params(model))
        assert [s.atom for s in plan.steps] == ["backup", "config_change", "validate_upgrade", "confirm_commit"]
        scenarios = plan.rollback.verify.args["verify_scenarios"]
        assert (scenarios == []) == (platform == "netconf"), platform  # the type's dial tests where there are any


def test_the_driver_does_configuration_over_netconf_datastores_only(tmp_path: Path):
    from changeline.devices.platforms import Command, Driver, Platform, PlatformError
    from changeline.devices.session import DeviceSession, Endpoint

    session = DeviceSession(Endpoint(name="v-1", hostname="192.0.2.1"))  # never connects: refused first
    vendor = Platform(name="vendor-cli", summary="config as commands", netconf_device=None, cli_device="generic",
                      operations={"read_state": (Command("SHOW STATE"),), "config_get": (Command("SHOW CONFIG"),)})
    driver = Driver(vendor, session)
    with pytest.raises(PlatformError, match="v-1: platform 'vendor-cli' maps config_get to commands"):
        driver.config_get()
    with pytest.raises(PlatformError, match="v-1: platform 'vendor-cli' has no config_edit operation"):
        with driver.config_locked():
            pass
    assert driver.config_lock_holder() is None  # nothing to lock on a platform without datastores
    assert session._nc is None
