"""Third-party NETCONF clients against a running simulator, each verifying the NE's host key.

- OpenSSH `ssh -s netconf` (with and without `-tt`, the PTY request scrapli's system
  transport makes), the messages framed by hand in base:1.0 and base:1.1;
- `netconf-console2` (its own CLI over ncclient's transport);
- `scrapli-netconf`, with its "system" (OpenSSH in a PTY) and "paramiko" transports.

Host keys come from the simulator's known_hosts only (StrictHostKeyChecking=yes, no
auto-add), and a wrong key is refused by every client. The simulator runs as its own
process (tests/simfixture.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest
from lxml import etree

from changeline.devices.sim.framing import MessageDecoder, encode
from tests.simfixture import PASSWORD, running_sim

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CL = "urn:changeline:params:xml:ns:yang:changeline-ne"
YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NS = {"nc": NC, "cl": CL, "yl": YANGLIB, "ncm": NCM}
BASE_1_0 = "urn:ietf:params:netconf:base:1.0"
BASE_1_1 = "urn:ietf:params:netconf:base:1.1"
YANG_DIR = Path(__file__).resolve().parents[2] / "catalogue" / "yang"
NES = [{"name": "amf-t", "type": "AMF", "version": "1.2.0"},
       {"name": "smf-t", "type": "SMF", "version": "1.2.0"}]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("thirdparty-sim"), NES) as running:
        yield running


@pytest.fixture(scope="module")
def known_hosts(sim) -> Path:
    return sim.state_dir / "known_hosts"


@pytest.fixture(scope="module")
def foreign_known_hosts(sim, tmp_path_factory) -> Path:
    """The simulator's known_hosts with every key replaced by one no NE has: every client
    must refuse the NE then."""
    foreign = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().split()
    path = tmp_path_factory.mktemp("foreign") / "known_hosts"
    lines = (sim.state_dir / "known_hosts").read_text().splitlines()
    path.write_text("".join(f"{line.split()[0]} {foreign[0]} {foreign[1]}\n" for line in lines))
    return path


def host_of(sim, name: str):
    return sim.inventory.hosts[name]


def rpc(message_id: int, body: str) -> str:
    return f'<rpc xmlns="{NC}" message-id="{message_id}">{body}</rpc>'


# --- OpenSSH ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def askpass(tmp_path_factory) -> dict[str, str]:
    """OpenSSH reads the password from SSH_ASKPASS when forced to (no TTY, no sshpass)."""
    script = tmp_path_factory.mktemp("askpass") / "askpass"
    script.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    script.chmod(0o700)
    return {"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ""}


def openssh(host, known_hosts: Path, env: dict[str, str], stdin: bytes, *, tty: bool) -> subprocess.CompletedProcess:
    command = ["ssh", *(["-tt"] if tty else []), "-F", "/dev/null",
               "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
               "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
               "-o", "ConnectTimeout=10", "-p", str(host.port), "-l", host.username, host.hostname,
               "-s", "netconf"]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


def split_replies(output: bytes, *, chunked: bool) -> list[etree._Element]:
    """The server's hello, then its replies in the negotiated framing."""
    decoder = MessageDecoder()
    messages = decoder.feed(output)
    hello = next(messages)
    decoder.chunked = chunked
    return [etree.fromstring(hello)] + [etree.fromstring(m) for m in messages]


def error_tags(reply: etree._Element) -> list[str]:
    return reply.xpath("nc:rpc-error/nc:error-tag/text()", namespaces=NS)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
