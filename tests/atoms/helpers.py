"""Building atom contexts for tests: real sessions, real journal and backup store on disk."""

from __future__ import annotations

from pathlib import Path

from changeline.state.backups import BackupStore
from changeline.engine.atom import AtomContext
from changeline.state.journal import Journal
from changeline.devices.inventory import Host
from changeline.devices.session import DeviceSession, Endpoint


def make_context(tmp: Path, endpoint: Endpoint, *, run_id: str = "run-1", speed: float = 1.0,
                 ne_type: str = "AMF") -> AtomContext:
    host = Host(name=endpoint.name, hostname=endpoint.hostname, port=endpoint.netconf_port,
                ssh_port=endpoint.ssh_port, username=endpoint.username, platform=endpoint.platform,
                data={"ne_type": ne_type})
    return AtomContext(host=host, session=DeviceSession(endpoint), journal=Journal(tmp / "journal.sqlite"),
                       backups=BackupStore(tmp / "backups"), run_id=run_id, speed=speed, log=lambda m: None)
