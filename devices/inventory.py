"""Inventory in the shape network engineers know from Nornir's SimpleInventory.

One YAML file with `defaults`, `groups` and `hosts`; a host inherits connection
settings and `data` from its groups (in order) and then from `defaults`.
Credentials never appear in the file: it names an environment variable
(`password_env`) or a Prefect Secret block (`password_secret`) to read them from.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from changeline.devices.platforms import PLATFORMS
from changeline.errors import InputError, Problem
from changeline.yamlsource import SourceMap, load_yaml_file

CONNECTION_KEYS = {
    "hostname", "port", "username", "password_env", "password_secret", "key_file",
    "platform", "known_hosts", "timeout",
}
HOST_KEYS = CONNECTION_KEYS | {"groups", "data"}
# Passwords in clear text are refused outright: an inventory gets copied, mailed and committed.
FORBIDDEN_KEYS = {"password", "secret", "private_key"}


@dataclass(frozen=True)
class Host:
    name: str
    hostname: str
    port: int = 830
    ssh_port: int = 22
    username: str = "admin"
    password_env: str | None = None
    password_secret: str | None = None
    key_file: str | None = None
    platform: str = "changeline-ne"  # a row of devices/platforms.py
    known_hosts: str | None = None
    timeout: float = 30.0
    groups: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ne_type(self) -> str:
        return str(self.data.get("ne_type", ""))

    @property
    def software_version(self) -> str:
        return str(self.data.get("software_version", ""))

    @property
    def pool(self) -> str | None:
        return self.data.get("pool")

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.data.get("tags") or ())

    def password(self) -> str | None:
        """Resolve the password at connect time only; it is never stored on the object."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise InputError(f"{self.name}: environment variable {self.password_env} is not set")
            return value
        if self.password_secret:
            from prefect.blocks.system import Secret

            return Secret.load(self.password_secret).get()
        return None


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, Host]
    file: str = "<memory>"

    def select(self, selector: str | None) -> list[Host]:
        return [self.hosts[n] for n in sorted(self.hosts) if matches(self.hosts[n], selector)]

    def __len__(self) -> int:
        return len(self.hosts)


def matches(host: Host, selector: str | None) -> bool:
    """Selector grammar (all terms must hold; a term with commas is an OR of values):

    `amf-*` or `amf-*,smf-1` (name globs), `type=AMF,SMF`, `group=5gc`, `tag=canary`, `pool=amf-pool-1`,
    `site=sh-1`, `region=east`, `version=1.2.0`, `all` or empty for every host.
    Terms are separated by spaces or `&`.
    """
    if not selector or selector.strip() in ("all", "*"):
        return True
    for term in selector.replace("&", " ").split():
        key, _, values = term.partition("=")
        if not _:
            if not any(fnmatch.fnmatchcase(host.name, glob) for glob in key.split(",") if glob):
                return False
            continue
        wanted = {v for v in values.split(",") if v}
        have: set[str]
        if key == "type":
            have = {host.ne_type}
        elif key == "group":
            have = set(host.groups)
        elif key == "tag":
            have = set(host.tags)
        elif key == "pool":
            have = {host.pool or ""}
        elif key == "name":
            if not any(fnmatch.fnmatchcase(host.name, v) for v in wanted):
                return False
            continue
        elif key in ("site", "region"):
            have = {str(host.data.get(key, ""))}
        elif key == "version":
            have = {host.software_version}
        else:
            raise InputError(f"selector term '{term}': unknown key '{key}' "
                             "(use name, type, group, tag, pool, site, region, version)")
        if not have & wanted:
            return False
    return True


