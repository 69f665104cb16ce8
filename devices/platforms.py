"""Platform drivers as data: the inventory's `platform` picks a row of PLATFORMS.

A platform says how to reach an NE (ncclient `device_params`, netmiko `device_type`,
commands to run when a CLI session opens) and, for every operation an atom may ask for,
how this kind of NE does it: a call of the NETCONF contract (devices/ne_api.py), the
RFC 6241 datastore operations, SFTP, or MML/CLI commands whose replies are parsed with
TextFSM templates (devices/platform_templates/PLATFORM/). One `Driver` class runs every
row; adding a vendor is a new row and its templates, not a new class (docs/platforms.md).

What each atom asks of its NE is ATOM_NEEDS; `platform_problems` checks a plan against it
before anything connects, naming the host and the atom.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree

from changeline.devices import ne_api
from changeline.devices.configxml import canonical, config_from_data
from changeline.errors import ChangelineError, CommandError, DeviceError, RpcError, TransientError

if TYPE_CHECKING:
    from changeline.devices.session import DeviceSession

TEMPLATE_DIR = Path(__file__).resolve().parent / "platform_templates"

# The configuration operations are the RFC 6241 datastore operations (candidate, lock,
# validate, confirmed commit with a persist id); `config_commit` is a plain commit and the
# confirming commit of a pending confirmed one.
CONFIG_OPERATIONS = ("config_get", "config_edit", "config_discard", "config_validate", "config_commit",
                     "config_confirmed_commit", "config_cancel")
OPERATIONS = (
    "read_state", "list_images", "transfer", "install", "activate", "rollback_software", "dial_test",
    "fetch_cdrs", "read_kpis", "drain", "restore", *CONFIG_OPERATIONS,
)
# Load a change through the candidate and commit it with a confirm timer (config_change, and
# the restore a rollback or an undo does).
_CHANGE = ("config_get", "config_edit", "config_discard", "config_validate", "config_confirmed_commit",
           "config_commit")

# What every atom (and its undo) asks of its NE's platform.
ATOM_NEEDS: dict[str, tuple[str, ...]] = {
    "precheck": ("read_state",),  # and who holds the candidate lock, on a platform with datastores
    "backup": ("config_get",),  # reads state too when the platform can, for the version and evidence
    "transfer_software": ("list_images", "transfer", "read_state"),
    "install_software": ("list_images", "install"),
    "activate_software": ("read_state", "activate", "rollback_software"),
    "drain_traffic": ("read_state", "drain", "restore"),
    "restore_traffic": ("read_state", "restore"),
    "dial_test": ("dial_test",),
    "billing_check": ("dial_test", "fetch_cdrs"),
    "kpi_check": ("read_kpis",),
    "validate_upgrade": ("config_get",),  # and the state when the platform reports it
    "config_change": (*_CHANGE, "config_cancel"),  # undo cancels a pending commit, then restores
    "confirm_commit": ("config_commit", "config_get"),  # reads running when nothing is pending
    "rollback": _CHANGE,  # software operations when the backup names a version, dial_test for verify scenarios
}


@dataclass(frozen=True)
class Command:
    """One CLI/MML command of an operation: `command` is formatted with the operation's
    arguments (quoted for MML), its reply parsed with `template` (TextFSM) when given."""

    command: str
    template: str | None = None
    read_timeout: float | None = None  # None: the session's timeout; long-running commands need more


@dataclass(frozen=True)
class Platform:
    name: str
    summary: str
    netconf_device: str | None          # ncclient device_params name; None: no NETCONF
    cli_device: str | None              # netmiko device_type; None: no CLI
    cli_enable: bool = False            # netmiko enable() after login
    cli_on_open: tuple[str, ...] = ()   # e.g. turn paging off, as scrapli's on_open
    cli_failed_when: str | None = None  # regex with a `code` and `text` group for a refused command
    operations: Mapping[str, str | tuple[Command, ...]] = field(default_factory=dict)

    def supports(self, operation: str) -> bool:
        return operation in self.operations


_NETCONF_CONTRACT = {op: "netconf" for op in OPERATIONS if op not in ("transfer", "fetch_cdrs")}
_NETCONF_CONTRACT.update(transfer="sftp", fetch_cdrs="sftp")
_DATASTORE = {op: "netconf" for op in CONFIG_OPERATIONS}  # the RFC 6241 RPCs

_MML_RETCODE = r"RETCODE = (?P<code>\d+)\s+(?P<text>.*)"

PLATFORMS: dict[str, Platform] = {
    "changeline-ne": Platform(
        name="changeline-ne",
        summary="the changeline NE contract over NETCONF (YANG changeline-ne), files over SFTP",
        netconf_device="default", cli_device="cisco_ios", cli_enable=True,
        operations=_NETCONF_CONTRACT,
    ),
    "changeline-mml": Platform(
        name="changeline-mml",
        summary="software lifecycle and state as MML commands over the SSH shell; config over NETCONF",
        netconf_device="default", cli_device="generic", cli_on_open=("SET SCREEN: PAGING=OFF;",),
        cli_failed_when=_MML_RETCODE,
        operations={
            **_DATASTORE,
            "read_state": (Command("DSP NE:;", "dsp_ne.textfsm"), Command("LST SOFTWARE:;", "lst_software.textfsm"),
                           Command("LST ALMAF:;", "lst_almaf.textfsm"), Command("DSP KPI:;", "dsp_kpi.textfsm")),
            "list_images": (Command("LST SOFTWARE:;", "lst_software.textfsm"),),
            "read_kpis": (Command("DSP KPI:;", "dsp_kpi.textfsm"),),
            "transfer": "sftp",
            "install": (Command('INS SOFTWARE: IMAGE="{image}";', read_timeout=3600),),
            "activate": (Command('ACT SOFTWARE: VERSION="{version}";'),),
            "rollback_software": (Command("RBK SOFTWARE:;"),),
            "dial_test": (Command('STR DIALTEST: SCENARIO="{scenario}";', "str_dialtest.textfsm", read_timeout=600),),
            "fetch_cdrs": "sftp",
            "drain": (Command("BLK TRAFFIC:;"),),
            "restore": (Command("UBL TRAFFIC:;"),),
        },
    ),
    "netconf": Platform(
        name="netconf",
        summary="any RFC 6241 server: configuration atoms only (backup, config change, confirm, rollback)",
        netconf_device="default", cli_device=None, operations=_DATASTORE,
    ),
}


class PlatformError(ChangelineError):
    """An operation the NE's platform does not have (plans check this before running)."""


