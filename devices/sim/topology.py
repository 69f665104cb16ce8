"""Which NEs a simulator runs: read from a topology YAML file (validated, every problem
reported as FILE:LINE:COL: field: message) or generated from `--count N --types ...`.

Addressing has two modes. By default each NE gets its own loopback address, counting up
from `address_base`, with the standard ports (830, 22) as on a real network. With `bind`
every NE listens on that one address (0.0.0.0 in a container) and gets its own ports,
counting up from `ports`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from changeline.arguments import path_name_problem
from changeline.catalogue.located_yaml import Located, Section, load_located
from changeline.errors import InputError, Problem, quoted

from .faults import Fault, validate_fault
from .ne_xml import KNOWN_RPCS
from .profiles import Profile, find_type

DEFAULT_CONTROL = "127.0.0.1:8300"
DEFAULT_ADDRESS_BASE = "127.0.1.1"
DEFAULT_PORTS = {"netconf": 830, "ssh": 22}
DEFAULT_ADVERTISE = "127.0.0.1"
DEFAULT_CALLS_PER_SECOND = 100.0
GENERATED_POOL_SIZE = 2
# Generated NEs are spread over sites so wave planning has something to group by.
GENERATED_SITES = (("sh-1", "east"), ("bj-1", "north"), ("gz-1", "south"), ("sh-2", "east"))
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class PoolSpec:
    name: str
    ne_type: str
    calls_per_second: float


@dataclass(frozen=True)
class NeSpec:
    name: str
    profile: Profile
    version: str
    host: str  # the address it listens on
    netconf_port: int
    ssh_port: int
    pool: str | None
    site: str
    region: str
    tags: tuple[str, ...]
    faults: tuple[Fault, ...]
    disk_total_mb: int | None
    platform: str = "changeline-ne"  # or changeline-mml: lifecycle and state as MML commands


@dataclass(frozen=True)
class Topology:
    speed: float
    control_host: str
    control_port: int
    advertise: str
    pools: tuple[PoolSpec, ...]
    nes: tuple[NeSpec, ...]

    def client_address(self, ne: NeSpec) -> str:
        """The address clients use: the listen address, unless that is a wildcard."""
        return self.advertise if ne.host in WILDCARDS else ne.host


def loopback_addresses(base: str) -> Iterator[str]:
    """Consecutive addresses from `base`, skipping .0 and .255 so every one looks like a host."""
    address = ipaddress.IPv4Address(base)
    while True:
        if address.packed[-1] not in (0, 255):
            yield str(address)
        address += 1


def parse_host_port(text: str) -> tuple[str, int] | None:
    match = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+):(\d+)", text.strip())
    if not match or not _is_ipv4(match.group(1)) or not 0 <= int(match.group(2)) <= 65535:
        return None
    return match.group(1), int(match.group(2))


def _is_ipv4(text: Any) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


_TOP = ("speed", "control", "address_base", "bind", "advertise", "ports", "pools", "nes")
_NE = ("name", "type", "version", "pool", "site", "region", "tags", "faults", "address", "ports",
       "disk_total_mb", "platform")
SIM_PLATFORMS = ("changeline-ne", "changeline-mml")  # the simulator's two personalities


def load_topology(path: Path | str, profiles: dict[str, Profile], *, speed: float | None = None,
                  bind: str | None = None, control: str | None = None) -> Topology:
    """Read and validate a topology file; command-line overrides win over the file."""
    doc = load_located(path)
    if doc.data is None:
        raise InputError(Problem(doc.file, 1, 1, "", "the topology file is empty"))
    topology = _read(doc, profiles, speed=speed, bind=bind, control=control)
    doc.raise_problems()
    assert topology is not None
    return topology


def _read(doc: Located, profiles: dict[str, Profile], *, speed: float | None, bind: str | None,
          control: str | None) -> Topology | None:
    top = Section.of(doc, (), doc.data, _TOP)
    if top is None:
        return None
    speed = speed if speed is not None else top.get("speed", float, default=1.0)
    if speed <= 0:
        top.problem("speed", "must be positive")
    control_host, control_port = _read_control(top, control)
    bind = bind if bind is not None else top.get("bind", str)
    if bind is not None and not _is_ipv4(bind):
        top.problem("bind", f"{bind!r} is not an IPv4 address")
    advertise = top.get("advertise", str, default=DEFAULT_ADVERTISE)
    if not _is_ipv4(advertise):
        top.problem("advertise", f"{advertise!r} is not an IPv4 address")
    base = top.get("address_base", str, default=DEFAULT_ADDRESS_BASE)
    if not _is_ipv4(base):
        top.problem("address_base", f"{base!r} is not an IPv4 address")
        base = DEFAULT_ADDRESS_BASE
    ports = _read_ports(doc, ("ports",), top.data.get("ports"), DEFAULT_PORTS)
    pools = _read_pools(doc, top, profiles)
    nes = _read_nes(doc, top, profiles, pools, base=base, bind=bind, ports=ports)
    if doc.problems:
        return None
    topology = Topology(speed, control_host, control_port, advertise, tuple(pools.values()), tuple(nes))
    for i, kind, message in endpoint_clashes(topology):
        doc.problem(("nes", i, "ports", kind), message)
    return topology


def _read_control(top: Section, override: str | None) -> tuple[str, int]:
    text = override if override is not None else top.get("control", str, default=DEFAULT_CONTROL)
    parsed = parse_host_port(text)
    if parsed is None:
        top.problem("control", f"must be IPV4:PORT, got {text!r}")
        return "127.0.0.1", 0
    return parsed


def _read_ports(doc: Located, path: tuple, raw: Any, default: dict[str, int]) -> dict[str, int]:
    if raw is None:
        return dict(default)
    section = Section.of(doc, path, raw, ("netconf", "ssh"))
    ports = dict(default)
    for name in ("netconf", "ssh"):
        value = section.get(name, int, default=default[name]) if section else default[name]
        if not 1 <= value <= 65535:
            section.problem(name, f"must be a port number 1-65535, got {value}")
        ports[name] = value
    if section and ports["netconf"] == ports["ssh"]:
        section.problem("ssh", "must differ from the netconf port")
    return ports


def _read_pools(doc: Located, top: Section, profiles: dict[str, Profile]) -> dict[str, PoolSpec]:
    pools: dict[str, PoolSpec] = {}
    for i, raw in enumerate(top.get("pools", list, default=[])):
        item = Section.of(doc, ("pools", i), raw, ("name", "type", "calls_per_second"))
        if item is None:
            continue
        name = item.get("name", str, required=True, default="")
        type_name = item.get("type", str, required=True, default="")
        profile = find_type(profiles, type_name) if type_name else None
        if type_name and profile is None:
            item.problem("type", f"unknown NE type {type_name!r} (known: {', '.join(profiles)})")
        cps = item.get("calls_per_second", float, default=DEFAULT_CALLS_PER_SECOND)
        if cps < 0:
            item.problem("calls_per_second", "must not be negative")
        if name in pools:
            item.problem("name", f"duplicate pool name {name!r}")
        elif name and profile:
            pools[name] = PoolSpec(name, profile.ne_type, cps)
    return pools


def _read_nes(doc: Located, top: Section, profiles: dict[str, Profile], pools: dict[str, PoolSpec], *,
              base: str, bind: str | None, ports: dict[str, int]) -> list[NeSpec]:
    raw_nes = top.get("nes", list, required=True, default=[])
    if "nes" in top.data and isinstance(top.data["nes"], list) and not raw_nes:
        top.problem("nes", "must list at least one NE")
    addresses = loopback_addresses(base)
    nes: list[NeSpec] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_nes):
        item = Section.of(doc, ("nes", i), raw, _NE)
        address = next(addresses)
        if item is None:
            continue
        ne = _read_ne(item, profiles, pools, names)
        if ne is None:
            continue
        name, profile, version, pool, faults = ne
        host = item.get("address", str)
        if host is not None and not _is_ipv4(host):
            item.problem("address", f"{host!r} is not an IPv4 address")
        own_ports = _read_ports(doc, (*item.path, "ports"), item.data.get("ports"),
                                {k: v + i for k, v in ports.items()} if bind else ports)
        if max(own_ports.values()) > 65535:
            item.problem("ports", f"counting up from the top-level ports runs past 65535 at NE {i}")
        disk = item.get("disk_total_mb", int)
        if disk is not None and disk <= profile.disk_system_mb:
            item.problem("disk_total_mb", f"must exceed the {profile.disk_system_mb} MB the system uses")
        nes.append(NeSpec(name, profile, version, host or bind or address, own_ports["netconf"], own_ports["ssh"],
                          pool, item.get("site", str, default=""), item.get("region", str, default=""),
                          tuple(_read_tags(item)), faults, disk, _read_platform(item)))
    return nes


def _read_ne(item: Section, profiles: dict[str, Profile], pools: dict[str, PoolSpec],
             names: set[str]) -> tuple[str, Profile, str, str | None, tuple[Fault, ...]] | None:
    name = item.get("name", str, required=True, default="")
    if name and path_name_problem(name):  # the same rule as the inventory's: NE names become paths
        item.problem("name", f"{quoted(name)} {path_name_problem(name)}")
    elif name in names:
        item.problem("name", f"duplicate NE name {name!r}")
    names.add(name)
    type_name = item.get("type", str, required=True, default="")
    profile = find_type(profiles, type_name) if type_name else None
    if profile is None:
        if type_name:
            item.problem("type", f"unknown NE type {type_name!r} (known: {', '.join(profiles)})")
        return None
    version = item.get("version", str, default=profile.default_version)
    if version not in profile.versions:
        item.problem("version", f"{version!r} is not a {profile.ne_type} version "
                                f"(known: {', '.join(profile.versions)})")
    pool = item.get("pool", str)
    if pool is not None and pool not in pools:
        item.problem("pool", f"no pool named {pool!r} in pools")
    elif pool is not None and pools[pool].ne_type != profile.ne_type:
        item.problem("pool", f"pool {pool!r} is for {pools[pool].ne_type}, not {profile.ne_type}")
    faults = []
    for j, raw in enumerate(item.get("faults", list, default=[])):
        fault, problems = validate_fault(raw, kpis=[k.name for k in profile.kpis],
                                         alarm_ids=[a.id for a in profile.alarms], rpcs=KNOWN_RPCS)
        for field, message in problems:
            item.doc.problem((*item.path, "faults", j, *([field] if field else [])), message)
        if fault is not None:
            faults.append(fault)
    return name, profile, version, pool, tuple(faults)


def _read_platform(item: Section) -> str:
    platform = item.get("platform", str, default="changeline-ne")
    if platform not in SIM_PLATFORMS:
        item.problem("platform", f"the simulator plays {' or '.join(SIM_PLATFORMS)}, not {quoted(platform)}")
    return platform


def _read_tags(item: Section) -> list[str]:
    tags = item.get("tags", list, default=[])
    for j, tag in enumerate(tags):
        if not isinstance(tag, str):
            item.doc.problem((*item.path, "tags", j), f"must be a string, got {tag!r}")
    return [t for t in tags if isinstance(t, str)]


def endpoint_clashes(topology: Topology) -> list[tuple[int, str, str]]:
    """(NE index, port kind, message) for every listener that would share an address and
    port with an earlier one or with the control interface (a wildcard overlaps all)."""
    by_port: dict[int, list[tuple[str, str]]] = {topology.control_port: [(topology.control_host,
                                                                          "the control interface")]}
    clashes = []
    for i, ne in enumerate(topology.nes):
        for kind, port in (("netconf", ne.netconf_port), ("ssh", ne.ssh_port)):
            users = by_port.setdefault(port, [])
            clash = next((owner for host, owner in users
                          if host == ne.host or WILDCARDS[0] in (host, ne.host)), None)
            if clash:
                clashes.append((i, kind, f"{ne.host}:{port} is already used by {clash}"))
            users.append((ne.host, f"{ne.name} ({kind})"))
    return clashes


def platform_choice(spec: str, profiles: dict[str, Profile], problems: list[Problem]) -> dict[str, str]:
    """`--platform`: one platform for every NE (`changeline-mml`), or per NE type
    (`SMF=changeline-mml,AMF=changeline-mml`), or both (`changeline-mml,NRF=changeline-ne`).
    Returns the platform per NE type, `""` keying the default."""
    chosen = {"": SIM_PLATFORMS[0]}
    defaults = 0
    for item in (part.strip() for part in spec.split(",")):
        type_name, has_type, platform = item.rpartition("=")
        if item == "" or (has_type and not type_name.strip()):
            problems.append(Problem("<command line>", 0, 0, "--platform",
                                    f"{spec!r}: give PLATFORM or TYPE=PLATFORM items separated by commas"))
            continue
        platform = platform.strip()
        if platform not in SIM_PLATFORMS:
            problems.append(Problem("<command line>", 0, 0, "--platform",
                                    f"the simulator plays {' or '.join(SIM_PLATFORMS)}, not {platform!r}"))
            continue
        if not has_type:
            defaults += 1
            chosen[""] = platform
            continue
        profile = find_type(profiles, type_name.strip())
        if profile is None:
            problems.append(Problem("<command line>", 0, 0, "--platform",
                                    f"unknown NE type {type_name.strip()!r} (known: {', '.join(profiles)})"))
            continue
        chosen[profile.ne_type] = platform
    if defaults > 1:
        problems.append(Problem("<command line>", 0, 0, "--platform", "name at most one platform without a type"))
    return chosen


def generate_topology(count: int, types: list[str], profiles: dict[str, Profile], *,
                      speed: float = 1.0, control: str = DEFAULT_CONTROL,
                      address_base: str = DEFAULT_ADDRESS_BASE, bind: str | None = None,
                      ports: dict[str, int] | None = None, platforms: str = SIM_PLATFORMS[0]) -> Topology:
    """`count` NEs spread round-robin over `types`, in pools of two per type, each on the
    platform `platforms` names for its type (platform_choice)."""
    problems: list[Problem] = []
    if count < 1:
        problems.append(Problem("<command line>", 0, 0, "--count", "must be at least 1"))
    chosen = []
    for type_name in types:
        profile = find_type(profiles, type_name)
        if profile is None:
            problems.append(Problem("<command line>", 0, 0, "--types",
                                    f"unknown NE type {type_name!r} (known: {', '.join(profiles)})"))
        chosen.append(profile)
    if not types:
        problems.append(Problem("<command line>", 0, 0, "--types", "name at least one NE type"))
    parsed_control = parse_host_port(control)
    for field, value in (("--address-base", address_base), ("--bind", bind)):
        if value is not None and not _is_ipv4(value):
            problems.append(Problem("<command line>", 0, 0, field, f"{value!r} is not an IPv4 address"))
    if parsed_control is None:
        problems.append(Problem("<command line>", 0, 0, "--control", f"must be IPV4:PORT, got {control!r}"))
    if speed <= 0:
        problems.append(Problem("<command line>", 0, 0, "--speed", "must be positive"))
    platform_of = platform_choice(platforms, profiles, problems)
    ports = ports or DEFAULT_PORTS
    if bind and max(ports.values()) + count - 1 > 65535:
        problems.append(Problem("<command line>", 0, 0, "--count", "too many NEs for the port range"))
    if problems:
        raise InputError(problems)
    per_type: dict[str, list[int]] = {}
    for i in range(count):
        per_type.setdefault(chosen[i % len(chosen)].ne_type, []).append(i)
    pool_of: dict[int, str] = {}
    pools = []
    for ne_type, indexes in per_type.items():
        prefix = ne_type.lower().replace("-", "")
        pool_count = max(1, len(indexes) // GENERATED_POOL_SIZE)
        for k in range(pool_count):
            pools.append(PoolSpec(f"{prefix}-pool-{k + 1}", ne_type, DEFAULT_CALLS_PER_SECOND))
        for j, index in enumerate(indexes):
            pool_of[index] = f"{prefix}-pool-{min(j // GENERATED_POOL_SIZE, pool_count - 1) + 1}"
    addresses = loopback_addresses(address_base)
    nes = []
    numbers: dict[str, int] = {}
    for i in range(count):
        profile = chosen[i % len(chosen)]
        prefix = profile.ne_type.lower().replace("-", "")
        numbers[prefix] = numbers.get(prefix, 0) + 1
        site, region = GENERATED_SITES[i % len(GENERATED_SITES)]
        address = next(addresses)
        step = i if bind else 0
        nes.append(NeSpec(f"{prefix}-{numbers[prefix]}", profile, profile.default_version, bind or address,
                          ports["netconf"] + step, ports["ssh"] + step, pool_of[i], site, region, (), (), None,
                          platform_of.get(profile.ne_type, platform_of[""])))
    host, port = parsed_control
    topology = Topology(speed, host, port, DEFAULT_ADVERTISE, tuple(pools), tuple(nes))
    clashes = endpoint_clashes(topology)
    if clashes:
        raise InputError([Problem("<command line>", 0, 0, f"--{kind}-port", message)
                          for _, kind, message in clashes[:5]])
    return topology
