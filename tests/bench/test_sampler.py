"""bench.procs.Sampler counts the CPU of a process that detached from the measured tree (as Ansible's
ansible-connection daemons do), found by its environment tag; an untagged daemon is not counted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.procs import TAG_ENV, Sampler  # noqa: E402

# Forks twice (the grandchild is re-parented to init), burns BURN_S of its own CPU time, says so in
# a file, then waits for the test to remove the file.
DAEMON = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
flag = sys.argv[1]
while time.process_time() < 0.3:
    pass
open(flag, "w").write(str(os.getpid()))
while os.path.exists(flag):
    time.sleep(0.05)
"""


def _start(tmp_path: Path, name: str, env: dict[str, str]) -> Path:
    flag = tmp_path / name
    subprocess.run([sys.executable, "-c", DAEMON, str(flag)], env=env, check=True)  # returns once forked
    deadline = time.monotonic() + 120  # a bound on a hang, not a margin the result depends on
    while not (flag.exists() and flag.read_text()):
        assert time.monotonic() < deadline, "the daemon never finished burning CPU"
        time.sleep(0.05)
    return flag


def test_detached_daemon_cpu_is_counted_by_tag(tmp_path):
    tag = f"test-{os.getpid()}"
    with Sampler(interval=3600) as sampler:  # samples only when asked
        sampler.watch_detached("peer", tag)
        tagged = _start(tmp_path, "tagged", {**os.environ, TAG_ENV: tag})
        other = _start(tmp_path, "other", {k: v for k, v in os.environ.items() if k != TAG_ENV})
        try:
            sampler.sample()
            stats = sampler.stats["peer"]
            # it burned 0.3 s by its own clock; /proc counts whole clock ticks (10 ms), rounding down
            assert stats.detached_cpu_s >= 0.3 - 2 * 0.01
            assert [pid for pid, _ in stats.detached_cpu] == [int(tagged.read_text())]
            assert stats.detached_rss > 0
        finally:
            tagged.unlink()
            other.unlink()