@pytest.mark.parametrize("tty", [False, True], ids=["no-pty", "pty"])
@pytest.mark.parametrize("base", [BASE_1_0, BASE_1_1], ids=["base-1.0", "base-1.1"])
def test_openssh_netconf_subsystem(sim, known_hosts, askpass, base, tty):
    host = host_of(sim, "amf-t")
    chunked = base == BASE_1_1
    # A newline before <?xml ...?> in the hello and in the first rpc, as clients send them.
    hello = (f'\n<?xml version="1.0" encoding="UTF-8"?>\n<hello xmlns="{NC}"><capabilities>'
             f"<capability>{base}</capability></capabilities></hello>").encode()
    requests = [
        '\n<?xml version="1.0" encoding="UTF-8"?>\n' + rpc(1, "<get-config><source><running/></source></get-config>"),
        rpc(2, "<get/><get/>"),  # two operations: malformed in 1.1, never said so to a 1.0 peer
        rpc(3, '<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
               "<identifier>changeline-ne</identifier></get-schema>"),
        rpc(4, "<close-session/>"),
    ]
    stdin = encode(hello, chunked=False) + b"".join(encode(r.encode(), chunked=chunked) for r in requests)
    result = openssh(host, known_hosts, askpass, stdin, tty=tty)
    assert result.returncode == 0, result.stderr.decode()
    server_hello, config, malformed, schema, closed = split_replies(result.stdout, chunked=chunked)
    assert BASE_1_1 in server_hello.xpath("//nc:capability/text()", namespaces=NS)
    assert config.findtext("nc:data/cl:ne/cl:name", namespaces=NS) == "amf-t"
    assert error_tags(malformed) == (["malformed-message"] if chunked else ["operation-failed"])
    assert schema.findtext(f"{{{NCM}}}data") == (YANG_DIR / "changeline-ne.yang").read_text()
    assert closed.find("nc:ok", NS) is not None


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
def test_openssh_refuses_an_ne_whose_host_key_is_not_known(sim, foreign_known_hosts, askpass):
    result = openssh(host_of(sim, "amf-t"), foreign_known_hosts, askpass, b"", tty=False)
    assert result.returncode == 255
    assert b"HOST IDENTIFICATION HAS CHANGED" in result.stderr or b"Host key verification failed" in result.stderr


# --- netconf-console2 --------------------------------------------------------------------------

