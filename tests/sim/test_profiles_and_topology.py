"""Profiles and topology files: valid ones load, every mistake is located."""

from __future__ import annotations

from pathlib import Path

import pytest

from changeline.catalogue.located_yaml import parse_located
from changeline.catalogue import CONFIG_SCHEMA, YANG_DIR
from changeline.devices.sim.profiles import PROFILE_DIR, builtin_profiles, load_profile
from changeline.devices.sim.topology import generate_topology, load_topology, loopback_addresses
from changeline.errors import InputError

PROFILES = builtin_profiles()


def test_builtin_profiles_cover_the_six_types():
    assert set(PROFILES) == {"AMF", "SMF", "UPF", "NRF", "P-CSCF", "S-CSCF"}
    scenarios = {t: set(p.dial_tests) for t, p in PROFILES.items()}
    assert scenarios["AMF"] == {"ue-registration"}
    assert scenarios["SMF"] == scenarios["UPF"] == {"pdu-session"}
    assert scenarios["NRF"] == {"nf-discovery"}
    assert scenarios["P-CSCF"] == scenarios["S-CSCF"] == {"sip-register", "volte-call"}
    assert {t for t, p in PROFILES.items() if p.writes_cdrs} == {"SMF", "UPF", "P-CSCF", "S-CSCF"}
    assert PROFILES["AMF"].kpi("registration-success-rate").unit == "%"
    assert PROFILES["SMF"].kpi("pdu-session-success-rate")
    assert PROFILES["P-CSCF"].kpi("call-success-rate") and PROFILES["S-CSCF"].kpi("call-success-rate")
    assert {p.domain for t, p in PROFILES.items() if "CSCF" in t} == {"ims"}


def test_yang_module_names_every_config_node():
    yang = (YANG_DIR / "changeline-ne.yang").read_text()
    assert 'namespace "urn:changeline:params:xml:ns:yang:changeline-ne"' in yang
    assert "revision 2026-11-25" in yang
    for container, (list_name, leaves) in CONFIG_SCHEMA.items():
        assert f"container {container} " in yang
        if list_name:
            assert f"list {list_name} " in yang
        for leaf in leaves:
            assert f"leaf {leaf} " in yang
    for rpc in ("list-images", "install-software", "activate-software", "rollback-software", "dial-test",
                "drain-traffic", "restore-traffic"):
        assert f"rpc {rpc} " in yang


def _profile_text(**replace: str) -> str:
    text = (PROFILE_DIR / "amf.yaml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("old,new,expected", [
    ("default_version: 1.2.0", "default_version: 2.0.0", "default_version: '2.0.0' is not a release of AMF in the catalogue"),
    ("type: AMF", "type: MME", "type: 'MME' is not an NE type of the catalogue"),
    ("- {name: t3512, value: 3240}", "- {name: t3512, value: soon}", "config.timers.timer[0].value: must be an integer"),
    ("  capacity: {max-sessions: 2000000}", "  capacity: {max-sessions: 2000000}\n  dnns: {}",
     "config.dnns: unknown field"),  # AMF's catalogue type has no dnns container
    ("  - {name: cpu, nominal: 38, idle: 6, decimals: 1}\n", "", "kpis: must simulate every catalogue KPI of AMF: missing cpu"),
    ("name: ue-registration, attempts: 5", "name: voice-call, attempts: 5",
     "dial_tests[0].name: AMF has no scenario 'voice-call' in the catalogue"),
    ("latency_ms: 45}", "latency_ms: 45, cdr: {duration_s: 1, volume_uplink: 0, volume_downlink: 0, rating_group: 1}}",
     "dial_tests[0].cdr: is not allowed"),
])
def test_profile_mistakes_are_located(tmp_path: Path, old: str, new: str, expected: str):
    path = tmp_path / "amf.yaml"
    path.write_text(_profile_text(**{old: new}))
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert expected in str(err.value)
    assert str(err.value).startswith(f"{path}:")


def test_duplicate_keys_and_syntax_errors_are_located():
    with pytest.raises(InputError) as err:
        parse_located("a: 1\nb: 2\na: 3\n", "x.yaml")
    assert [str(p) for p in err.value.problems] == ["x.yaml:3:1: a: duplicate key 'a'"]
    with pytest.raises(InputError, match=r"^y.yaml:2:\d+: YAML syntax"):
        parse_located("a: [1,\nb: }", "y.yaml")


GOOD = """\
speed: 0.01
control: 127.0.0.1:0
address_base: 127.0.9.254
pools:
  - {name: amf-pool-1, type: AMF, calls_per_second: 50}
nes:
  - {name: amf-1, type: AMF, version: 1.1.0, pool: amf-pool-1, site: sh-1, region: east,
     faults: [{kind: dial-test-fail-after-upgrade}]}
  - {name: amf-2, type: amf, pool: amf-pool-1}
  - {name: pcscf-1, type: P-CSCF, address: 127.0.9.100, ports: {netconf: 1830, ssh: 1022}}
"""


def test_a_good_topology_loads(tmp_path: Path):
    path = tmp_path / "topo.yaml"
    path.write_text(GOOD)
    topo = load_topology(path, PROFILES)
    assert topo.speed == 0.01 and topo.control_port == 0
    amf1, amf2, pcscf = topo.nes
    assert (amf1.host, amf2.host) == ("127.0.9.254", "127.0.10.1")  # .255 and .0 are skipped
    assert amf2.version == "1.2.0" and amf2.profile.ne_type == "AMF"
    assert (pcscf.host, pcscf.netconf_port, pcscf.ssh_port) == ("127.0.9.100", 1830, 1022)
    assert [f.kind for f in amf1.faults] == ["dial-test-fail-after-upgrade"]


