"""The generic atoms (backup, config_change, rollback, validate_upgrade's config part)
against yuma123 netconfd: a NETCONF server we did not write."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from changeline.engine import runner
from changeline.atoms.backup import read_running
from changeline.devices.configxml import canonical
from changeline.devices.session import Endpoint
from changeline.errors import CheckFailed
from tests.atoms.helpers import make_context
from tests.thirdparty import netconfd

pytestmark = pytest.mark.skipif(not netconfd.available(), reason="netconfd not installed (scripts/system-deps.sh)")

YANG = Path(__file__).resolve().parents[2] / "catalogue" / "yang" / "changeline-ne.yang"
NS = "urn:changeline:params:xml:ns:yang:changeline-ne"
STARTUP = f"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><ne xmlns="{NS}"><name>tp-1</name>
<type>AMF</type><timers><timer><name>t3512</name><value>3240</value></timer></timers>
<capacity><max-sessions>1000</max-sessions></capacity></ne></config>"""
CHANGE = f'<ne xmlns="{NS}"><timers><timer><name>t3512</name><value>1800</value></timer></timers></ne>'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with netconfd.netconfd_server(tmp_path_factory.mktemp("netconfd"), modules=[YANG], startup_xml=STARTUP) as srv:
        yield srv


@pytest.fixture
def ctx(server, tmp_path):
    endpoint = Endpoint(name="tp-1", hostname=server.hostname, netconf_port=server.port, username=server.username,
                        key_file=server.key_file, known_hosts=server.known_hosts, timeout=20,
                        platform="netconf")  # the generic RFC 6241 platform: config atoms only
    context = make_context(tmp_path, endpoint, run_id=f"run-{time.monotonic_ns()}")
    yield context
    # Leave the shared server as we found it for the next test.
    runner.undo_run(context)
    context.session.close()


def test_backup_is_content_addressed_and_read_back(ctx):
    result = runner.execute("backup", ctx, {})
    record = ctx.backups.load(result.evidence["backup_id"])
    assert ctx.backups.get_object(record.running_sha256) == read_running(ctx)
    assert record.startup_sha256  # netconfd runs with :startup
    again = runner.execute("backup", ctx, {})
    assert again.evidence["backup_id"] != record.id  # every backup kept
    assert len(ctx.backups.history("tp-1")) == 2


def test_config_change_commits_confirms_and_undo_restores_byte_identical(ctx):
    runner.execute("backup", ctx, {})
    before = read_running(ctx)
    result = runner.execute("config_change", ctx, {"config": CHANGE, "confirm_timeout_s": 30})
    assert result.changed and "<value>1800</value>" in result.diff.replace(" ", "").replace("\n", "") or "1800" in result.diff
    time.sleep(0.5)
    assert b"1800" in read_running(ctx)
    again = runner.execute("config_change", ctx, {"config": CHANGE})
    assert not again.changed  # idempotent: nothing left to change
    runner.execute("validate_upgrade", ctx, {})  # intended change is not drift
    runner.undo_run(ctx)
    assert read_running(ctx) == before


def test_unconfirmed_change_reverts_by_itself(ctx):
    before = read_running(ctx)
    runner.execute("config_change", ctx, {"config": CHANGE, "confirm_timeout_s": 2, "confirm": "later"})
    assert b"1800" in read_running(ctx)
    # Stay silent as a crashed engine would: netconfd only runs its confirm timer while
    # idle (polling it every 0.3 s kept the change alive past its timeout).
    time.sleep(4)
    deadline = time.monotonic() + 10
    while read_running(ctx) != before and time.monotonic() < deadline:
        time.sleep(1.5)
    assert read_running(ctx) == before


def test_rollback_atom_restores_backup_after_out_of_band_edit(ctx):
    backup = runner.execute("backup", ctx, {})
    # Someone changes the NE behind our back: rollback must still land on the backup.
    with ctx.session.locked("candidate"):
        ctx.session.edit_config(f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{CHANGE}</config>')
        ctx.session.commit()
    with pytest.raises(CheckFailed, match="drifted"):
        runner.execute("validate_upgrade", ctx, {})
    result = runner.execute("rollback", ctx, {"backup_id": backup.evidence["backup_id"]})
    assert result.changed
    record = ctx.backups.load(backup.evidence["backup_id"])
    assert canonical(read_running(ctx)) == ctx.backups.get_object(record.running_sha256)


def test_host_key_mismatch_is_refused(server, tmp_path):
    from changeline.devices.session import DeviceSession
    from changeline.errors import HostKeyError

    other = tmp_path / "known_hosts"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    other.write_text(f"[127.0.0.1]:{server.port} " + " ".join((tmp_path / "k.pub").read_text().split()[:2]) + "\n")
    session = DeviceSession(Endpoint(name="tp-1", hostname=server.hostname, netconf_port=server.port,
                                     username=server.username, key_file=server.key_file, known_hosts=str(other)))
    with pytest.raises(HostKeyError):
        session.netconf
