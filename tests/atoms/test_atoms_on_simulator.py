"""Every atom against a running simulator: happy paths and the injected faults that matter."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from changeline.engine import runner
from changeline.atoms.backup import read_running
from changeline.devices import ne_api
from changeline.devices.sim.images import generate_image
from changeline.errors import CheckFailed, RpcError, StepTimeout
from tests.atoms.helpers import prepare_steps, run_steps, upgrade_steps

NS = ne_api.NS
SCENARIOS = {"AMF": ["ue-registration"], "SMF": ["pdu-session"], "UPF": ["pdu-session"], "NRF": ["nf-discovery"],
             "P-CSCF": ["sip-register", "volte-call"], "S-CSCF": ["sip-register", "volte-call"]}


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return {t: generate_image(folder, t, "1.3.0") for t in SCENARIOS}


def prepare(ctx, image: Path) -> None:
    """Pre-change steps every upgrade shares."""
    run_steps(ctx, prepare_steps(image, SCENARIOS[ctx.host.ne_type]))


def state(ctx):
    return ne_api.read_state(ctx.session)


def test_full_upgrade_chain_then_undo_restores_everything(ctx_for, images, sim):
    ctx = ctx_for("smf-1")
    prepare(ctx, images["SMF"])
    config_before = read_running(ctx)
    run_steps(ctx, upgrade_steps("pdu-session"))
    assert state(ctx).running_version == "1.3.0" and not state(ctx).drained
    undone = runner.undo_run(ctx)
    assert [r.atom for r in undone] == ["undo:activate_software", "undo:drain_traffic", "undo:transfer_software"]
    assert state(ctx).running_version == "1.2.0"
    assert read_running(ctx) == config_before
    assert "SMF-1.3.0.img" not in {i.name for i in state(ctx).images}


def test_atoms_are_idempotent(ctx_for, images):
    ctx = ctx_for("upf-1")
    prepare(ctx, images["UPF"])
    ctx.step = "xfer-again"
    assert not runner.execute("transfer_software", ctx, {"image": str(images["UPF"])}).changed
    ctx.step = "inst-again"
    assert not runner.execute("install_software", ctx, {"image": images["UPF"].name}).changed
    ctx.step = "act"
    assert runner.execute("activate_software", ctx, {"version": "1.3.0"}).changed
    ctx.step = "act-again"
    assert not runner.execute("activate_software", ctx, {"version": "1.3.0"}).changed
    runner.undo_run(ctx)


def test_dropped_connection_mid_install_is_retried_without_double_effect(ctx_for, images, sim):
    ctx = ctx_for("nrf-1")
    for step, atom, args in [("bk", "backup", {}), ("xfer", "transfer_software", {"image": str(images["NRF"])})]:
        ctx.step = step
        runner.execute(atom, ctx, args)
    sim.control.add_fault("nrf-1", "drop-mid-rpc", rpc="install-software", after=True)
    ctx.step = "inst"
    result = runner.execute("install_software", ctx, {"image": images["NRF"].name})
    # The NE installed it and dropped us before answering; the retry found it done.
    assert result.evidence.get("transient_retries") == 1
    assert not result.changed and "already installed" in result.reason
    assert [i.state for i in state(ctx).images if i.name == images["NRF"].name] == ["installed"]
    runner.undo_run(ctx)


def test_failed_activation_is_undone_to_identical_version_and_config(ctx_for, images, sim):
    ctx = ctx_for("amf-3")
    prepare(ctx, images["AMF"])
    before = read_running(ctx)
    sim.control.add_fault("amf-3", "activate-old-version")
    ctx.step = "act"
    with pytest.raises(CheckFailed, match="runs 1.2.0, not 1.3.0"):
        runner.execute("activate_software", ctx, {"version": "1.3.0"})
    runner.undo_run(ctx)
    ctx.step = "rb"
    verified = runner.execute("rollback", ctx, {"verify_scenarios": ["ue-registration"]})
    assert verified.ok
    assert state(ctx).running_version == "1.2.0"
    assert read_running(ctx) == before


def test_activation_that_never_returns_times_out(ctx_for, images, sim):
    ctx = ctx_for("nrf-2")
    prepare(ctx, images["NRF"])
    sim.control.add_fault("nrf-2", "activate-hang")
    ctx.step = "act"
    ctx.session.rpc_timeout = 2
    with pytest.raises(CheckFailed, match="not back on 1.3.0"):
        runner.execute("activate_software", ctx, {"version": "1.3.0", "restart_timeout_s": 300})
    assert state(ctx).running_version == "1.2.0"


def test_step_timeout_stops_a_hung_activation_at_its_budget(ctx_for, images, sim):
    # The model's per-step timeout is shorter than the atom's own restart wait (900 s of NE
    # time, 9 s here) and the RPC timeout: the step ends when its budget is spent, not later.
    ctx = ctx_for("nrf-3")
    prepare(ctx, images["NRF"])
    sim.control.add_fault("nrf-3", "activate-hang")
    ctx.step = "act"
    started = time.monotonic()
    with pytest.raises(StepTimeout, match=r"step act \(activate_software, timeout 3 s\) ran out of time") as err:
        runner.execute("activate_software", ctx, {"version": "1.3.0"}, timeout_s=3)
    took = time.monotonic() - started
    assert 3 <= took < 9, took  # before the atom's own restart wait (9 s) would have ended it
    assert "nrf-3" in err.value.reason
    entry = ctx.journal.to_undo(ctx.run_id, ctx.ne)[0]  # journaled before it acted: rollback knows
    assert entry.atom == "activate_software"
    sim.control.clear_faults("nrf-3")
    ctx.session.reconnect()
    assert state(ctx).running_version == "1.2.0"
    # the budget ends with the step: later calls on the session are not limited by it
    assert runner.execute("precheck", ctx, {"expected_versions": ["1.2.0"]}).ok


def test_missing_cdrs_fail_billing_check_naming_the_records(ctx_for, sim):
    ctx = ctx_for("pcscf-1")
    sim.control.add_fault("pcscf-1", "cdr-missing")
    with pytest.raises(CheckFailed) as err:
        runner.execute("billing_check", ctx, {"scenario": "volte-call", "sessions": 2, "wait_s": 100})
    expected = err.value.evidence["expected"]
    assert len(expected) >= 2 and f"{len(expected)} of {len(expected)} CDR(s) missing" in err.value.reason
    for cid in expected:
        assert cid in err.value.reason
    sim.control.clear_faults("pcscf-1")
    assert runner.execute("billing_check", ctx, {"scenario": "volte-call", "wait_s": 100}).ok


def test_unconfirmed_config_change_reverts_by_itself(ctx_for):
    ctx = ctx_for("amf-2")
    before = read_running(ctx)
    change = f'<ne xmlns="{NS}"><timers><timer><name>t3512</name><value>1800</value></timer></timers></ne>'
    result = runner.execute("config_change", ctx, {"config": change, "confirm_timeout_s": 2, "confirm": "later"})
    assert result.changed and "1800" in result.diff
    assert b"1800" in read_running(ctx)
    deadline = time.monotonic() + 10
    while read_running(ctx) != before and time.monotonic() < deadline:
        time.sleep(0.3)
    assert read_running(ctx) == before


def test_config_change_confirmed_later_and_undone(ctx_for):
    ctx = ctx_for("smf-3")
    before = read_running(ctx)
    change = f'<ne xmlns="{NS}"><dnns><dnn><name>enterprise</name><ip-pool>10.47.0.0/16</ip-pool></dnn></dnns></ne>'
    ctx.step = "chg"
    runner.execute("config_change", ctx, {"config": change, "confirm_timeout_s": 5, "confirm": "later"})
    ctx.step = "confirm"
    assert runner.execute("confirm_commit", ctx, {"change_step": "chg"}).changed
    time.sleep(6)  # past the timer: confirmed, so it stays
    assert b"10.47.0.0/16" in read_running(ctx)
    runner.undo_run(ctx)
    assert read_running(ctx) == before


def test_precheck_refuses_critical_alarm_wrong_version_and_held_lock(ctx_for, sim):
    ctx = ctx_for("scscf-1")
    sim.control.raise_alarm("scscf-1", "critical", "S-CSCF overload")
    holder = ctx_for("scscf-1")
    holder.session.lock("candidate")
    with pytest.raises(CheckFailed) as err:
        runner.execute("precheck", ctx, {"expected_versions": ["1.1.0"]})
    reason = err.value.reason
    assert "critical alarm" in reason and "S-CSCF overload" in reason
    assert "not the expected from-version 1.1.0" in reason
    assert "locked by NETCONF session" in reason
    holder.session.unlock("candidate")
    sim.control.clear_alarms("scscf-1")
    assert runner.execute("precheck", ctx, {"expected_versions": ["1.2.0"]}).ok


def test_transfer_faults(ctx_for, images, sim):
    ctx = ctx_for("upf-2")
    sim.control.add_fault("upf-2", "transfer-corrupt", count=1)
    result = runner.execute("transfer_software", ctx, {"image": str(images["UPF"])})
    assert result.changed and result.evidence.get("transient_retries") == 1  # corrupted once, re-sent
    sim.control.add_fault("upf-2", "transfer-corrupt", count=10)
    ctx.step = "again"
    ctx.session.sftp.remove(f"/images/{images['UPF'].name}")
    with pytest.raises(Exception, match="checksum"):
        runner.execute("transfer_software", ctx, {"image": str(images["UPF"])})
    sim.control.clear_faults("upf-2")
    sim.control.add_fault("upf-2", "disk-full")
    with pytest.raises(CheckFailed, match="not enough disk"):
        runner.execute("transfer_software", ctx, {"image": str(images["UPF"])})


def test_install_refuses_bad_images(ctx_for, images, sim, tmp_path):
    ctx = ctx_for("pcscf-2")
    wrong = generate_image(tmp_path, "AMF", "1.3.0")
    renamed = tmp_path / "P-CSCF-9.9.9.img"
    wrong.rename(renamed)
    runner.execute("transfer_software", ctx, {"image": str(renamed)})
    with pytest.raises(RpcError, match="wrong-ne-type"):
        runner.execute("install_software", ctx, {"image": renamed.name})
    sim.control.add_fault("pcscf-2", "install-fail")
    runner.execute("transfer_software", ctx, {"image": str(images["P-CSCF"])})
    with pytest.raises(RpcError, match="install-failed"):
        runner.execute("install_software", ctx, {"image": images["P-CSCF"].name})


def test_gates_catch_post_upgrade_faults(ctx_for, images, sim):
    ctx = ctx_for("scscf-2")
    prepare(ctx, images["S-CSCF"])
    sim.control.add_fault("scscf-2", "dial-test-fail-after-upgrade")
    ctx.step = "act"
    runner.execute("activate_software", ctx, {"version": "1.3.0"})
    ctx.step = "dial"
    with pytest.raises(CheckFailed, match="dial test"):
        runner.execute("dial_test", ctx, {"scenarios": ["volte-call"]})
    kpi = next(k for k in state(ctx).kpis if "success" in k)
    sim.control.add_fault("scscf-2", "kpi-degrade", kpi=kpi, factor=0.5)
    ctx.step = "kpi"
    with pytest.raises(CheckFailed, match=f"KPI {kpi} fell"):
        runner.execute("kpi_check", ctx, {"max_drop_pct": {kpi: 1}})
    sim.control.raise_alarm("scscf-2", "major", "peer unreachable")
    ctx.step = "val"
    with pytest.raises(CheckFailed, match="major alarm .*peer unreachable"):
        runner.execute("validate_upgrade", ctx, {"version": "1.3.0"})
    sim.control.clear_faults("scscf-2")
    sim.control.clear_alarms("scscf-2")
    runner.undo_run(ctx)
    assert state(ctx).running_version == "1.2.0"


def test_drain_prevents_failed_calls_during_restart(ctx_for, images, sim):
    ctx = ctx_for("amf-1")
    prepare(ctx, images["AMF"])
    before = sim.control.probe("amf-pool")
    for step, atom, args in [("drain", "drain_traffic", {"settle_s": 1}), ("act", "activate_software", {"version": "1.3.0"}),
                             ("restore", "restore_traffic", {})]:
        ctx.step = step
        runner.execute(atom, ctx, args)
    after = sim.control.probe("amf-pool")
    assert after["attempted"] > before["attempted"]
    assert after["failed"] == before["failed"]
    runner.undo_run(ctx)


def test_a_refused_login_is_an_authentication_error_and_is_not_retried(sim):
    import dataclasses

    from changeline.devices.session import DeviceSession, Endpoint
    from changeline.errors import AuthenticationError, TransientError

    endpoint = dataclasses.replace(Endpoint.from_host(sim.inventory.hosts["amf-1"]), password="not-the-password")
    session = DeviceSession(endpoint, rpc_timeout=10)
    with pytest.raises(AuthenticationError, match="NETCONF authentication failed") as err:
        ne_api.read_state(session)
    assert not isinstance(err.value, TransientError)
    session.close()
