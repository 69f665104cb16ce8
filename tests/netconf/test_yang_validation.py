"""The NE's YANG contract checked by third-party YANG tools against a running simulator.

- `pyang --lint` (RFC 8407 guidelines) on the changeline-ne module;
- a client discovers the modules as any NETCONF client would: the YANG library (RFC 8525)
  in `<get>`, each module's text through `<get-schema>` (RFC 6022);
- libyang's `yanglint` then validates the NE's `<get-config>` (configuration only) and
  `<get>` (configuration and state) replies against the modules fetched from the NE
  itself, not against the repository's copies.

The simulator runs as its own process (tests/simfixture.py); the client is changeline's
session layer (ncclient, host keys verified against the simulator's known_hosts).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from changeline.devices.session import DeviceSession, Endpoint
from tests.simfixture import running_sim

YANG_DIR = Path(__file__).resolve().parents[2] / "catalogue" / "yang"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CL = "urn:changeline:params:xml:ns:yang:changeline-ne"
YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NS = {"yl": YANGLIB, "ncm": NCM, "cl": CL}
# One NE per type family: the when-guarded containers (dnns, peers) appear on some only.
NES = [{"name": "amf-v", "type": "AMF", "version": "1.2.0"},
       {"name": "smf-v", "type": "SMF", "version": "1.2.0"},
       {"name": "pcscf-v", "type": "P-CSCF", "version": "1.2.0"}]

needs_yanglint = pytest.mark.skipif(shutil.which("yanglint") is None,
                                    reason="yanglint (Debian libyang-tools, scripts/system-deps.sh) is not installed")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("yang-sim"), NES) as running:
        yield running


@pytest.fixture
def session_for(sim):
    opened: list[DeviceSession] = []

    def open_session(name: str) -> DeviceSession:
        session = DeviceSession(Endpoint.from_host(sim.inventory.hosts[name]), rpc_timeout=10)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def pyang() -> list[str]:
    return [str(Path(sys.executable).with_name("pyang"))]


def fetch_schemas(session: DeviceSession, into: Path) -> list[str]:
    """What a client does to learn an NE's schema: read the YANG library, fetch every
    module it lists with <get-schema>. Returns the implemented modules' file paths."""
    library = session.get(f'<yang-library xmlns="{YANGLIB}"/>').find(f"{{{YANGLIB}}}yang-library")
    implemented = []
    for entry in library.iterfind("yl:module-set/*", NS):
        if etree.QName(entry).localname not in ("module", "import-only-module"):
            continue
        name, revision = entry.findtext("yl:name", namespaces=NS), entry.findtext("yl:revision", namespaces=NS)
        reply = session.rpc(f'<get-schema xmlns="{NCM}"><identifier>{name}</identifier>'
                            f"<version>{revision}</version><format>yang</format></get-schema>")
        text = reply.findtext(f"{{{NCM}}}data")
        assert re.match(rf"\s*module {re.escape(name)}\b", text), f"get-schema {name} returned {text[:80]!r}"
        path = into / f"{name}@{revision}.yang"
        path.write_text(text)
        if etree.QName(entry).localname == "module":
            implemented.append(str(path))
    return implemented


def yanglint(kind: str, schema_dir: Path, modules: list[str], data: etree._Element,
             tmp_path: Path) -> subprocess.CompletedProcess:
    """yanglint on the top-level nodes of a reply's <data>; `kind` config or data. Only the
    implemented modules are named: the others are found on the path as import-only."""
    document = tmp_path / f"{kind}.xml"
    document.write_bytes(b"".join(etree.tostring(child) for child in data))
    return subprocess.run(["yanglint", "-p", str(schema_dir), "-t", kind, *modules, str(document)],
                          capture_output=True, text=True, timeout=60)


