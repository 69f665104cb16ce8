"""Building atom contexts for tests: real sessions, real journal and backup store on disk."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from changeline.devices.inventory import Host
from changeline.devices.session import DeviceSession, Endpoint
from changeline.engine import runner
from changeline.engine.atom import AtomContext
from changeline.state.backups import BackupStore
from changeline.state.journal import Journal


def make_context(tmp: Path, endpoint: Endpoint, *, run_id: str = "run-1", speed: float = 1.0,
                 ne_type: str = "AMF") -> AtomContext:
    host = Host(name=endpoint.name, hostname=endpoint.hostname, port=endpoint.netconf_port,
                ssh_port=endpoint.ssh_port, username=endpoint.username, platform=endpoint.platform,
                data={"ne_type": ne_type})
    return AtomContext(host=host, session=DeviceSession(endpoint), journal=Journal(tmp / "journal.sqlite"),
                       backups=BackupStore(tmp / "backups"), run_id=run_id, speed=speed, log=lambda m: None)


@contextmanager
def sim_contexts(sim, tmp: Path, *, log: Callable[[str], None] = lambda m: None) -> Iterator[Callable[..., AtomContext]]:
    """make(NE name) -> an atom context on one of `sim`'s NEs (as its inventory says), sharing
    one journal and backup store; every session is closed (and the NE's faults cleared) after."""
    made: list[AtomContext] = []

    def make(name: str, *, run_id: str = "run-1") -> AtomContext:
        host = sim.inventory.hosts[name]
        ctx = AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host), rpc_timeout=10),
                          journal=Journal(tmp / "journal.sqlite"), backups=BackupStore(tmp / "backups"),
                          run_id=run_id, speed=0.01, log=log)
        made.append(ctx)
        return ctx

    try:
        yield make
    finally:
        for ctx in made:
            sim.control.clear_faults(ctx.ne)
            ctx.session.close()


def prepare_steps(image: Path, scenarios: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(step, atom, arguments) every upgrade starts with: precheck, backup, baseline dial test,
    transfer and install of `image`."""
    return [("pre", "precheck", {"expected_versions": ["1.2.0"]}), ("bk", "backup", {}),
            ("dial0", "dial_test", {"scenarios": scenarios, "record_baseline": True}),
            ("xfer", "transfer_software", {"image": str(image)}), ("inst", "install_software", {"image": image.name})]


def upgrade_steps(scenario: str, version: str = "1.3.0") -> list[tuple[str, str, dict[str, Any]]]:
    """(step, atom, arguments) of an upgrade from drain to validation, once the image is installed."""
    return [("drain", "drain_traffic", {"settle_s": 1}), ("act", "activate_software", {"version": version}),
            ("restore", "restore_traffic", {}), ("dial", "dial_test", {"scenarios": [scenario]}),
            ("bill", "billing_check", {"scenario": scenario, "sessions": 2}),
            ("kpi", "kpi_check", {"max_drop_pct": {f"{scenario}-success-rate": 1}}),
            ("val", "validate_upgrade", {"version": version})]


def run_steps(ctx: AtomContext, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Execute each step through the runner as a plan would, every one succeeding."""
    for step, atom, args in steps:
        ctx.step = step
        result = runner.execute(atom, ctx, args)
        assert result.ok, (atom, result.reason)
