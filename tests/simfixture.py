"""Start a real simulator process from a topology for tests, and stop it afterwards.

The simulator runs as its own process (as operators run it), on a loopback address
range and control port of its own, so test modules never share NEs by accident.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from changeline.devices.inventory import Inventory, load_inventory
from changeline.devices.sim.control import SimControl

PASSWORD = "changeline-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningSim:
    state_dir: Path
    inventory_path: Path
    control: SimControl

    @property
    def inventory(self) -> Inventory:
        return load_inventory(self.inventory_path)


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "changeline.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@contextmanager
def running_sim(tmp: Path, nes: list[dict], *, pools: list[dict] | None = None, speed: float = 0.01) -> Iterator[RunningSim]:
    os.environ["CHANGELINE_NE_PASSWORD"] = PASSWORD
    base = f"127.{random.randint(60, 250)}.{random.randint(1, 250)}.1"
    topology = {"speed": speed, "control": f"127.0.0.1:{free_port()}", "address_base": base,
                "pools": pools or [], "nes": nes}
    tmp.mkdir(parents=True, exist_ok=True)
    topo_path = tmp / "topology.yaml"
    topo_path.write_text(yaml.safe_dump(topology, sort_keys=False))
    state = tmp / "sim"
    up = cli("sim", "up", "--topology", str(topo_path), "--state-dir", str(state))
    if up.returncode != 0:
        raise RuntimeError(f"sim up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    info = json.loads((state / "sim.json").read_text())
    try:
        yield RunningSim(state, state / "inventory.yaml", SimControl(info["control_url"]))
    finally:
        cli("sim", "down", "--state-dir", str(state))