def netconf_console(sim, name: str, known_hosts: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """netconf-console2 verifying the host key: --hostkey-verify with an ssh config whose
    UserKnownHostsFile is the simulator's known_hosts."""
    host = host_of(sim, name)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host *\n  UserKnownHostsFile {known_hosts}\n")
    command = [str(Path(sys.executable).with_name("netconf-console2")), "--host", host.hostname,
               "--port", str(host.port), "-u", host.username, "-p", PASSWORD,
               "--ssh-config", str(ssh_config), "--hostkey-verify", "-r", "20", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_netconf_console2_reads_config_state_and_schemas(sim, known_hosts, tmp_path):
    result = netconf_console(sim, "smf-t", known_hosts, tmp_path, "--get-config")
    assert result.returncode == 0, result.stderr
    config = etree.fromstring(result.stdout.encode())  # it prints the reply's <data>
    assert (config.tag, config.findtext("cl:ne/cl:type", namespaces=NS)) == (f"{{{NC}}}data", "SMF")

    # Its --filter is a path it turns into a subtree filter.
    result = netconf_console(sim, "smf-t", known_hosts, tmp_path, "-N", f"yl={YANGLIB}", "--get",
                             "--filter", "/yl:yang-library/yl:module-set")
    assert result.returncode == 0, result.stderr
    library = etree.fromstring(result.stdout.encode())
    modules = {m.findtext("yl:name", namespaces=NS): m.findtext("yl:revision", namespaces=NS)
               for m in library.iterfind(".//yl:module", NS)}
    assert modules["changeline-ne"] == "2026-11-25" and modules["ietf-netconf-monitoring"] == "2010-10-04"

    for name, revision in modules.items():
        result = netconf_console(sim, "smf-t", known_hosts, tmp_path, "--get-schema", name)
        assert result.returncode == 0, result.stderr
        schema = etree.fromstring(result.stdout.encode())
        assert schema.tag == f"{{{NCM}}}data"
        text = schema.text
        assert re.match(rf"\s*module {re.escape(name)} ", text)
        assert re.search(rf"revision \"?{revision}", text)


def test_netconf_console2_refuses_an_unknown_host_key(sim, foreign_known_hosts, tmp_path):
    result = netconf_console(sim, "smf-t", foreign_known_hosts, tmp_path, "--get-config")
    assert result.returncode != 0
    assert "SSHUnknownHostError - Unknown host key" in result.stdout + result.stderr


# --- scrapli-netconf ---------------------------------------------------------------------------

def scrapli(sim, name: str, known_hosts: Path, transport: str):
    from scrapli_netconf.driver import NetconfDriver

    host = host_of(sim, name)
    return NetconfDriver(host=host.hostname, port=host.port, auth_username=host.username,
                         auth_password=PASSWORD, auth_strict_key=True, ssh_known_hosts_file=str(known_hosts),
                         transport=transport, timeout_socket=15, timeout_transport=30, timeout_ops=30)


def reply_of(response) -> etree._Element:
    assert not response.failed, response.result
    return etree.fromstring(response.result.encode())


@pytest.mark.parametrize("transport", ["system", "paramiko"])
def test_scrapli_netconf_reads_edits_and_commits(sim, known_hosts, transport):
    if transport == "system" and shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    timer = f"scrapli-{transport}"
    with scrapli(sim, "amf-t", known_hosts, transport) as conn:
        assert conn.netconf_version.value == "1.1"
        assert f"{CL}?module=changeline-ne&revision=2026-11-25" in conn.server_capabilities

        config = reply_of(conn.get_config(source="running"))
        assert config.findtext("nc:data/cl:ne/cl:name", namespaces=NS) == "amf-t"

        library = reply_of(conn.get(filter_=f'<yang-library xmlns="{YANGLIB}"><content-id/></yang-library>',
                                    filter_type="subtree"))
        content_id = library.findtext("nc:data/yl:yang-library/yl:content-id", namespaces=NS)
        assert any(c.endswith(f"content-id={content_id}") for c in conn.server_capabilities)

        edit = (f'<config><ne xmlns="{CL}"><timers><timer><name>{timer}</name><value>42</value>'
                "</timer></timers></ne></config>")
        reply_of(conn.edit_config(config=edit, target="candidate"))
        reply_of(conn.commit())
        stored = reply_of(conn.get_config(source="running", filter_=f'<ne xmlns="{CL}"><timers/></ne>'))
        assert stored.xpath(f"//cl:timer[cl:name='{timer}']/cl:value/text()", namespaces=NS) == ["42"]

        # The NE's own data checks name the offending element (RFC 6241 appendix A).
        bad = f'<config><ne xmlns="{CL}"><routes><route><name>r1</name></route></routes></ne></config>'
        refused = etree.fromstring(conn.edit_config(config=bad, target="running").result.encode())
        assert error_tags(refused) == ["unknown-element"]
        assert refused.xpath("//nc:error-info/nc:bad-element/text()", namespaces=NS) == ["routes"]

        cleanup = (f'<config xmlns:nc="{NC}"><ne xmlns="{CL}"><timers><timer nc:operation="delete">'
                   f"<name>{timer}</name></timer></timers></ne></config>")
        reply_of(conn.edit_config(config=cleanup, target="running"))


@pytest.mark.parametrize("transport", ["system", "paramiko"])
def test_scrapli_netconf_refuses_an_unknown_host_key(sim, foreign_known_hosts, transport):
    from scrapli.exceptions import ScrapliAuthenticationFailed, ScrapliConnectionNotOpened

    if transport == "system" and shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    conn = scrapli(sim, "amf-t", foreign_known_hosts, transport)
    with pytest.raises((ScrapliAuthenticationFailed, ScrapliConnectionNotOpened)) as refused:
        conn.open()
    assert "known" in str(refused.value).lower() or "host key" in str(refused.value).lower(), refused.value