def platform_named(name: str) -> Platform | None:
    return PLATFORMS.get(name)


def platform_can(platform_name: str, operation: str) -> bool:
    platform = PLATFORMS.get(platform_name)
    return platform is not None and platform.supports(operation)


def atom_problem(host_name: str, platform_name: str, atom: str) -> str | None:
    """Why `atom` cannot run on this host's platform, or None."""
    platform = PLATFORMS.get(platform_name)
    if platform is None:
        return f"{host_name}: unknown platform {platform_name!r} (known: {', '.join(PLATFORMS)})"
    missing = [op for op in ATOM_NEEDS.get(atom, ()) if not platform.supports(op)]
    if missing:
        return (f"{host_name}: platform {platform_name!r} cannot run atom {atom!r}: it has no "
                f"{', '.join(missing)} operation{'s' if len(missing) > 1 else ''}")
    return None


# --- replies -----------------------------------------------------------------------------

@functools.cache
def _template_text(platform: str, template: str) -> str:
    return (TEMPLATE_DIR / platform.replace("-", "_") / template).read_text()


def parse(platform: str, template: str, output: str) -> list[dict[str, Any]]:
    """TextFSM rows of a reply, keys lower-cased (the template's Value names are the contract)."""
    import io

    import textfsm

    fsm = textfsm.TextFSM(io.StringIO(_template_text(platform, template)))
    return [{k.lower(): v for k, v in row.items()} for row in fsm.ParseTextToDicts(output)]


