"""One simulated network element: its software, images, traffic, faults and listeners.

`SimulatedNE` owns a NETCONF engine with the lifecycle RPCs of docs/platforms.md
registered, and two listeners on its address: NETCONF (830) and SSH (22: the CLI shell
and the `sftp` subsystem). Activation restarts it like a real NE: every session drops,
both ports refuse connections for the restart delay, then it answers on the new version
with its configuration. An idle NE runs no task and no timer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import asyncssh
from lxml import etree

from changeline.devices.datastore import instance_path

from .cli_shell import run_cli
from .clock import SimClock
from .faults import Fault, FaultSet, dial_failure, kpi_factors, reply_delay, rpc_drop
from .images import ImageStore, judge_image
from .mml_shell import MML_PLATFORM, run_mml
from .ne_xml import (
    NS,
    config_problem,
    config_root,
    dial_result_element,
    list_images_reply,
    problem_info,
    rpc_arg,
    state_element,
)
from .netconf_engine import NetconfEngine, RpcContext, RpcFault
from .netconf_server import start_netconf_listener
from .profiles import DialScenario, Profile
from .sftp import NeSftpServer
from .status import Alarm, ImageRow, KpiRow, NeStatus
from .traffic import CdrWriter, DialOutcome, Pool, cdr_rows, charging_id, dial_outcome, kpi_values

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# How long the NE lets an <ok/> reach the client before it goes down: the reply is
# already written, this covers the socket flush.
RESTART_GRACE_S = 0.05


def image_state(*, valid: bool, version: str, running: str, installed: set[str]) -> str:
    """An image's lifecycle state from what the NE knows about its version."""
    if not valid:
        return "invalid"
    if version in installed:
        return "active" if version == running else "installed"
    return "uploaded"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SimulatedNE:
    """One NE. Create it, `await start()`; the host calls `stop()` at shutdown."""

    def __init__(self, *, name: str, profile: Profile, version: str, clock: SimClock, home: Path,
                 host: str, netconf_port: int, ssh_port: int, host_key: asyncssh.SSHKey,
                 check_password: Callable[[str, str], bool], pool: Pool | None = None,
                 disk_total_mb: int | None = None, platform: str = "changeline-ne") -> None:
        self.name, self.profile, self.clock = name, profile, clock
        # changeline-ne: lifecycle and state over NETCONF; changeline-mml: over MML commands
        # on the SSH shell, with only the configuration datastores on NETCONF.
        self.platform = platform
        self.host, self.netconf_port, self.ssh_port = host, netconf_port, ssh_port
        self.host_key, self.check_password = host_key, check_password
        self.pool = pool
        self.disk_total_mb = disk_total_mb or profile.disk_total_mb
        self.sftp_root = home / "fs"
        self.images = ImageStore(self.sftp_root / "images")
        self.cdrs = CdrWriter(self.sftp_root / "cdr", name)
        self.running = version
        self.previous: str | None = None
        self.installed: set[str] = {version}
        self._installed_bytes: dict[str, int] = {}  # unpacked software, counted against the disk
        self.faults = FaultSet()
        self._fault_alarms: dict[tuple, Alarm] = {}
        self._control_alarms: list[Alarm] = []
        self._alarm_seq = 0
        self._charging_seq = 0
        self.state = "stopped"  # up | restarting | stopped
        self._started_at = clock.now()
        self._acceptors: list[asyncssh.SSHAcceptor] = []
        self._ssh_connections: set[asyncssh.SSHServerConnection] = set()
        # NETCONF connections, from the moment they are accepted: a restart aborts them all,
        # including one still authenticating, which would otherwise open its session after
        # the restart dropped the others and talk to an NE that is down.
        self._netconf_connections: weakref.WeakSet = weakref.WeakSet()
        self._restart: asyncio.Task | None = None
        self.restarts = 0  # evidence for tests: an activation must restart the NE exactly once
        self._cdr_writes: set[asyncio.TimerHandle] = set()
        self.mml = platform == MML_PLATFORM
        self.engine = NetconfEngine(config=config_root(name, profile.ne_type, profile.config),
                                    state_provider=lambda: [] if self.mml else [state_element(self.status())],
                                    validator=self._validate_config)
        self.engine.before_rpc = self._before_rpc
        for rpc, handler in () if self.mml else (("list-images", self._rpc_list_images), ("install-software", self._rpc_install),
                             ("activate-software", self._rpc_activate), ("rollback-software", self._rpc_rollback),
                             ("dial-test", self._rpc_dial_test), ("drain-traffic", self._rpc_drain),
                             ("restore-traffic", self._rpc_restore)):
            self.engine.register_rpc(NS, rpc, handler)
        if pool is not None:
            pool.join(name)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start on a clean file system (the image store and CDRs of a previous run are gone)."""
        self.images.reset()
        self.cdrs.reset()
        await self._listen()
        self._started_at = self.clock.now()
        self.state = "up"

    async def stop(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
        for handle in self._cdr_writes:
            handle.cancel()
        await self._go_down()
        self.state = "stopped"

    async def _listen(self) -> None:
        try:
            netconf = await start_netconf_listener(self.engine, host=self.host, port=self.netconf_port,
                                                   host_keys=[self.host_key], check_password=self.check_password,
                                                   on_connection=self._netconf_connections.add)
        except OSError as err:
            raise OSError(err.errno, f"{self.name}: cannot listen on {self.host}:{self.netconf_port}: "
                                     f"{err.strerror}") from None
        try:
            ssh = await asyncssh.create_server(
                lambda: _CliSshServer(self), self.host, self.ssh_port, server_host_keys=[self.host_key],
                process_factory=lambda process: (run_mml if self.mml else run_cli)(process, self),
                sftp_factory=lambda chan: NeSftpServer(chan, self),
                allow_scp=False, line_editor=False, x11_forwarding=False, agent_forwarding=False)
        except OSError as err:
            netconf.close()
            raise OSError(err.errno, f"{self.name}: cannot listen on {self.host}:{self.ssh_port}: "
                                     f"{err.strerror}") from None
        self._acceptors = [netconf, ssh]
        self.engine.accepting = True

    async def _go_down(self) -> None:
        self.engine.accepting = False
        for acceptor in self._acceptors:
            acceptor.close()
        # Drop sessions before waiting: from Python 3.12.1 Server.wait_closed() waits for
        # every open connection, so waiting first would hang the restart.
        self.engine.drop_all_sessions()
        for conn in [*self._ssh_connections, *self._netconf_connections]:
            conn.abort()  # a restarting NE does not say goodbye
        for acceptor in self._acceptors:
            await acceptor.wait_closed()
        self._acceptors = []
        if self.pool is not None:
            self.pool.update(self.name, up=False)

    def _schedule_restart(self, version: str) -> None:
        if self.faults.fire("activate-old-version"):
            version = self.running
        self._restart = asyncio.get_running_loop().create_task(self._restart_on(version))

    async def _restart_on(self, version: str) -> None:
        await asyncio.sleep(RESTART_GRACE_S)
        self.state = "restarting"
        self.restarts += 1
        await self._go_down()
        logger.info("%s restarting on %s", self.name, version)
        await self.clock.sleep(self.profile.delays.restart)
        if version != self.running:
            self.previous, self.running = self.running, version
        # Config survives a restart: running comes back from startup if it was saved.
        if self.engine.has_datastore("startup"):
            self.engine.set_datastore("running", self.engine.get_datastore("startup"))
        try:
            await self._listen()
        except OSError:
            logger.exception("%s cannot come back up", self.name)
            self.state, self._restart = "stopped", None
            return
        self._started_at = self.clock.now()
        self.state = "up"
        if self.pool is not None:
            self.pool.update(self.name, up=True)
        self._restart = None
        logger.info("%s up on %s", self.name, self.running)

    # --- faults and alarms --------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        fault.baseline_version = self.running
        self.faults.add(fault)
        self._sync_fault_alarms()

    def clear_faults(self, kind: str | None = None) -> list[Fault]:
        removed = self.faults.clear(kind)
        self._sync_fault_alarms()
        return removed

    def _sync_fault_alarms(self) -> None:
        active = {f.key(): f for f in self.faults.active("alarm")}
        self._fault_alarms = {k: a for k, a in self._fault_alarms.items() if k in active}
        for key, fault in active.items():
            if key not in self._fault_alarms:
                spec = self.profile.alarm(fault.params["id"]) if "id" in fault.params else None
                self._fault_alarms[key] = self._new_alarm(
                    spec.severity if spec else fault.params["severity"],
                    fault.params.get("text") or (spec.text if spec else ""),
                    alarm_id=spec.id if spec else None, origin="fault")

    def raise_alarm(self, severity: str, text: str, alarm_id: str | None = None) -> Alarm:
        alarm = self._new_alarm(severity, text, alarm_id=alarm_id, origin="control")
        self._control_alarms = [a for a in self._control_alarms if a.id != alarm.id] + [alarm]
        return alarm

    def clear_alarms(self, alarm_id: str | None = None) -> int:
        before = len(self._control_alarms)
        self._control_alarms = [a for a in self._control_alarms if alarm_id is not None and a.id != alarm_id]
        return before - len(self._control_alarms)

    def _new_alarm(self, severity: str, text: str, *, alarm_id: str | None, origin: str) -> Alarm:
        if alarm_id is None:
            self._alarm_seq += 1
            alarm_id = f"{self.profile.ne_type}-9{self._alarm_seq:03d}"
        return Alarm(alarm_id, severity, text, now_iso(), origin)

    # --- state ---------------------------------------------------------------------------

    def disk_total_bytes(self) -> int:
        return self.disk_total_mb * MIB

    def disk_free_bytes(self) -> int:
        if self.faults.active("disk-full"):
            return 0
        used = self.profile.disk_system_mb * MIB + self.images.used_bytes() + sum(self._installed_bytes.values())
        return max(0, self.disk_total_bytes() - used)

    def session_counts(self) -> dict[str, int]:
        return {"netconf": len(self.engine.sessions), "ssh": len(self._ssh_connections)}

    def transfer_bytes_per_sim_second(self) -> float:
        return self.profile.delays.transfer_mb_per_s * MIB

    def image_rows(self) -> list[ImageRow]:
        rows = []
        for name, inspection in self.images.entries():
            verdict = judge_image(inspection, ne_type=self.profile.ne_type, versions=self.profile.versions)
            manifest = inspection.manifest
            version = manifest.version if manifest else ""
            state = image_state(valid=verdict.ok, version=version, running=self.running, installed=self.installed)
            rows.append(ImageRow(name, version, manifest.ne_type if manifest else "", inspection.size,
                                 inspection.sha256, state, "" if verdict.ok else verdict.reason))
        return rows

    def _kpis(self) -> list[tuple]:
        load = 0.0 if self.state != "up" else (self.pool.load_factor(self.name) if self.pool else 1.0)
        return kpi_values(self.profile.kpis, load, kpi_factors(self.faults))

    def status(self) -> NeStatus:
        kpis = {kpi.name: (kpi, value) for kpi, value in self._kpis()}
        drained = bool(self.pool and self.pool.members[self.name].drained)
        return NeStatus(
            name=self.name, ne_type=self.profile.ne_type, domain=self.profile.domain, status=self.state,
            running_version=self.running, previous_version=self.previous,
            available_versions=self.profile.versions, installed_versions=tuple(sorted(self.installed)),
            images=tuple(self.image_rows()),
            alarms=(*self._fault_alarms.values(), *self._control_alarms),
            kpis=tuple(KpiRow(k.name, v, k.unit) for k, v in kpis.values()),
            cpu_percent=kpis["cpu"][1], disk_total_mb=self.disk_total_mb,
            disk_free_mb=self.disk_free_bytes() // MIB,
            pool=self.pool.name if self.pool else None, drained=drained,
            active_sessions=int(kpis["sessions"][1]),
            uptime_seconds=int(self.clock.now() - self._started_at) if self.state == "up" else 0,
        )

    # --- behaviour shared by NETCONF and the CLI ------------------------------------------

    async def dial_test(self, scenario: DialScenario) -> tuple[DialOutcome, list[str] | None]:
        await self.clock.sleep(self.profile.delays.dial_test)
        rate = dict((k.name, v) for k, v in self._kpis())[scenario.kpi]
        outcome = dial_outcome(scenario, rate, dial_failure(self.faults, self.running))
        if not self.profile.writes_cdrs:
            return outcome, None
        sequences = range(self._charging_seq + 1, self._charging_seq + outcome.successes + 1)
        self._charging_seq += outcome.successes
        if sequences and not self.faults.active("cdr-missing"):
            rows = cdr_rows(ne=self.name, ne_type=self.profile.ne_type, domain=self.profile.domain,
                            scenario=scenario, sequences=sequences, start=datetime.now(timezone.utc))
            self._schedule_cdr_write(rows)
        return outcome, [charging_id(self.name, seq) for seq in sequences]

    def _schedule_cdr_write(self, rows: list[tuple]) -> None:
        # The charging system collects records in batches: they land within the CDR delay.
        def write() -> None:
            self._cdr_writes.discard(handle)
            self.cdrs.append(rows)

        delay = self.clock.real_seconds(self.profile.delays.cdr_write)
        handle = asyncio.get_running_loop().call_later(delay, write)
        self._cdr_writes.add(handle)

    # --- NETCONF -----------------------------------------------------------------------------

    async def _before_rpc(self, session_id: int, rpc: str) -> str | None:
        delay = reply_delay(self.faults)
        if delay:
            await asyncio.sleep(delay)
        return rpc_drop(self.faults, rpc)

    def _validate_config(self, root: etree._Element) -> None:
        problem = config_problem(root, name=self.name, ne_type=self.profile.ne_type)
        if problem is not None:
            node, tag, message = problem
            path, namespaces = instance_path(node)
            raise RpcFault(tag, message, path=path, path_namespaces=namespaces,
                           info=problem_info(node, tag))

    async def _rpc_list_images(self, ctx: RpcContext, op: etree._Element) -> etree._Element:
        await self.images.warm()
        return list_images_reply(self.image_rows())

    async def _rpc_install(self, ctx: RpcContext, op: etree._Element) -> None:
        await self.install(_required_arg(op, "image"))

    # The software lifecycle, shared by both personalities: NETCONF RPCs and MML commands.
    # A refusal is an RpcFault either way; the MML shell prints its message as a RETCODE.
    async def install(self, name: str) -> None:
        if self.images.path(name) is None:
            raise RpcFault("invalid-value", f"image {name} not found in /images/", app_tag="image-not-found")
        await self.images.warm(name)
        inspection = self.images.inspect(name)
        if inspection is None:
            raise RpcFault("invalid-value", f"image {name} not found in /images/", app_tag="image-not-found")
        verdict = judge_image(inspection, ne_type=self.profile.ne_type, versions=self.profile.versions)
        if not verdict.ok:
            raise RpcFault("operation-failed", f"{name}: {verdict.reason}", app_tag=verdict.app_tag)
        version, size = inspection.manifest.version, inspection.manifest.payload_size
        if version in self.installed:
            return None  # already installed: nothing to do
        free = self.disk_free_bytes()
        if free < size:
            raise RpcFault("operation-failed", f"{name}: installing needs {size // MIB + 1} MB, "
                                               f"{free // MIB} MB free", app_tag="disk-full")
        await self.clock.sleep(self.profile.delays.install)
        if self.faults.fire("install-fail"):
            raise RpcFault("operation-failed", f"{name}: post-install verification of {version} failed",
                           app_tag="install-failed")
        self.installed.add(version)
        self._installed_bytes[version] = size
        return None

    async def _rpc_activate(self, ctx: RpcContext, op: etree._Element) -> None:
        await self.activate(_required_arg(op, "version"))

    async def activate(self, version: str) -> None:
        if version == self.running:
            return None  # idempotent: no restart
        if version not in self.installed:
            raise RpcFault("operation-failed", f"version {version} is not installed "
                                               f"(installed: {', '.join(sorted(self.installed))})",
                           app_tag="not-installed")
        await self._activate(version)
        return None

    async def _rpc_rollback(self, ctx: RpcContext, op: etree._Element) -> None:
        await self.rollback()

    async def rollback(self) -> None:
        if self.previous is None:
            raise RpcFault("operation-failed", "there is no previous version to roll back to",
                           app_tag="no-previous-version")
        await self._activate(self.previous)
        return None

    async def _activate(self, version: str) -> None:
        if self._restart is not None:
            raise RpcFault("in-use", "a restart is already in progress", app_tag="restart-in-progress")
        if self.faults.fire("activate-hang"):
            await asyncio.Event().wait()  # never answers, never restarts
        self._schedule_restart(version)

    async def _rpc_dial_test(self, ctx: RpcContext, op: etree._Element) -> etree._Element:
        name = _required_arg(op, "scenario")
        scenario = self.profile.dial_tests.get(name)
        if scenario is None:
            raise RpcFault("invalid-value", f"unknown scenario {name!r}; {self.profile.ne_type} supports "
                                            f"{', '.join(self.profile.dial_tests)}", app_tag="unknown-scenario")
        return dial_result_element(*await self.dial_test(scenario))

    async def _rpc_drain(self, ctx: RpcContext, op: etree._Element) -> None:
        self.set_drained(True)

    async def _rpc_restore(self, ctx: RpcContext, op: etree._Element) -> None:
        self.set_drained(False)

    def set_drained(self, drained: bool) -> None:
        if self.pool is None:
            raise RpcFault("operation-failed", f"{self.name} is not in a traffic pool", app_tag="not-pooled")
        self.pool.update(self.name, drained=drained)


def _required_arg(op: etree._Element, name: str) -> str:
    value = rpc_arg(op, name)
    if not value:
        raise RpcFault("missing-element", f"<{name}> is required", error_type="protocol",
                       info={"bad-element": name})
    return value


class _CliSshServer(asyncssh.SSHServer):
    """The SSH side of an NE (port 22): password login for the CLI shell and SFTP."""

    def __init__(self, ne: SimulatedNE) -> None:
        self._ne = ne
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._ne._ssh_connections.add(conn)
        sock = conn.get_extra_info("socket")
        if sock is not None:  # interactive echo must not wait for delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._ne._ssh_connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self._ne.check_password(username, password)
