"""Inventory in the shape network engineers know from Nornir's SimpleInventory.

One YAML file with `defaults`, `groups` and `hosts`; a host inherits connection
settings and `data` from its groups (in order) and then from `defaults`.
Credentials never appear in the file: it names an environment variable
(`password_env`) or a Prefect Secret block (`password_secret`) to read them from.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from changeline.arguments import path_name_problem
from changeline.devices.platforms import PLATFORMS
from changeline.errors import InputError, Problem, credential_kind, shown
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
    problems += _credential_values(raw, (), source)
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
    known_hosts_default = raw.get("known_hosts")
    if known_hosts_default is not None and not isinstance(known_hosts_default, str):
        problems.append(source.problem(("known_hosts",), f"must be a file path, got {shown(known_hosts_default)}"))
        known_hosts_default = None
    base = Path(path).parent
    hosts: dict[str, Host] = {}
    for hname, hval in hosts_raw.items():
        where = ("hosts", str(hname))
        before = len(problems)
        name_problem = path_name_problem(str(hname))
        if name_problem:  # host names become directory names (evidence, backups)
            problems.append(source.problem(where, f"host name {name_problem}"))
        if not isinstance(hval, dict):
            problems.append(source.problem(where, "host must be a mapping"))
            continue
        _check_settings(hval, where, source, problems, allow=HOST_KEYS)
        host_groups = hval.get("groups") or []
        if not isinstance(host_groups, list):
            problems.append(source.problem(where + ("groups",), "must be a list of group names"))
            host_groups = []
        for i, g in enumerate(host_groups):
            if not isinstance(g, str):
                problems.append(source.problem(where + ("groups", i), f"must be a group name, got {shown(g)}"))
            elif g not in groups:
                problems.append(source.problem(where + ("groups", i), f"unknown group {shown(g)}"))
        host_groups = [g for g in host_groups if isinstance(g, str)]
        merged = _merge([dict(defaults)] + [groups[g] for g in reversed(host_groups)
                                             if isinstance(groups.get(g), dict)] + [hval])
        if merged.get("hostname") is None:
            problems.append(source.problem(where, "missing 'hostname'"))
            continue
        merged.setdefault("known_hosts", known_hosts_default)
        layers = [(where, hval)] + [(("groups", g), groups[g]) for g in host_groups
                                    if isinstance(groups.get(g), dict)] + [(("defaults",), defaults)]
        fields = {}
        for key, check in _FIELD_CHECKS.items():
            value = merged.get(key, _DEFAULTS.get(key))
            if value is None:
                fields[key] = None
                continue
            wrong = check(value)
            if wrong:
                problems.append(source.problem(_origin(layers, key), wrong))
            fields[key] = value
        data = merged.get("data") or {}
        for key, check in _DATA_CHECKS.items():
            if key in data and data[key] is not None:
                wrong = check(data[key])
                if wrong:
                    problems.append(source.problem(_origin(layers, "data", key), wrong))
        if len(problems) > before:
            continue
        known_hosts, key_file = fields["known_hosts"], fields["key_file"]
        if known_hosts and not os.path.isabs(known_hosts):
            known_hosts = str(base / known_hosts)
        if key_file and not os.path.isabs(key_file):
            key_file = str(base / key_file)
        hosts[str(hname)] = Host(
            name=str(hname), hostname=fields["hostname"], port=fields["port"], ssh_port=data.get("ssh_port", 22),
            username=fields["username"], password_env=fields["password_env"],
            password_secret=fields["password_secret"], key_file=key_file, platform=fields["platform"],
            known_hosts=known_hosts, timeout=float(fields["timeout"]), groups=tuple(host_groups), data=data,
        )
    if problems:  # a bad default is found once per host: report it once
        raise InputError(list(dict.fromkeys(problems)))
    return Inventory(hosts=hosts, file=str(path))


# --- field types: one small check per connection setting -------------------------------
# A check returns why a value is wrong (never repeating a string that could be a secret), or None.

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$")
_USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
MAX_TIMEOUT_S = 3600.0


def _number_problem(value: Any, *, what: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be {what}, got {shown(value)}"
    if not math.isfinite(value):
        return f"must be {what}, got {shown(value)}"
    return None


def _port_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        return f"must be a port number (1-65535), got {shown(value)}"
    return None


def _timeout_problem(value: Any) -> str | None:
    wrong = _number_problem(value, what="a number of seconds")
    if wrong:
        return wrong
    if not 0 < value <= MAX_TIMEOUT_S:
        return f"must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, got {value!r}"
    return None


def _hostname_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a host name or IP address, got {shown(value)}"
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if _HOSTNAME.match(value):
        return None
    return f"must be a host name or IP address (letters, digits, '-', '.'), got {shown(value)}"


def _pattern_problem(pattern: re.Pattern, what: str):
    def check(value: Any) -> str | None:
        if isinstance(value, str) and pattern.match(value):
            return None
        return f"must be {what}, got {shown(value)}"
    return check


def _string_problem(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and "\x00" not in value:
        return None
    return f"must be a non-empty string, got {shown(value)}"


def _tags_problem(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return None
    return f"must be a list of strings, got {shown(value)}"


def _scalar_text_problem(value: Any) -> str | None:
    # Facts the selectors and plans compare as text: a mapping or list here is a mistake.
    if isinstance(value, (dict, list)):
        return f"must be a single value, got {shown(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a single value, got {shown(value)}"
    return None


def _platform_problem(value: Any) -> str | None:
    # The platform picks the NE's driver (devices/platforms.py): an unknown one could drive nothing.
    if isinstance(value, str) and value in PLATFORMS:
        return None
    if value == "changeline-sim":  # what `changeline sim up` wrote before platforms were data
        return "platform 'changeline-sim' is now called 'changeline-ne' (or run `changeline sim up` again)"
    return f"unknown platform {shown(value)} (known: {', '.join(PLATFORMS)})"


_DEFAULTS = {"port": 830, "username": "admin", "platform": "changeline-ne", "timeout": 30.0}
_FIELD_CHECKS = {
    "hostname": _hostname_problem,
    "port": _port_problem,
    "username": _pattern_problem(_USERNAME, "a user name (letters, digits, '.', '_', '@', '-')"),
    "password_env": _pattern_problem(_ENV_NAME, "the name of an environment variable (letters, digits, '_')"),
    "password_secret": _pattern_problem(_BLOCK_NAME, "a Prefect Secret block name (lower-case letters, digits, '-')"),
    "key_file": _string_problem,
    "platform": _platform_problem,
    "known_hosts": _string_problem,
    "timeout": _timeout_problem,
}
_DATA_CHECKS = {
    "ssh_port": _port_problem,
    "time_scale": lambda v: _number_problem(v, what="a number") or (None if v > 0 else "must be more than 0"),
    "tags": _tags_problem,
    "ne_type": _scalar_text_problem,
    "software_version": _scalar_text_problem,
    "pool": _scalar_text_problem,
    "site": _scalar_text_problem,
    "region": _scalar_text_problem,
}


def _origin(layers: list[tuple[tuple, dict]], key: str, data_key: str | None = None) -> tuple:
    """Where a host's setting was written: the host, one of its groups, or defaults."""
    for where, layer in layers:
        if data_key is None and key in layer:
            return where + (key,)
        if data_key is not None and isinstance(layer.get("data"), dict) and data_key in layer["data"]:
            return where + ("data", data_key)
    return layers[0][0]


def _credential_values(value: Any, path: tuple, source: SourceMap) -> list[Problem]:
    """Wherever it sits, a value shaped like a credential has leaked into the file."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _credential_values(v, path + (str(k),), source)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _credential_values(v, path + (i,), source)]
    if isinstance(value, str) and len(value) >= 8 and credential_kind(value):  # no credential is shorter
        return [source.problem(path, f"looks like a credential ({credential_kind(value)}; not shown): remove it, "
                               "rotate it, and name it with password_env or password_secret instead")]
    return []


def _section(raw: dict, key: str, source: SourceMap, problems: list[Problem]) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        problems.append(source.problem((key,), "must be a mapping"))
        return {}
    return value


def _check_settings(settings: dict, where: tuple, source: SourceMap, problems: list[Problem], *, allow: set[str]) -> None:
    for key, value in settings.items():
        if value is None and key in CONNECTION_KEYS | {"groups", "data"}:
            problems.append(source.problem(where + (key,), "has no value (give one, or remove the line)"))
        elif key in FORBIDDEN_KEYS:
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
