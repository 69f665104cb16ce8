"""Inventory loading, selectors and bad-input messages."""


import pytest

from changeline.devices.inventory import load_inventory, matches
from changeline.errors import InputError

GOOD = """\
defaults:
  username: admin
  password_env: CHANGELINE_NE_PASSWORD
  data: {ssh_port: 22}
known_hosts: known_hosts
groups:
  5gc: {data: {domain: 5gc}}
  ims: {data: {domain: ims}}
hosts:
  amf-1: {hostname: 127.0.1.1, groups: [5gc], data: {ne_type: AMF, software_version: 1.2.0, pool: amf-pool, tags: [canary]}}
  smf-1: {hostname: 127.0.1.2, port: 1830, groups: [5gc], data: {ne_type: SMF, software_version: 1.2.0}}
  pcscf-1: {hostname: 127.0.1.3, groups: [ims], data: {ne_type: P-CSCF, software_version: 1.1.0, site: sh-1}}
"""


def test_inheritance_and_selectors(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text(GOOD)
    inv = load_inventory(path)
    amf = inv.hosts["amf-1"]
    assert amf.port == 830 and amf.ssh_port == 22 and amf.data["domain"] == "5gc"
    assert amf.known_hosts == str(tmp_path / "known_hosts")
    assert inv.hosts["smf-1"].port == 1830
    names = lambda sel: [h.name for h in inv.select(sel)]  # noqa: E731
    assert names("all") == ["amf-1", "pcscf-1", "smf-1"]
    assert names("type=AMF,SMF") == ["amf-1", "smf-1"]
    assert names("group=ims") == ["pcscf-1"]
    assert names("tag=canary") == ["amf-1"]
    assert names("*-1 & version=1.2.0") == ["amf-1", "smf-1"]
    assert names("pool=amf-pool") == ["amf-1"]
    assert names("site=sh-1") == ["pcscf-1"]
    with pytest.raises(InputError, match="unknown key 'colour'"):
        matches(amf, "colour=red")


def test_password_comes_from_the_environment_only(tmp_path, monkeypatch):
    path = tmp_path / "inv.yaml"
    path.write_text(GOOD)
    host = load_inventory(path).hosts["amf-1"]
    monkeypatch.delenv("CHANGELINE_NE_PASSWORD", raising=False)
    with pytest.raises(InputError, match="CHANGELINE_NE_PASSWORD is not set"):
        host.password()
    monkeypatch.setenv("CHANGELINE_NE_PASSWORD", "s3cret")
    assert host.password() == "s3cret"
    assert "s3cret" not in repr(host)


@pytest.mark.parametrize("text,expected", [
    ("hosts:\n  a: {hostname: 1.2.3.4, password: x}\n", "inv.yaml:2:26: hosts.a.password: credentials must not be written"),
    ("hosts:\n  a: {hostname: 1.2.3.4, port: 99999}\n", "inv.yaml:2:26: hosts.a.port: must be a port number"),
    ("hosts:\n  a: {port: 830}\n", "inv.yaml:2:3: hosts.a: missing 'hostname'"),
    ("hosts:\n  a: {hostname: h, groups: [nope]}\n", "inv.yaml:2:29: hosts.a.groups[0]: unknown group 'nope'"),
    ("hosts:\n  a: {hostname: h, colour: red}\n", "inv.yaml:2:20: hosts.a.colour: unknown field"),
    ("hosts: [a, b]\n", "inv.yaml:1:1: hosts: must be a mapping"),
    ("hosts:\n  a: {hostname: h\n", "inv.yaml:3:1: YAML syntax"),
    ("hosts:\n  a: {hostname: h}\n  a: {hostname: i}\n", "inv.yaml:3:3: hosts.a: duplicate key 'a'"),
])
def test_malformed_inventory_names_file_line_field(tmp_path, text, expected):
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_inventory(path)
    assert any(str(p).endswith(expected) or expected in str(p) for p in err.value.problems), str(err.value)