def load_inventory(path: str | Path) -> Inventory:
    raw, source = load_yaml_file(path)
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise InputError(source.problem((), "inventory must be a mapping with 'hosts'"))
    for key in raw:
        if key not in ("defaults", "groups", "hosts", "known_hosts"):
            problems.append(source.problem((key,), "unknown top-level key (expected defaults, groups, hosts, known_hosts)"))
    defaults = _section(raw, "defaults", source, problems)
    groups = _section(raw, "groups", source, problems)
    hosts_raw = _section(raw, "hosts", source, problems)
    if "hosts" not in raw:
        problems.append(source.problem(("hosts",), "missing 'hosts'"))
    _check_settings(defaults, ("defaults",), source, problems, allow={"data"} | CONNECTION_KEYS)
    for gname, gval in groups.items():
        if not isinstance(gval, dict):
            problems.append(source.problem(("groups", gname), "group must be a mapping"))
            continue
        _check_settings(gval, ("groups", gname), source, problems, allow=HOST_KEYS)
    base = Path(path).parent
    known_hosts_default = raw.get("known_hosts")
    hosts: dict[str, Host] = {}
    for hname, hval in hosts_raw.items():
        where = ("hosts", str(hname))
        if not isinstance(hval, dict):
            problems.append(source.problem(where, "host must be a mapping"))
            continue
        _check_settings(hval, where, source, problems, allow=HOST_KEYS)
        host_groups = hval.get("groups") or []
        if not isinstance(host_groups, list):
            problems.append(source.problem(where + ("groups",), "must be a list of group names"))
            host_groups = []
        for i, g in enumerate(host_groups):
            if g not in groups:
                problems.append(source.problem(where + ("groups", i), f"unknown group '{g}'"))
        merged = _merge([dict(defaults)] + [groups.get(g, {}) for g in reversed(host_groups) if isinstance(groups.get(g), dict)] + [hval])
        hostname = merged.get("hostname")
        if not hostname:
            problems.append(source.problem(where, "missing 'hostname'"))
            continue
        port = merged.get("port", 830)
        data = merged.get("data") or {}
        ssh_port = data.get("ssh_port", 22)
        for field_name, value in (("port", port), ("data.ssh_port", ssh_port)):
            if not isinstance(value, int) or not 0 < value < 65536:
                problems.append(source.problem(where + tuple(field_name.split(".")), f"must be a port number, got {value!r}"))
        timeout = merged.get("timeout", 30.0)
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            problems.append(source.problem(where + ("timeout",), "must be a positive number of seconds"))
        platform = merged.get("platform", "changeline-ne")
        if platform not in PLATFORMS:
            problems.append(source.problem(where + ("platform",), f"{hname}: unknown platform {platform!r} (known: {', '.join(PLATFORMS)})"))
        known_hosts = merged.get("known_hosts", known_hosts_default)
        if known_hosts and not os.path.isabs(known_hosts):
            known_hosts = str(base / known_hosts)
        key_file = merged.get("key_file")
        if key_file and not os.path.isabs(key_file):
            key_file = str(base / key_file)
        if problems and any(p.field.startswith(f"hosts.{hname}") for p in problems):
            continue
        hosts[str(hname)] = Host(
            name=str(hname), hostname=str(hostname), port=int(port), ssh_port=int(ssh_port),
            username=str(merged.get("username", "admin")), password_env=merged.get("password_env"),
            password_secret=merged.get("password_secret"), key_file=key_file,
            platform=str(platform), known_hosts=known_hosts,
            timeout=float(timeout), groups=tuple(host_groups), data=data,
        )
    if problems:
        raise InputError(problems)
    return Inventory(hosts=hosts, file=str(path))


def _section(raw: dict, key: str, source: SourceMap, problems: list[Problem]) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        problems.append(source.problem((key,), "must be a mapping"))
        return {}
    return value


def _check_settings(settings: dict, where: tuple, source: SourceMap, problems: list[Problem], *, allow: set[str]) -> None:
    for key, value in settings.items():
        if key in FORBIDDEN_KEYS:
            problems.append(source.problem(where + (key,), "credentials must not be written in the inventory; "
                                           "use password_env (an environment variable) or password_secret (a Prefect Secret block)"))
        elif key not in allow:
            problems.append(source.problem(where + (key,), f"unknown field (expected one of {', '.join(sorted(allow))})"))
        elif key == "data":
            if not isinstance(value, dict):
                problems.append(source.problem(where + (key,), "must be a mapping"))
            else:
                for dkey in value:
                    if str(dkey).lower() in FORBIDDEN_KEYS:
                        problems.append(source.problem(where + (key, dkey), "credentials must not be written in the inventory"))


def _merge(layers: list[dict]) -> dict:
    """Later layers win; `data` merges key by key so groups can add facts."""
    out: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "data" and isinstance(value, dict):
                data.update(value)
            elif key != "groups":
                out[key] = value
    out["data"] = data
    return out
