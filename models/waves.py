"""Split the eligible NEs of a campaign into waves (pure, deterministic).

Order: hosts tagged `canary` first, then by name in natural order (amf-2 before amf-10).
Sizes: `count` NEs, `percent` of all planned NEs rounded up, or (a wave with neither) every
NE left; NEs left after the last wave form a final wave named `rest`. Empty waves are
dropped.

Pools: all members of one pool should never be in the same wave, or a bad wave takes
the whole pool down. Waves are filled in order skipping a host that would complete its
pool in the wave; then any pool still entirely in one wave is split by swapping one of
its members with a host of another wave, when a swap exists that breaks no other pool.
When no swap exists (one wave, or too few other hosts) the pool stays together.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from changeline.devices.inventory import Host
from changeline.models.model import DEFAULT_WAVES, WaveSpec


@dataclass(frozen=True)
class Wave:
    name: str
    hosts: tuple[Host, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)


def natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def host_order(host: Host) -> tuple:
    return ("canary" not in host.tags, natural_key(host.name))


def wave_sizes(specs: Sequence[WaveSpec], total: int) -> list[tuple[str, int]]:
    """(name, size) per wave for `total` NEs, with a final `rest` wave for any left over."""
    sizes: list[tuple[str, int]] = []
    left = total
    for spec in specs:
        if spec.is_rest:
            size = left
        elif spec.count is not None:
            size = min(spec.count, left)
        else:
            size = min(math.ceil(total * spec.percent / 100 - 1e-9), left)
        sizes.append((spec.name, size))
        left -= size
    if left:
        name = "rest" if all(n != "rest" for n, _ in sizes) else "remaining"
        sizes.append((name, left))
    return [(n, s) for n, s in sizes if s > 0]


def plan_waves(model_or_waves, hosts: Sequence[Host]) -> list[Wave]:
    """Waves for `hosts` (pass the eligible ones) under a model's campaign waves."""
    specs = _wave_specs(model_or_waves)
    ordered = sorted(hosts, key=host_order)
    pool_size = Counter(h.pool for h in ordered if h.pool)
    sizes = wave_sizes(specs, len(ordered))
    remaining = list(ordered)
    assigned: list[list[Host]] = []
    for index, (_, size) in enumerate(sizes):
        last = index == len(sizes) - 1
        wave: list[Host] = []
        in_wave: Counter = Counter()
        for host in list(remaining):
            if len(wave) == size:
                break
            if not last and host.pool and pool_size[host.pool] > 1 and in_wave[host.pool] + 1 == pool_size[host.pool]:
                continue  # would put the whole pool in this wave
            wave.append(host)
            in_wave[host.pool] += 1
            remaining.remove(host)
        for host in list(remaining):  # the skip left the wave short: fill it anyway
            if len(wave) == size:
                break
            wave.append(host)
            remaining.remove(host)
        assigned.append(wave)
    _split_whole_pools(assigned, pool_size)
    return [Wave(name, tuple(sorted(wave, key=host_order))) for (name, _), wave in zip(sizes, assigned)]


def _wave_specs(model_or_waves) -> tuple[WaveSpec, ...]:
    campaign = getattr(model_or_waves, "campaign", None)
    if campaign is not None:
        return tuple(campaign.waves)
    return tuple(model_or_waves) if model_or_waves else DEFAULT_WAVES


def whole_pools(waves: Sequence[Sequence[Host]], pool_size: Counter) -> list[tuple[str, int]]:
    """(pool, wave index) for every pool of 2+ members that sits entirely in one wave."""
    out = []
    for index, wave in enumerate(waves):
        counts = Counter(h.pool for h in wave if h.pool)
        out += [(pool, index) for pool, n in sorted(counts.items()) if pool_size[pool] > 1 and n == pool_size[pool]]
    return out


def _split_whole_pools(waves: list[list[Host]], pool_size: Counter) -> None:
    """Swap members out of whole pools, first swap that lowers the number of whole pools wins.
    A trial swap is judged by the members per (pool, wave) it changes - four counts - not by
    recounting every wave: recounting made this cubic, 69 s of CPU at 1,000 NEs."""
    members_in = Counter((h.pool, i) for i, wave in enumerate(waves) for h in wave if h.pool)

    def whole(pool: str | None, index: int) -> int:
        return int(bool(pool) and pool_size[pool] > 1 and members_in[(pool, index)] == pool_size[pool])

    def move(member: Host, index: int, candidate: Host, other: int, sign: int = 1) -> None:
        for pool, i, step in ((member.pool, index, -1), (member.pool, other, 1), (candidate.pool, other, -1),
                              (candidate.pool, index, 1)):
            members_in[(pool, i)] += sign * step

    def fewer_whole_after(member: Host, index: int, candidate: Host, other: int) -> bool:
        touched = {(member.pool, index), (member.pool, other), (candidate.pool, index), (candidate.pool, other)}
        before = sum(whole(pool, i) for pool, i in touched)
        move(member, index, candidate, other)
        after = sum(whole(pool, i) for pool, i in touched)
        move(member, index, candidate, other, sign=-1)
        return after < before

    for _ in range(sum(pool_size.values()) + 1):  # each successful swap fixes one pool
        by_order = [sorted(wave, key=host_order, reverse=True) for wave in waves]
        swap = None
        for pool, index in whole_pools(waves, pool_size):
            members = sorted((h for h in waves[index] if h.pool == pool), key=host_order)
            for other in _other_waves(index, len(waves)):
                member = members[-1] if other > index else members[0]
                candidate = next((c for c in by_order[other]
                                  if c.pool != pool and fewer_whole_after(member, index, c, other)), None)
                if candidate is not None:
                    swap = (member, index, candidate, other)
                    break
            if swap:
                break
        if swap is None:
            return
        member, index, candidate, other = swap
        waves[index][waves[index].index(member)] = candidate
        waves[other][waves[other].index(candidate)] = member
        move(member, index, candidate, other)


def _other_waves(index: int, count: int) -> list[int]:
    # Prefer moving the pool member to a later wave (the earlier waves stay small canaries).
    return [i for i in range(index + 1, count)] + [i for i in range(index - 1, -1, -1)]
