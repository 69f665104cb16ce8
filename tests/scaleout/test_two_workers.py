"""Two `changeline serve` workers, each with a CHANGELINE_HOME of its own, one PostgreSQL state
store: a campaign run `--on-workers` loses a worker to SIGKILL mid-NE and still ends with every
NE at its target, each checked with the test's own NETCONF reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from changeline.devices.sim.images import generate_image
from changeline.engine import policy
from changeline.flows import stores
from tests.reliability.matrix import ORIGINAL, build_report, check_ne, configs_before, model_variant
from tests.simfixture import running_sim

NES = [f"upf-so-{i}" for i in range(1, 4)]
# The worker lease the campaign applies: short, so the test is cheap; heartbeats come every
# sixth of it. A worker is only taken for dead after a whole lease without one.
LEASE_S = 10
LATER_STEPS = ["transfer-image", "install-image", "drain", "activate", "restore", "dial-test", "billing-check", "kpi-check",
               "validate"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "changeline.cli", *args]


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything under it (the flow runs it started), as a lost machine."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait(30)


def _worker_of(worker: str, workers: list[subprocess.Popen]) -> subprocess.Popen:
    """The served process whose flow run worked on an NE (`HOST pid N (served by pid M)`, as
    the store holds it)."""
    served_by = int(worker.rsplit(" ", 1)[1].rstrip(")"))
    found = [proc for proc in workers if proc.pid == served_by]
    assert found, f"{worker}: none of the workers {[p.pid for p in workers]}"
    return found[0]


def _mid_ne(statuses: dict) -> str | None:
    """An NE past its backup and into the change (transfer onwards), or None."""
    for ne, (status, reason) in statuses.items():
        if status == policy.RUNNING and reason.removeprefix("step ") in LATER_STEPS:
            return ne
    return None


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_ne_leaves_every_ne_at_target(prefect_api, postgres_url, tmp_path, monkeypatch):
    started = time.monotonic()
    homes = {name: tmp_path / name for name in ("campaign", "worker-a", "worker-b")}
    images = tmp_path / "images"
    generate_image(images, "UPF", "1.3.0")
    model = model_variant(tmp_path, "UPF", waves="      - {name: all}\n", max_failures=0, concurrency=len(NES))
    with running_sim(tmp_path / "sim", [{"name": n, "type": "UPF", "version": ORIGINAL} for n in NES]) as sim:
        base = {**os.environ, "CHANGELINE_STATE_URL": postgres_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        workers = [_start(_cli("serve"), {**base, "CHANGELINE_HOME": str(homes[w])}, tmp_path / f"{w}.log")
                   for w in ("worker-a", "worker-b")]
        engine = None
        try:
            monkeypatch.setenv("CHANGELINE_STATE_URL", postgres_url)
            monkeypatch.setenv("CHANGELINE_HOME", str(homes["campaign"]))
            before = configs_before(sim, NES)
            _wait_for_workers(workers, tmp_path)
            workers_up = time.monotonic()
            cid = "two-workers"
            engine = _start(_cli("run", model, "-i", str(sim.inventory_path), "--campaign-id", cid,
                                 "-p", f"image_repo={images}", "--on-workers", "ne-change/worker"),
                            {**base, "CHANGELINE_HOME": str(homes["campaign"]),
                             policy.WORKER_LEASE_SETTING: str(LEASE_S)}, tmp_path / "campaign.log")
            journal = stores.journal()
            deadline = time.monotonic() + 180
            while (victim_ne := _mid_ne(journal.ne_statuses(cid))) is None:
                assert engine.poll() is None, (tmp_path / "campaign.log").read_text()[-3000:]
                assert time.monotonic() < deadline, journal.ne_statuses(cid)
                time.sleep(0.05)
            killed_run = journal.run_of(cid, victim_ne)
            victim = _worker_of(killed_run.worker, workers)
            survivor = next(w for w in workers if w is not victim)
            _kill_tree(victim)
            killed_at = time.monotonic()
            at_kill = journal.ne_statuses(cid)
            # Inside its change: installing the image and the restart alone take seconds on the simulator.
            assert at_kill[victim_ne][0] == policy.RUNNING, at_kill
            assert engine.wait(180) == 0, (tmp_path / "campaign.log").read_text()[-4000:]
            ended_at = time.monotonic()
            assert survivor.poll() is None, "the surviving worker died too"

            # Every NE at target, the killed one's run taken over by the survivor; checked from the NEs.
            report = build_report(cid)
            assert {e["ne"]: e["status"] for e in report["nes"]} == {ne: policy.DONE for ne in NES}, at_kill
            for ne in NES:
                check_ne(sim, cid, ne, "UPF", before[ne], report)
            taken_over = journal.run_of(cid, victim_ne)
            assert taken_over.holder != killed_run.holder and taken_over.outcome["status"] == policy.DONE
            assert _worker_of(taken_over.worker, [survivor]) is survivor
            _assert_one_crashed_run_in_prefect(victim_ne, LEASE_S)
            # Nothing travelled through files: the campaign's home holds no worker's evidence.
            assert not (homes["campaign"] / "state").exists() and not (homes["campaign"] / "backups").exists()
            assert (homes["worker-a"] / "runs" / cid).is_dir() or (homes["worker-b"] / "runs" / cid).is_dir()
            print(f"killed {victim_ne} on its worker at {at_kill[victim_ne]}; seconds from the test's start: "
                  f"workers up {workers_up - started:.1f}, kill {killed_at - started:.1f}, campaign ended "
                  f"{ended_at - started:.1f}, checks done {time.monotonic() - started:.1f}")
        finally:
            for proc in [engine, *workers]:
                if proc is not None and proc.poll() is None:
                    _kill_tree(proc)


def _wait_for_workers(workers: list[subprocess.Popen], tmp_path: Path) -> None:
    """Both served processes registered their deployments (each prints the UI line just before)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 120
    logs = [tmp_path / f"{w}.log" for w in ("worker-a", "worker-b")]
    while not all("Prefect UI:" in log.read_text() for log in logs):
        for proc, log in zip(workers, logs):
            assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, [log.read_text()[-1000:] for log in logs]
        time.sleep(0.5)
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name("ne-change/worker")
                return
            except Exception:
                assert time.monotonic() < deadline, "the worker deployment never appeared"
                time.sleep(0.5)


def _assert_one_crashed_run_in_prefect(ne: str, lease_s: float) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs(limit=200) if r.name == ne and r.deployment_id]
    crashed = [r for r in runs if r.state.is_crashed()]
    assert len(crashed) == 1 and [r for r in runs if r.state.is_completed()], [(r.name, r.state) for r in runs]
    assert f"stopped answering (no heartbeat for {lease_s:.0f} s)" in (crashed[0].state.message or ""), crashed
