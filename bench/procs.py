"""The processes a campaign benchmark starts (simulator, Prefect server, engines), each
stopped by its own pid, and a sampler of their memory and CPU while they run."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_loopback_base(count: int, tries: int = 50) -> str:
    """A 127.X.Y.1 range no other simulator listens on (spot-checked at both ends, port 830)."""
    for _ in range(tries):
        second, third = random.randint(100, 250), random.randint(1, 200)
        base = f"127.{second}.{third}.1"
        last = f"127.{second}.{third + count // 254}.1"  # addresses skip .0 and .255
        if all(_port_free(host, 830) for host in (base, last)):
            return base
    raise RuntimeError("no free loopback range found")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def stop_process(proc: subprocess.Popen, *, grace_s: float = 20.0) -> None:
    """SIGTERM this process (only it: by pid), then SIGKILL it and any children it left."""
    if proc.poll() is not None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


@dataclass
class Simulator:
    proc: subprocess.Popen
    state_dir: Path
    inventory: Path
    control_url: str
    startup_s: float

    def stop(self) -> None:
        stop_process(self.proc, grace_s=60.0)


def start_simulator(state_dir: Path, *, nes: int, speed: float, password: str, types: str,
                    timeout_s: float = 600.0) -> Simulator:
    """`python -m changeline.devices.sim --count N` in the foreground of its own process,
    on a loopback range and control port of its own; ready when sim.json names its pid."""
    state_dir.mkdir(parents=True, exist_ok=True)
    base = free_loopback_base(nes)
    started = time.monotonic()
    log = open(state_dir.parent / f"{state_dir.name}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "changeline.devices.sim", "--count", str(nes), "--types", types,
         "--speed", str(speed), "--state-dir", str(state_dir), "--address-base", base,
         "--control", f"127.0.0.1:{free_port()}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        env={**os.environ, "CHANGELINE_NE_PASSWORD": password})
    log.close()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                info = json.loads((state_dir / "sim.json").read_text())
                if info.get("pid") == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (state_dir.parent / f"{state_dir.name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"simulator did not start ({nes} NEs):\n{tail}")
            time.sleep(0.2)
    except BaseException:
        stop_process(proc)
        raise
    return Simulator(proc, state_dir, Path(info["inventory"]), info["control_url"], time.monotonic() - started)


@dataclass
class PrefectServer:
    proc: subprocess.Popen
    api_url: str
    home: Path
    startup_s: float
    database: str

    def stop(self) -> None:
        stop_process(self.proc, grace_s=20.0)


def start_prefect_server(home: Path, *, extra_env: dict[str, str] | None = None,
                         timeout_s: float = 240.0) -> PrefectServer:
    """A standalone `prefect server start` with a fresh PREFECT_HOME (SQLite there unless
    PREFECT_API_DATABASE_CONNECTION_URL is set), on a free port; ready when /health answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_API_URL": api, **(extra_env or {})}
    env.pop("PREFECT_API_URL", None)
    database = env.get("PREFECT_API_DATABASE_CONNECTION_URL", "")
    database = database.split(":", 1)[0].split("+", 1)[0] if database else "sqlite"
    started = time.monotonic()
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=home)
    log.close()
    deadline = time.monotonic() + timeout_s
    try:
        while not api_healthy(api):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Prefect server did not start:\n"
                                   + (home / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
    except BaseException:
        stop_process(proc)
        raise
    return PrefectServer(proc, api, home, time.monotonic() - started, database)


def api_healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def api_post(api: str, path: str, body: dict, timeout: float = 30.0):
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


FINAL_STATES = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]


def recorded_runs(api: str) -> dict[str, int]:
    """What the server has stored: task and flow runs, all and those in a final state."""
    final = {"state": {"type": {"any_": FINAL_STATES}}}
    return {"task_runs": api_post(api, "/task_runs/count", {}),
            "task_runs_final": api_post(api, "/task_runs/count", {"task_runs": final}),
            "flow_runs": api_post(api, "/flow_runs/count", {}),
            "flow_runs_final": api_post(api, "/flow_runs/count", {"flow_runs": final})}


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


TAG_ENV = "CHANGELINE_BENCH_TAG"


@dataclass
class RoleStats:
    peak_rss: int = 0
    detached_rss: int = 0  # peak RSS of the role's detached processes (watch_detached)
    cpu_first: dict[int, float] = field(default_factory=dict)   # pid -> cpu seconds when first seen
    cpu_last: dict[int, float] = field(default_factory=dict)    # pid -> cpu seconds when last seen
    detached_cpu: dict[tuple[int, float], float] = field(default_factory=dict)  # (pid, born) -> cpu seconds

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last)

    @property
    def detached_cpu_s(self) -> float:
        return sum(self.detached_cpu.values())


