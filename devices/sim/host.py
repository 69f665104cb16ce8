"""Run many simulated NEs in one asyncio loop in one process.

The host builds the pools and NEs of a topology, gives each NE a persistent SSH host key
from the state dir, starts their listeners and the control interface, and writes the
state dir files clients use: `inventory.yaml`, `known_hosts`, `secrets.env` and, last,
`sim.json` (its presence with a live pid means the simulator is ready).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path

import asyncssh
import yaml

from changeline.errors import ChangelineError

from .clock import SimClock
from .control import ControlServer
from .element import SimulatedNE
from .topology import Topology
from .traffic import Pool

logger = logging.getLogger(__name__)

USERNAME = "admin"
PASSWORD_ENV = "CHANGELINE_NE_PASSWORD"
PLATFORM = "changeline-ne"  # the default; an NE of the topology may say `platform: changeline-mml`
HOST_KEY_FILE = "ssh_host_ed25519_key"
# Starting listeners in bounded batches keeps 1,000 NEs from opening 2,000 sockets at once.
START_CONCURRENCY = 64


def resolve_password(state_dir: Path, environ: dict[str, str]) -> str:
    """The NE password: from the environment, else the one this state dir already uses,
    else a new random one (so restarts of the simulator keep the same credentials)."""
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    secrets_file = state_dir / "secrets.env"
    if secrets_file.exists():
        for line in secrets_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == PASSWORD_ENV and value.strip():
                return value.strip()
    return secrets.token_urlsafe(18)


def password_checker(password: str):
    expected = password.encode()

    def check(username: str, offered: str) -> bool:
        return username == USERNAME and hmac.compare_digest(offered.encode(), expected)

    return check


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The NE's host key, created once: clients verify it against known_hosts."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    key.write_private_key(str(partial))
    partial.chmod(0o600)
    partial.replace(path)
    return key


def inventory(topology: Topology) -> dict:
    """Nornir SimpleInventory-style hosts/groups/defaults in one document."""
    hosts = {}
    for ne in topology.nes:
        hosts[ne.name] = {
            "hostname": topology.client_address(ne),
            "port": ne.netconf_port,
            "groups": [ne.profile.domain],
            **({"platform": ne.platform} if ne.platform != PLATFORM else {}),
            "data": {"ne_type": ne.profile.ne_type, "software_version": ne.version, "pool": ne.pool,
                     "site": ne.site, "region": ne.region, "tags": list(ne.tags), "ssh_port": ne.ssh_port},
        }
    return {
        "known_hosts": "known_hosts",
        # time_scale tells the line that this NE's clock runs `speed` times real time, so
        # waits and change-window estimates shrink with it.
        "defaults": {"username": USERNAME, "password_env": PASSWORD_ENV, "platform": PLATFORM, "port": 830,
                     "data": {"ssh_port": 22, "time_scale": topology.speed}},
        "groups": {"5gc": {"data": {"domain": "5gc"}}, "ims": {"data": {"domain": "ims"}}},
        "hosts": hosts,
    }


def known_host_pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts_lines(topology: Topology, keys: dict[str, asyncssh.SSHKey]) -> list[str]:
    lines = []
    for ne in topology.nes:
        public = keys[ne.name].export_public_key("openssh").decode().split()
        for port in (ne.netconf_port, ne.ssh_port):
            lines.append(f"{known_host_pattern(topology.client_address(ne), port)} {public[0]} {public[1]}")
    return lines


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(partial, mode)
    partial.replace(path)


class SimHost:
    def __init__(self, topology: Topology, state_dir: Path, password: str) -> None:
        self.topology = topology
        self.state_dir = state_dir
        self.password = password
        self.clock = SimClock(topology.speed)
        self.pools = {p.name: Pool(p.name, p.ne_type, p.calls_per_second, self.clock) for p in topology.pools}
        self.specs = {spec.name: spec for spec in topology.nes}
        self.nes: dict[str, SimulatedNE] = {}
        self.control: ControlServer | None = None
        self._keys: dict[str, asyncssh.SSHKey] = {}

    @property
    def sim_json(self) -> Path:
        return self.state_dir / "sim.json"

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        check = password_checker(self.password)
        for spec in self.topology.nes:
            home = self.state_dir / "nes" / spec.name
            self._keys[spec.name] = load_host_key(home / HOST_KEY_FILE)
            ne = SimulatedNE(name=spec.name, profile=spec.profile, version=spec.version, clock=self.clock,
                             home=home, host=spec.host, netconf_port=spec.netconf_port, ssh_port=spec.ssh_port,
                             host_key=self._keys[spec.name], check_password=check,
                             pool=self.pools.get(spec.pool) if spec.pool else None,
                             disk_total_mb=spec.disk_total_mb, platform=spec.platform)
            for fault in spec.faults:
                ne.add_fault(fault)
            self.nes[spec.name] = ne
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def start_one(ne: SimulatedNE) -> None:
            async with gate:
                await ne.start()

        results = await asyncio.gather(*(start_one(ne) for ne in self.nes.values()), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            hint = " (ports below 1024 need root)" if any(getattr(f, "errno", None) == 13 for f in failures) else ""
            raise ChangelineError(f"{len(failures)} NE(s) could not start{hint}: {failures[0]}")
        self.control = ControlServer(self)
        try:
            await self.control.start(self.topology.control_host, self.topology.control_port)
        except OSError as err:
            await self.stop()
            raise ChangelineError(f"control interface cannot listen on {self.topology.control_host}:"
                                  f"{self.topology.control_port}: {err.strerror}") from None
        self._write_state_files()

    def _write_state_files(self) -> None:
        _write(self.state_dir / "inventory.yaml", yaml.safe_dump(inventory(self.topology), sort_keys=False))
        _write(self.state_dir / "known_hosts", "\n".join(known_hosts_lines(self.topology, self._keys)) + "\n")
        _write(self.state_dir / "secrets.env", f"{PASSWORD_ENV}={self.password}\n", 0o600)
        _write(self.sim_json, json.dumps({
            "pid": os.getpid(), "control_url": self.control.url, "state_dir": str(self.state_dir),
            "inventory": str(self.state_dir / "inventory.yaml"), "nes": len(self.nes),
            "speed": self.clock.speed, "started_at": time.time()}, indent=2) + "\n")

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        await asyncio.gather(*(ne.stop() for ne in self.nes.values()), return_exceptions=True)
        self.sim_json.unlink(missing_ok=True)

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down cleanly (removing sim.json)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self.stop()