def refusal(pattern: str | None, output: str) -> str | None:
    """The NE's own words when a reply says the command failed."""
    match = re.search(pattern, output) if pattern else None
    if match and match.group("code") != "0":
        return f"{match.group('code')} {match.group('text').strip()}"
    return None


def _num(value: str, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def state_from_rows(rows: Mapping[str, list[dict[str, Any]]], raw: str) -> ne_api.NeState:
    """An NeState from the rows of the read_state commands (keyed by template)."""
    ne = (rows.get("dsp_ne.textfsm") or [{}])[0]
    software = rows.get("lst_software.textfsm", [])
    return ne_api.NeState(
        name=ne.get("name", ""), ne_type=ne.get("type", ""), running_version=ne.get("running_version", ""),
        previous_version="" if ne.get("previous_version") in ("", "-", None) else ne["previous_version"],
        available_versions=[v.strip() for v in ne.get("available_versions", "").split(",") if v.strip()],
        images=images_from_rows(software),
        alarms=[ne_api.Alarm(a["id"], a["severity"].lower(), a["text"], a["raised_at"])
                for a in rows.get("lst_almaf.textfsm", [])],
        kpis=kpis_from_rows(rows.get("dsp_kpi.textfsm", [])),
        cpu_percent=_num(ne.get("cpu_percent", "")), disk_total_mb=_num(ne.get("disk_total_mb", "")),
        disk_free_mb=_num(ne.get("disk_free_mb", "")), pool="" if ne.get("pool") == "-" else ne.get("pool", ""),
        drained=ne.get("drained", "").upper() == "YES", active_sessions=int(_num(ne.get("active_sessions", ""))),
        uptime_s=_num(ne.get("uptime_s", "")), raw=raw,
    )


def images_from_rows(rows: list[dict[str, Any]]) -> list[ne_api.Image]:
    return [ne_api.Image(name=r["name"], version="" if r["version"] == "-" else r["version"],
                         ne_type="" if r["type"] == "-" else r["type"], size=int(_num(r["size"])),
                         sha256="" if r["sha256"] == "-" else r["sha256"], state=r["state"].lower())
            for r in rows]


def kpis_from_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["name"]: _num(r["value"]) for r in rows}


def dial_from_rows(rows: list[dict[str, Any]], scenario: str) -> ne_api.DialTestResult:
    if not rows:
        raise DeviceError(f"dial test {scenario}: the reply had no result")
    r = rows[0]
    ids = tuple(i.strip() for i in r.get("charging_ids", "").split(",") if i.strip() and i.strip() != "-")
    return ne_api.DialTestResult(scenario=r.get("scenario") or scenario, passed=r["result"].upper() == "PASS",
                                 attempts=int(_num(r["attempts"])), successes=int(_num(r["successes"])),
                                 latency_ms=_num(r["latency_ms"]), reason=r.get("reason", ""), charging_ids=ids)


def _cli_argument(value: Any) -> str:
    """An argument as it goes between the command's quotes; one that would end the command
    or the quotes is refused, never sent."""
    text = str(value)
    if any(c in text for c in '";\r\n'):
        raise PlatformError(f"{text!r} cannot be sent as a CLI argument")
    return text


# --- the driver --------------------------------------------------------------------------