class Sampler:
    """Samples RSS (process tree) and CPU of named roles every `interval` s in a thread.

    Peak per role, and the peak of their sum taken at one instant. CPU is what each
    process used while it was sampled (processes are sampled from when they are added)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.roles: dict[str, int] = {}
        self._pss: set[str] = set()
        self._detached: dict[str, tuple[str, float]] = {}  # role -> (tag, watched since)
        self._tag_of: dict[tuple[int, float], str | None] = {}  # (pid, born) -> its TAG_ENV value
        self.stats: dict[str, RoleStats] = {}
        self.peak_total = 0
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sampler")

    def watch(self, role: str, pid: int, *, shared_memory: bool = False) -> None:
        """`shared_memory`: count PSS, not RSS (PostgreSQL's backends map one shared buffer
        pool each; summing their RSS would count it once per backend)."""
        with self._lock:
            self.roles[role] = pid
            if shared_memory:
                self._pss.add(role)
            self.stats.setdefault(role, RoleStats())
        self.sample()

    def watch_detached(self, role: str, tag: str) -> None:
        """Also count, under `role`, processes that left its process tree (daemons such as
        Ansible's persistent `ansible-connection`, re-parented to init): children of init born
        since now whose environment holds TAG_ENV=tag (only that variable is read); their CPU
        counts from 0, since they were born during the role's run."""
        with self._lock:
            self._detached[role] = (tag, time.time() - 1.0)
            self.stats.setdefault(role, RoleStats())
        self.sample()

    def unwatch(self, role: str) -> None:
        self.sample()
        with self._lock:
            self.roles.pop(role, None)
            self._detached.pop(role, None)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            total = 0
            for role, pid in self.roles.items():
                stats = self.stats[role]
                rss = 0
                for proc in _tree(pid):
                    try:
                        with proc.oneshot():
                            rss += proc.memory_full_info().pss if role in self._pss else proc.memory_info().rss
                            times = proc.cpu_times()
                    except psutil.Error:
                        continue
                    cpu = times.user + times.system
                    stats.cpu_first.setdefault(proc.pid, cpu)
                    stats.cpu_last[proc.pid] = cpu
                stats.peak_rss = max(stats.peak_rss, rss)
                total += rss
            total += self._sample_detached()
            self.peak_total = max(self.peak_total, total)
            self.samples += 1

    def _sample_detached(self) -> int:
        if not self._detached:
            return 0
        by_tag = {tag: role for role, (tag, _) in self._detached.items()}
        since = min(born for _, born in self._detached.values())
        rss_by_role: dict[str, int] = dict.fromkeys(self._detached, 0)
        for proc in psutil.process_iter(["ppid", "create_time"]):
            if proc.info["ppid"] != 1 or (proc.info["create_time"] or 0) < since:
                continue
            key = (proc.pid, proc.info["create_time"])
            try:
                if key not in self._tag_of:
                    self._tag_of[key] = proc.environ().get(TAG_ENV)
                role = by_tag.get(self._tag_of[key])
                if role is None:
                    continue
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss_by_role[role] += proc.memory_info().rss
            except psutil.Error:
                continue
            self.stats[role].detached_cpu[key] = times.user + times.system
        for role, rss in rss_by_role.items():
            self.stats[role].detached_rss = max(self.stats[role].detached_rss, rss)
        return sum(rss_by_role.values())

    def mark_cpu(self, role: str) -> float:
        """CPU seconds the role used since it was first sampled."""
        self.sample()
        with self._lock:
            return self.stats[role].cpu_s if role in self.stats else 0.0


# --- PostgreSQL for the Prefect server -----------------------------------------------------

PG_VERSION = "15"


@dataclass
class PostgresDatabase:
    url: str               # for PREFECT_API_DATABASE_CONNECTION_URL (holds a password: never print it)
    name: str
    postmaster_pid: int

    def drop(self) -> None:
        _psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def local_postgres(name: str) -> PostgresDatabase:
    """A fresh database on this machine's Debian PostgreSQL cluster (started if down), owned by
    a bench role with a new random password. Root only (it runs psql as the postgres user)."""
    import secrets

    if os.geteuid() != 0:
        raise RuntimeError("--postgres needs root (it starts the local cluster and creates a database)")
    if subprocess.run(["pg_ctlcluster", PG_VERSION, "main", "status"], capture_output=True).returncode != 0:
        subprocess.run(["pg_ctlcluster", PG_VERSION, "main", "start"], check=True, capture_output=True)
    password = secrets.token_urlsafe(18)
    _psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='changeline_bench') THEN "
          "CREATE ROLE changeline_bench LOGIN; END IF; END $$")
    _psql(f"ALTER ROLE changeline_bench PASSWORD '{password}'")
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _psql(f'CREATE DATABASE "{name}" OWNER changeline_bench')
    pid = int(Path(f"/var/run/postgresql/{PG_VERSION}-main.pid").read_text().split()[0])
    return PostgresDatabase(f"postgresql+asyncpg://changeline_bench:{password}@127.0.0.1:5432/{name}", name, pid)


def _psql(sql: str) -> None:
    # SQL on stdin, not argv: the role's password must not show in the process list.
    done = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1"],
                          input=sql, capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()[:500]}")