def test_changeline_module_is_pyang_lint_clean():
    result = subprocess.run([*pyang(), "--lint", "-p", str(YANG_DIR), str(YANG_DIR / "changeline-ne.yang")],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_shipped_module_compiles_with_pyang():
    modules = sorted(str(p) for p in YANG_DIR.glob("*.yang"))
    result = subprocess.run([*pyang(), "-p", str(YANG_DIR), *modules], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_yanglint
def test_every_shipped_module_compiles_with_yanglint():
    modules = sorted(str(p) for p in YANG_DIR.glob("*.yang"))
    result = subprocess.run(["yanglint", "-p", str(YANG_DIR), *modules], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")


@needs_yanglint
@pytest.mark.parametrize("name", [ne["name"] for ne in NES])
def test_get_config_and_get_replies_validate_against_the_schemas_the_ne_serves(sim, session_for, tmp_path, name):
    sim.control.raise_alarm(name, "major", "N2 link degraded")  # state with a list entry and a date-and-time
    session = session_for(name)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    implemented = fetch_schemas(session, schemas)
    assert {Path(p).name.split("@")[0] for p in implemented} >= {
        "changeline-ne", "ietf-yang-library", "ietf-netconf-monitoring", "ietf-netconf"}

    config = session.get_config("running")
    assert config.find(f"{{{CL}}}ne") is not None
    checked = yanglint("config", schemas, implemented, config, tmp_path)
    assert (checked.returncode, checked.stderr) == (0, "")

    everything = session.get()
    assert [etree.QName(c).localname for c in everything] == [
        "ne", "ne-state", "yang-library", "modules-state", "netconf-state"]
    assert everything.find("cl:ne-state/cl:alarms/cl:alarm", NS) is not None
    checked = yanglint("data", schemas, implemented, everything, tmp_path)
    assert (checked.returncode, checked.stderr) == (0, "")
    # State is not configuration: the same reply fails as a config tree, so the checks bite.
    assert yanglint("config", schemas, implemented, everything, tmp_path).returncode != 0


@needs_yanglint
def test_yanglint_rejects_a_reply_that_breaks_the_module(sim, session_for, tmp_path):
    """The validator is not vacuous: one wrong value in a real reply is reported by path."""
    session = session_for("amf-v")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    implemented = fetch_schemas(session, schemas)
    state = session.get(f'<ne-state xmlns="{CL}"/>')
    state.find("cl:ne-state/cl:uptime-seconds", NS).text = "-1"  # uint64
    checked = yanglint("data", schemas, implemented, state, tmp_path)
    assert checked.returncode != 0 and "uptime-seconds" in checked.stderr


def test_library_monitoring_and_hello_agree(sim, session_for):
    session = session_for("smf-v")
    capabilities = session.server_capabilities
    [lib_1_1] = [c for c in capabilities if c.startswith("urn:ietf:params:netconf:capability:yang-library:1.1?")]
    [lib_1_0] = [c for c in capabilities if c.startswith("urn:ietf:params:netconf:capability:yang-library:1.0?")]
    data = etree.Element("data")  # ncclient takes one top-level filter node per request
    for selector in (f'<yang-library xmlns="{YANGLIB}"/>', f'<modules-state xmlns="{YANGLIB}"/>',
                     f'<netconf-state xmlns="{NCM}"><schemas/><capabilities/></netconf-state>'):
        data.extend(session.get(selector))
    content_id = data.findtext("yl:yang-library/yl:content-id", namespaces=NS)
    assert f"revision=2019-01-04&content-id={content_id}" in lib_1_1
    assert data.findtext("yl:modules-state/yl:module-set-id", namespaces=NS) == content_id
    assert f"revision=2019-01-04&module-set-id={content_id}" in lib_1_0
    listed = {(m.findtext("yl:name", namespaces=NS), m.findtext("yl:revision", namespaces=NS))
              for m in data.iterfind("yl:yang-library/yl:module-set/*", NS) if m.find("yl:revision", NS) is not None}
    served = {(s.findtext("ncm:identifier", namespaces=NS), s.findtext("ncm:version", namespaces=NS))
              for s in data.iterfind("ncm:netconf-state/ncm:schemas/ncm:schema", NS)}
    assert listed == served and ("changeline-ne", "2026-11-25") in served
    assert set(data.xpath("ncm:netconf-state/ncm:capabilities/ncm:capability/text()", namespaces=NS)) == capabilities
    datastores = data.xpath("yl:yang-library/yl:datastore/yl:name/text()", namespaces=NS)
    assert datastores == ["ds:running", "ds:candidate", "ds:startup"]