class Driver:
    """An NE's operations, done the way its platform row says. One per session."""

    def __init__(self, platform: Platform, session: DeviceSession, *, log: Callable[[str], None] | None = None):
        self.platform, self.session = platform, session
        self.log = log or (lambda message: None)

    def require(self, *operations: str) -> None:
        """Refuse, before anything is changed, work that would need an operation this platform lacks."""
        for operation in operations:
            self._way(operation)

    def _way(self, operation: str) -> str | tuple[Command, ...]:
        way = self.platform.operations.get(operation)
        if way is None:
            raise PlatformError(f"{self.session.endpoint.name}: platform {self.platform.name!r} has no "
                                f"{operation} operation")
        return way

    def _cli(self, operation: str, *, timeout: float | None = None,
             **args: Any) -> tuple[dict[str, list[dict[str, Any]]], str]:
        """Run an operation's commands: the parsed rows per template, and the replies' text.
        `timeout` (a probe's budget) wins over the command's own read timeout."""
        rows: dict[str, list[dict[str, Any]]] = {}
        texts = []
        for cmd in self._way(operation):
            line = cmd.command.format(**{k: _cli_argument(v) for k, v in args.items()})
            output = self.session.cli(line, read_timeout=timeout or cmd.read_timeout)
            refused = refusal(self.platform.cli_failed_when, output)
            if refused:
                raise CommandError(f"{line} refused: {refused}", host=self.session.endpoint.name)
            for progress in re.findall(r"^\s*PROGRESS\s*=\s*(.+)$", output, re.MULTILINE):
                self.log(f"{self.session.endpoint.name}: {line} progress {progress.strip()}")
            texts.append(output)
            if cmd.template:
                rows[cmd.template] = parse(self.platform.name, cmd.template, output)
        return rows, "\n".join(texts)

    # state
    def read_state(self, *, timeout: float | None = None) -> ne_api.NeState:
        if self._way("read_state") == "netconf":
            return ne_api.read_state(self.session, timeout=timeout)
        return state_from_rows(*self._cli("read_state", timeout=timeout))

    def read_state_optional(self) -> ne_api.NeState | None:
        """The NE's state, or None when its platform or the NE does not report it."""
        if not self.platform.supports("read_state"):
            return None
        if self._way("read_state") == "netconf":
            return ne_api.read_state_optional(self.session)
        try:
            return self.read_state()
        except TransientError:
            raise
        except (CommandError, RpcError):
            return None

    def reports_state(self) -> bool:
        """Does this NE report its state? Asked once per session: a generic server may load the
        changeline YANG module (so it advertises the namespace) without the NE behind it."""
        facts = self.session.facts
        if "reports_state" not in facts:
            facts["reports_state"] = self.read_state_optional() is not None
        return bool(facts["reports_state"])

    def list_images(self) -> list[ne_api.Image]:
        if self._way("list_images") == "netconf":
            return ne_api.list_images(self.session)
        return images_from_rows(self._cli("list_images")[0]["lst_software.textfsm"])

    def read_kpis(self) -> dict[str, float]:
        if self._way("read_kpis") == "netconf":
            return ne_api.read_kpis(self.session)
        return kpis_from_rows(self._cli("read_kpis")[0]["dsp_kpi.textfsm"])

    # software
    def transfer(self, local: str | Path, remote: str) -> int:
        self._way("transfer")  # sftp on every platform that has it
        return self.session.put_file(local, remote)

    def install(self, image: str) -> None:
        if self._way("install") == "netconf":
            return ne_api.install_software(self.session, image)
        self._cli("install", image=image)

    def activate(self, version: str) -> None:
        if self._way("activate") == "netconf":
            return ne_api.activate_software(self.session, version)
        self._cli("activate", version=version)

    def rollback_software(self) -> None:
        if self._way("rollback_software") == "netconf":
            return ne_api.rollback_software(self.session)
        self._cli("rollback_software")

    # traffic and service checks
    def drain(self) -> None:
        if self._way("drain") == "netconf":
            return ne_api.drain_traffic(self.session)
        self._cli("drain")

    def restore(self) -> None:
        if self._way("restore") == "netconf":
            return ne_api.restore_traffic(self.session)
        self._cli("restore")

    def dial_test(self, scenario: str) -> ne_api.DialTestResult:
        if self._way("dial_test") == "netconf":
            return ne_api.dial_test(self.session, scenario)
        return dial_from_rows(self._cli("dial_test", scenario=scenario)[0]["str_dialtest.textfsm"], scenario)

    def fetch_cdrs(self) -> list[dict[str, str]]:
        self._way("fetch_cdrs")
        return ne_api.read_cdrs(self.session)

    def remove_file(self, remote: str) -> None:
        """Take back a file `transfer` put on the NE (a transfer's undo)."""
        self._way("transfer")
        self.session.sftp.remove(remote)

    # configuration: RFC 6241 datastores. Which of their optional capabilities the NE has
    # (:startup, :validate, :confirmed-commit) is learned from its hello, not from the platform.
    def _datastore(self, operation: str) -> None:
        if self._way(operation) != "netconf":
            raise PlatformError(f"{self.session.endpoint.name}: platform {self.platform.name!r} maps {operation} "
                                "to commands; the driver does configuration over NETCONF datastores only")

    def has(self, capability: str) -> bool:
        """Does the NE advertise this NETCONF capability (`:candidate`, `:startup`, ...)?"""
        return self.session.has_capability(capability)

    def config_get(self, source: str = "running") -> bytes:
        """A datastore's configuration in canonical form: what backups store and compare."""
        self._datastore("config_get")
        return canonical(config_from_data(self.session.get_config(source)))

    def config_startup(self) -> bytes | None:
        """The startup configuration, or None when the NE has no startup datastore or nothing in it."""
        self._datastore("config_get")
        if not self.has(":startup"):
            return None
        try:
            return self.config_get("startup")
        except RpcError as err:
            # A server may have no startup yet (nothing copied to it): that is its absence.
            if err.tag not in ("invalid-value", "data-missing", "operation-failed"):
                raise
            return None

    @contextmanager
    def config_locked(self) -> Iterator[None]:
        """The candidate locked for this session while a change is loaded and committed."""
        self._datastore("config_edit")
        with self.session.locked("candidate"):
            yield

    def config_lock_holder(self) -> int | None:
        """Who holds the candidate lock (0: held, holder not said), None when it is free or the
        platform has no datastores to lock. Tries to take it and gives it straight back."""
        if not self.platform.supports("config_edit"):
            return None
        self._datastore("config_edit")
        try:
            self.session.lock("candidate")
        except RpcError as err:
            if "lock-denied" in (err.tag, (err.evidence or {}).get("tag")):
                found = re.search(r"session-id>\s*(\d+)", str((err.evidence or {}).get("info") or ""))
                return int(found.group(1)) if found else 0
            raise
        self.session.unlock("candidate")
        return None

    def config_edit(self, change: etree._Element, *, default_operation: str = "merge") -> None:
        """Load a `<config>` into the candidate."""
        self._datastore("config_edit")
        self.session.edit_config(change, target="candidate", default_operation=default_operation)

    def config_discard(self) -> None:
        self._datastore("config_discard")
        self.session.discard_changes()

    def config_validate(self, config: bytes) -> bool:
        """Validate a configuration; False when the NE cannot (no :validate). The content is sent
        inline rather than `<source><candidate/>`: on yuma123 netconfd a validate of the candidate
        datastore made the next commit a no-op (seen in tests/atoms/test_generic_atoms_thirdparty.py)."""
        self._datastore("config_validate")
        if not self.has(":validate"):
            return False
        self.session.validate(etree.fromstring(config))
        return True

    def config_commit(self, *, persist_id: str | None = None) -> None:
        """Commit the candidate, or with `persist_id` confirm that pending confirmed commit."""
        self._datastore("config_commit")
        self.session.commit(persist_id=persist_id)

    def config_confirmed_commit(self, timeout_s: int, *, persist: str | None = None) -> None:
        """Commit that reverts by itself after `timeout_s` unless confirmed; with `persist` the
        confirmation may come on another session (the engine may reconnect or restart)."""
        self._datastore("config_confirmed_commit")
        self.session.commit(confirmed=True, timeout=timeout_s, persist=persist)

    def config_cancel(self, persist_id: str | None = None) -> None:
        self._datastore("config_cancel")
        self.session.cancel_commit(persist_id=persist_id)

    def config_save(self) -> bool:
        """Copy running to startup so it survives a reload; False when the NE has no startup."""
        self._datastore("config_commit")
        if not self.has(":startup"):
            return False
        self.session.copy_config("running", "startup")
        return True


def driver_for(host: Any, session: DeviceSession, *, log: Callable[[str], None] | None = None) -> Driver:
    platform = PLATFORMS.get(getattr(host, "platform", "changeline-ne"))
    if platform is None:
        raise PlatformError(f"{host.name}: unknown platform {host.platform!r} (known: {', '.join(PLATFORMS)})")
    return Driver(platform, session, log=log)
