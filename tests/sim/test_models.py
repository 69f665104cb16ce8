"""The simulator's decisions as pure functions: traffic, KPIs, dial tests, CDRs, faults,
images, the CLI's line discipline and commands, SFTP path policy, config rules."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from changeline.devices.sim.cli_shell import LineReader, key_values, render_version, resolve
from changeline.devices.sim.clock import SimClock
from changeline.devices.sim.element import image_state
from changeline.devices.sim.faults import (
    FaultSet,
    dial_failure,
    kpi_factors,
    reply_delay,
    rpc_drop,
    transfer_action,
    validate_fault,
)
from changeline.devices.sim.host import known_host_pattern, password_checker, resolve_password
from changeline.devices.sim.images import (
    PAYLOAD_OFFSET,
    generate_image,
    inspect_image,
    judge_image,
)
from changeline.devices.sim.ne_xml import KNOWN_RPCS, config_problem, config_root
from changeline.devices.sim.profiles import builtin_profiles
from changeline.devices.sim.sftp import corrupt_index, image_name, refusal
from changeline.devices.sim.status import NeStatus
from changeline.devices.sim.traffic import (
    CDR_HEADER,
    CdrWriter,
    Member,
    Pool,
    charge_units,
    dial_outcome,
    kpi_values,
    load_factor,
    route_calls,
)

PROFILES = builtin_profiles()
AMF = PROFILES["AMF"]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- traffic ------------------------------------------------------------------------------

def test_calls_go_to_undrained_members_and_fail_on_those_down():
    members = {"a": Member(), "b": Member(up=False), "c": Member(drained=True)}
    served, failed = route_calls(members)
    assert served == {"a": 0.5, "b": 0.0, "c": 0.0}
    assert failed == 0.5  # b is down but still gets its half
    assert route_calls({"a": Member(drained=True)}) == ({"a": 0.0}, 1.0)


@given(st.dictionaries(st.sampled_from("abcdef"), st.builds(Member, st.booleans(), st.booleans()), min_size=1))
def test_every_call_is_served_or_failed(members):
    served, failed = route_calls(members)
    assert sum(served.values()) + failed == pytest.approx(1.0)


def test_load_factor_is_relative_to_a_fair_share():
    assert load_factor({"a": Member(), "b": Member()}, "a") == 1.0
    assert load_factor({"a": Member(), "b": Member(drained=True)}, "a") == 2.0
    assert load_factor({"a": Member(), "b": Member(drained=True)}, "b") == 0.0


def test_pool_counts_calls_lazily_in_simulated_time():
    wall = FakeTime()
    clock = SimClock(0.01, monotonic=wall)
    pool = Pool("p", "AMF", 50, clock)
    pool.join("a")
    pool.join("b")
    wall.now = 1.0  # 100 simulated seconds
    assert pool.probe() == {"attempted": 5000, "failed": 0}
    pool.update("a", up=False)  # undrained restart: half the calls fail
    wall.now = 1.5
    pool.update("a", up=True)
    assert pool.probe() == {"attempted": 7500, "failed": 1250}
    pool.update("b", drained=True)
    pool.update("b", up=False)  # drained restart: nothing fails
    wall.now = 2.0
    assert pool.probe() == {"attempted": 10000, "failed": 1250}


def test_clock_speed_changes_keep_simulated_time_continuous():
    wall = FakeTime()
    clock = SimClock(0.01, monotonic=wall)
    wall.now = 1.0
    clock.set_speed(1.0)
    wall.now = 2.0
    assert clock.now() == pytest.approx(101.0)
    assert clock.real_seconds(90) == 90.0
    with pytest.raises(ValueError):
        clock.set_speed(0)


def test_kpis_follow_load_and_degradation():
    values = {k.name: v for k, v in kpi_values(AMF.kpis, 2.0, {"registration-success-rate": 0.5})}
    assert values["sessions"] == 360000
    assert values["cpu"] == 70.0  # idle 6 + (38 - 6) * 2
    assert values["registration-success-rate"] == 49.85
    capped = {k.name: v for k, v in kpi_values(AMF.kpis, 1.0, {"paging-success-rate": 2.0})}
    assert capped["paging-success-rate"] == 100.0


def test_dial_outcome_follows_the_success_rate_or_a_forced_failure():
    scenario = AMF.dial_tests["ue-registration"]
    assert dial_outcome(scenario, 99.7, None).passed
    degraded = dial_outcome(scenario, 49.85, None)
    assert (degraded.successes, degraded.passed) == (2, False)
    assert "3 of 5 attempts failed" in degraded.reason
    forced = dial_outcome(scenario, 99.7, "no answer")
    assert (forced.successes, forced.reason) == (0, "no answer")


def test_charge_units_by_volume_or_duration():
    smf = PROFILES["SMF"].dial_tests["pdu-session"].cdr
    call = PROFILES["P-CSCF"].dial_tests["volte-call"].cdr
    register = PROFILES["P-CSCF"].dial_tests["sip-register"].cdr
    assert (charge_units(smf), charge_units(call), charge_units(register)) == (18, 2, 0)


def test_cdr_writer_numbers_records_and_rolls_files(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("changeline.devices.sim.traffic.RECORDS_PER_FILE", 2)
    writer = CdrWriter(tmp_path / "cdr", "smf-1")
    writer.reset()
    writer.append([("c1",), ("c2",), ("c3",)])
    files = sorted(p.name for p in (tmp_path / "cdr").iterdir())
    assert files == ["cdr-smf-1-0001.csv", "cdr-smf-1-0002.csv"]
    second = (tmp_path / "cdr" / files[1]).read_text().splitlines()
    assert second == [",".join(CDR_HEADER), "3,c3"]


# --- faults -----------------------------------------------------------------------------

def _fault(**raw):
    fault, problems = validate_fault(raw, kpis=["cpu"], alarm_ids=["AMF-1001"], rpcs=KNOWN_RPCS)
    assert not problems, problems
    return fault


@pytest.mark.parametrize("raw,expected", [
    ({"kind": "meteor"}, [("kind", "unknown fault kind 'meteor'")]),
    ({"kind": "kpi-degrade", "kpi": "cpu"}, [("factor", "is required for kpi-degrade")]),
    ({"kind": "kpi-degrade", "kpi": "latency", "factor": 0.5}, [("kpi", "unknown KPI 'latency'")]),
    ({"kind": "slow-replies", "delay_s": -1}, [("delay_s", "must be at least 0")]),
    ({"kind": "drop-mid-rpc", "rpc": "reboot"}, [("rpc", "unknown RPC 'reboot'")]),
    ({"kind": "drop-mid-rpc", "rpc": "commit", "count": 0}, [("count", "must be a positive integer")]),
    ({"kind": "disk-full", "count": 2}, [("count", "unknown parameter for disk-full")]),
    ({"kind": "alarm", "severity": "major"}, [("", "an alarm needs")]),
    ({"kind": "alarm", "id": "AMF-9"}, [("id", "not in this type's alarm catalogue")]),
    ({"kind": "alarm", "severity": "huge", "text": "x"}, [("severity", "must be one of")]),
])
def test_fault_validation_names_the_field(raw, expected):
    fault, problems = validate_fault(raw, kpis=["cpu"], alarm_ids=["AMF-1001"], rpcs=KNOWN_RPCS)
    assert fault is None
    assert [(f, m[:len(e)]) for (f, m), (_, e) in zip(problems, expected)] == expected


def test_counted_faults_fire_then_disappear():
    faults = FaultSet()
    faults.add(_fault(kind="transfer-fail", count=1))
    faults.add(_fault(kind="transfer-corrupt"))
    assert [transfer_action(faults) for _ in range(3)] == ["fail", "corrupt", "corrupt"]
    faults.add(_fault(kind="drop-mid-rpc", rpc="commit", after=True, count=2))
    assert rpc_drop(faults, "get") is None
    assert [rpc_drop(faults, "commit") for _ in range(3)] == ["drop-after", "drop-after", None]
    faults.add(_fault(kind="drop-mid-rpc", rpc="get"))
    assert rpc_drop(faults, "get") == "drop-before"


def test_faults_with_the_same_key_replace_each_other():
    faults = FaultSet()
    faults.add(_fault(kind="kpi-degrade", kpi="cpu", factor=0.5))
    faults.add(_fault(kind="kpi-degrade", kpi="cpu", factor=0.8))
    faults.add(_fault(kind="slow-replies", delay_s=0.2))
    assert kpi_factors(faults) == {"cpu": 0.8}
    assert reply_delay(faults) == 0.2
    assert [f.kind for f in faults.clear("kpi-degrade")] == ["kpi-degrade"]
    assert kpi_factors(faults) == {}


def test_dial_tests_fail_only_after_the_version_changed():
    faults = FaultSet()
    fault = _fault(kind="dial-test-fail-after-upgrade")
    fault.baseline_version = "1.2.0"
    faults.add(fault)
    assert dial_failure(faults, "1.2.0") is None
    assert "after the upgrade to 1.3.0" in dial_failure(faults, "1.3.0")


# --- images -----------------------------------------------------------------------------

def test_generated_images_are_deterministic_and_judged(tmp_path: Path):
    path = generate_image(tmp_path / "a", "AMF", "1.3.0", payload_size=100_000)
    again = generate_image(tmp_path / "b", "AMF", "1.3.0", payload_size=100_000)
    assert path.name == "AMF-1.3.0.img"
    inspection = inspect_image(path)
    assert inspection.problem is None and inspection.sha256 == inspect_image(again).sha256
    assert inspection.manifest.payload_size == 100_000
    assert judge_image(inspection, ne_type="AMF", versions=AMF.versions).ok
    assert judge_image(inspection, ne_type="SMF", versions=AMF.versions).app_tag == "wrong-ne-type"
    assert judge_image(inspection, ne_type="AMF", versions=("1.1.0",)).app_tag == "unknown-version"
    with tarfile.open(path) as tar:
        payload = tar.getmember("payload.bin")
        assert payload.offset_data == PAYLOAD_OFFSET  # what transfer corruption relies on


def test_corrupt_images_are_refused_with_a_reason(tmp_path: Path):
    path = generate_image(tmp_path, "AMF", "1.3.0", payload_size=4096)
    data = bytearray(path.read_bytes())
    data[PAYLOAD_OFFSET] ^= 0xFF
    path.write_bytes(bytes(data))
    verdict = judge_image(inspect_image(path), ne_type="AMF", versions=AMF.versions)
    assert verdict.app_tag == "image-corrupt" and "checksum" in verdict.reason
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"not a tar")
    assert "not a readable image archive" in judge_image(inspect_image(junk), ne_type="AMF",
                                                         versions=AMF.versions).reason
    odd = tmp_path / "odd.img"
    with tarfile.open(odd, "w") as tar:
        tar.add(path, arcname="payload.bin")
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps({"ne_type": "AMF"}))
        tar.add(manifest, arcname="manifest.json")
    assert "version missing" in inspect_image(odd).problem


def test_image_state_from_versions():
    assert image_state(valid=False, version="1.3.0", running="1.2.0", installed={"1.2.0"}) == "invalid"
    assert image_state(valid=True, version="1.3.0", running="1.2.0", installed={"1.2.0"}) == "uploaded"
    assert image_state(valid=True, version="1.3.0", running="1.2.0", installed={"1.2.0", "1.3.0"}) == "installed"
    assert image_state(valid=True, version="1.3.0", running="1.3.0", installed={"1.2.0", "1.3.0"}) == "active"


# --- SFTP policy --------------------------------------------------------------------------

def test_only_files_directly_in_images_are_writable():
    assert image_name(b"/images/AMF-1.3.0.img") == "AMF-1.3.0.img"
    assert image_name(b"images/x.img") == "x.img"  # relative to the NE's root
    assert image_name(b"/images/../cdr/x.csv") is None
    assert image_name(b"/images/sub/x.img") is None
    assert image_name(b"/images/.hidden") is None
    assert refusal(b"/cdr/cdr-1.csv") == "/cdr/ is read-only"
    assert refusal(b"/etc/passwd").startswith("only files directly in /images/")


def test_corruption_hits_the_first_payload_byte_of_the_write_that_covers_it():
    assert corrupt_index(0, 32768) == PAYLOAD_OFFSET
    assert corrupt_index(1024, 1024) == PAYLOAD_OFFSET - 1024
    assert corrupt_index(32768, 32768) is None


# --- CLI ------------------------------------------------------------------------------------

def test_line_reader_echoes_and_splits_lines():
    reader = LineReader()
    assert reader.feed("show ver\rsion\r\n") == [("echo", "show ver\r\n"), ("line", "show ver"),
                                                 ("echo", "sion\r\n"), ("line", "sion")]
    assert reader.feed("ab\x7fc\n") == [("echo", "ab\b \bc\r\n"), ("line", "ac")]
    assert reader.feed("\n") == [("echo", "\r\n"), ("line", "")]


@given(st.lists(st.text(alphabet="abc \r\n", max_size=8), max_size=6))
def test_line_reader_is_independent_of_how_input_is_split(chunks):
    def lines(parts):
        reader = LineReader()
        return [text for part in parts for kind, text in reader.feed(part) if kind == "line"]

    whole = "".join(chunks)
    assert lines(chunks) == lines([whole]) == lines(list(whole))  # a CR LF split across reads is one Enter


@pytest.mark.parametrize("line,expected", [
    ("show version", ("show-version", [])),
    ("sh ver", ("show-version", [])),
    ("  show   kpi ", ("show-kpi", [])),
    ("dial-test volte-call", ("dial-test", ["volte-call"])),
    ("terminal length 0", ("terminal", ["0"])),
    ("terminal width 511", ("terminal", ["511"])),
    ("show", "% Incomplete command: show"),
    ("dial-test", "% Incomplete command: dial-test"),
    ("show running-config", "% Unknown command: show running-config"),
    ("e", "% Ambiguous command: e"),
    ("show version now", "% Unknown command: show version now"),
    ("reload", "% Unknown command: reload"),
])
def test_commands_resolve_like_ios(line, expected):
    assert resolve(line) == expected


def test_show_version_has_the_contract_line():
    status = NeStatus("amf-1", "AMF", "5gc", "up", "1.2.0", None, AMF.versions, ("1.2.0",), (), (), (), 1.0,
                      8192, 6000, None, False, 0, 5)
    assert "Version      : 1.2.0" in render_version(status, "x")
    assert key_values([("Previous", "-")]) == ["Previous     : -"]


# --- config rules -------------------------------------------------------------------------

def _config(xml_fragment: str = "") -> etree._Element:
    root = config_root("amf-1", "AMF", AMF.config)
    if xml_fragment:
        root[0].append(etree.fromstring(xml_fragment))
    return root


def test_the_profile_config_obeys_the_rules():
    assert config_problem(_config(), name="amf-1", ne_type="AMF") is None


@pytest.mark.parametrize("fragment,tag,message", [
    ('<routes xmlns="urn:changeline:params:xml:ns:yang:changeline-ne"/>', "unknown-element", "unknown element <routes>"),
    ('<capacity xmlns="urn:changeline:params:xml:ns:yang:changeline-ne"><max-sessions>lots</max-sessions></capacity>',
     "invalid-value", "max-sessions must be an unsigned 32-bit integer"),
    ('<timers xmlns="urn:changeline:params:xml:ns:yang:changeline-ne"><timer><name>x</name><unit>s</unit></timer>'
     '</timers>', "unknown-element", "unknown leaf <unit> in <timer>"),
])
def test_config_rules_refuse_what_the_model_lacks(fragment, tag, message):
    node, found_tag, found_message = config_problem(_config(fragment), name="amf-1", ne_type="AMF")
    assert (found_tag, found_message[:len(message)]) == (tag, message)


def test_name_and_type_are_read_only():
    root = _config()
    root[0][0].text = "amf-9"
    assert config_problem(root, name="amf-1", ne_type="AMF")[1:] == ("invalid-value", "name is read-only (amf-1)")


# --- host files -------------------------------------------------------------------------------

def test_password_resolution_prefers_env_then_state_dir(tmp_path: Path):
    assert resolve_password(tmp_path, {"CHANGELINE_NE_PASSWORD": "from-env"}) == "from-env"
    (tmp_path / "secrets.env").write_text("CHANGELINE_NE_PASSWORD=kept\n")
    assert resolve_password(tmp_path, {}) == "kept"
    assert len(resolve_password(tmp_path / "new", {})) >= 16
    check = password_checker("pw")
    assert check("admin", "pw") and not check("admin", "px") and not check("root", "pw")


def test_known_hosts_patterns_follow_openssh():
    assert known_host_pattern("127.0.1.1", 22) == "127.0.1.1"
    assert known_host_pattern("127.0.1.1", 830) == "[127.0.1.1]:830"