@pytest.mark.parametrize("edit,at,message", [
    (("type: AMF, version: 1.1.0", "type: MME, version: 1.1.0"), "MME", "nes[0].type: unknown NE type 'MME'"),
    (("version: 1.1.0", "version: 9.9.9"), "9.9.9", "nes[0].version: '9.9.9' is not a AMF version"),
    (("name: amf-2", "name: amf-1"), "amf-1, type: amf", "nes[1].name: duplicate NE name 'amf-1'"),
    (("address: 127.0.9.100", "address: 127.0.9.300"), "127.0.9.300", "nes[2].address: '127.0.9.300' is not"),
    (("pool: amf-pool-1}", "pool: nope}"), "nope", "nes[1].pool: no pool named 'nope'"),
    (("kind: dial-test-fail-after-upgrade", "kind: explode"), "explode", "nes[0].faults[0].kind: unknown fault"),
    (("speed: 0.01", "speed: fast"), "fast", "speed: must be a finite number"),
    (("control: 127.0.0.1:0", "control: localhost"), "localhost", "control: must be IPV4:PORT"),
    (("ssh: 1022}", "ssh: 1830}"), "1830}", "nes[2].ports.ssh: must differ"),
    (("nes:", "nodes:"), "nodes", "nodes: unknown field"),
    (("name: amf-2", "name: amf-2, platform: vendor-x"), "vendor-x",
     "nes[1].platform: the simulator plays changeline-ne or changeline-mml, not 'vendor-x'"),
])
def test_topology_mistakes_name_file_line_and_field(tmp_path: Path, edit: tuple[str, str], at: str, message: str):
    text = GOOD.replace(*edit)
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_topology(path, PROFILES)
    # The problem points at the offending value itself.
    line_no, line = next((i, line) for i, line in enumerate(text.splitlines(), 1) if at in line)
    assert f"{path}:{line_no}:{line.index(at) + 1}: {message}" in str(err.value), str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path):
    path = tmp_path / "topo.yaml"
    path.write_text("nes:\n  - {name: a, type: XXX}\n  - {name: a, type: AMF, version: 0.1.0}\n")
    with pytest.raises(InputError) as err:
        load_topology(path, PROFILES)
    fields = [p.field for p in err.value.problems]
    assert fields == ["nes[0].type", "nes[1].name", "nes[1].version"]


def test_listeners_may_not_clash(tmp_path: Path):
    path = tmp_path / "topo.yaml"
    path.write_text("control: 0.0.0.0:830\nnes:\n  - {name: a, type: AMF}\n")
    with pytest.raises(InputError, match="nes\\[0\\].ports.netconf: 127.0.1.1:830 is already used by the control"):
        load_topology(path, PROFILES)


def test_generated_topology_spreads_types_into_pools_of_two():
    topo = generate_topology(7, ["AMF", "smf"], PROFILES, address_base="127.0.1.1")
    assert [n.name for n in topo.nes] == ["amf-1", "smf-1", "amf-2", "smf-2", "amf-3", "smf-3", "amf-4"]
    assert [n.pool for n in topo.nes if n.profile.ne_type == "AMF"] == ["amf-pool-1"] * 2 + ["amf-pool-2"] * 2
    assert [n.pool for n in topo.nes if n.profile.ne_type == "SMF"] == ["smf-pool-1"] * 3  # odd one joins
    assert [n.host for n in topo.nes][:2] == ["127.0.1.1", "127.0.1.2"]


def test_generated_topology_with_bind_counts_ports_up():
    topo = generate_topology(3, ["NRF"], PROFILES, bind="0.0.0.0", ports={"netconf": 20830, "ssh": 20022})
    assert [(n.host, n.netconf_port, n.ssh_port) for n in topo.nes] == [
        ("0.0.0.0", 20830, 20022), ("0.0.0.0", 20831, 20023), ("0.0.0.0", 20832, 20024)]
    assert topo.client_address(topo.nes[0]) == "127.0.0.1"


def test_generated_topology_puts_nes_on_the_platforms_named_per_type():
    topo = generate_topology(4, ["AMF", "NRF"], PROFILES, platforms="changeline-mml, nrf=changeline-ne")
    assert [(n.name, n.platform) for n in topo.nes] == [
        ("amf-1", "changeline-mml"), ("nrf-1", "changeline-ne"), ("amf-2", "changeline-mml"), ("nrf-2", "changeline-ne")]
    assert {n.platform for n in generate_topology(2, ["AMF"], PROFILES).nes} == {"changeline-ne"}
    with pytest.raises(InputError) as err:
        generate_topology(1, ["AMF"], PROFILES, platforms="changeline-mml,changeline-ne,AMF=")
    assert [p.message for p in err.value.problems] == [
        "the simulator plays changeline-ne or changeline-mml, not ''", "name at most one platform without a type"]


def test_generated_topology_rejects_bad_arguments():
    with pytest.raises(InputError) as err:
        generate_topology(0, ["AMF", "HSS"], PROFILES, bind="1.2.3")
    assert [p.field for p in err.value.problems] == ["--count", "--types", "--bind"]


def test_loopback_addresses_skip_network_and_broadcast_octets():
    addresses = loopback_addresses("127.0.1.253")
    assert [next(addresses) for _ in range(4)] == ["127.0.1.253", "127.0.1.254", "127.0.2.1", "127.0.2.2"]
