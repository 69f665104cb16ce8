"""When the campaign takes a worker for dead: the decision alone, on an injected clock."""

from __future__ import annotations

import pytest

from changeline.errors import InputError
from changeline.engine.policy import STARTING_LEASES, WORKER_LEASE_S, Liveness, worker_lease_s


def test_heartbeats_that_move_keep_a_run_alive_however_long_it_works():
    alive = Liveness(lease_s=10)
    assert not any(alive.lost(t, phase="running", beat=("w", t // 5)) for t in range(0, 600))


def test_a_running_run_is_lost_a_lease_after_its_last_heartbeat_moved():
    alive = Liveness(lease_s=10)
    assert not alive.lost(0, phase="running", beat=("w", 1))
    assert not alive.lost(4, phase="running", beat=("w", 2))
    assert not alive.lost(14, phase="running", beat=("w", 2))  # exactly a lease: not yet
    assert alive.lost(14.5, phase="running", beat=("w", 2))


def test_waiting_for_a_worker_is_no_death_and_starting_gets_longer():
    alive = Liveness(lease_s=10)
    assert not alive.lost(0, phase="waiting", beat=None)
    assert not alive.lost(1000, phase="waiting", beat=None), "no worker took the run yet: not a death"
    assert not alive.lost(1001, phase="starting", beat=None)
    assert not alive.lost(1001 + 10 * STARTING_LEASES, phase="starting", beat=None)
    assert alive.lost(1001.5 + 10 * STARTING_LEASES, phase="starting", beat=None)


def test_a_run_whose_flow_started_but_never_took_its_ne_is_lost_a_lease_later():
    alive = Liveness(lease_s=10)
    assert not alive.lost(0, phase="starting", beat=("", 0))
    assert not alive.lost(30, phase="running", beat=("", 0))  # the phase moved: the lease starts again
    assert not alive.lost(40, phase="running", beat=("", 0))
    assert alive.lost(40.5, phase="running", beat=("", 0))


def test_the_lease_setting():
    assert worker_lease_s(None) == worker_lease_s(" ") == WORKER_LEASE_S
    assert worker_lease_s("8") == 8.0
    for bad in ("0", "soon", "-5", "99999"):
        with pytest.raises(InputError, match="^CHANGELINE_WORKER_LEASE_S: must be a number of seconds from 1 to 3600"):
            worker_lease_s(bad)


def _beat_until_superseded(path: str) -> None:
    import time

    from changeline.flows.workers import _give_up_the_ne, heartbeats
    from changeline.state.journal import Journal

    journal = Journal(path)
    with heartbeats(journal, "c1", "upf-1", "attempt-1", 0.05, lambda: _give_up_the_ne("upf-1")):
        time.sleep(120)  # the NE's work; only losing the NE ends it early


def test_a_run_whose_ne_went_to_another_attempt_stops_its_process(tmp_path):
    import multiprocessing
    import time

    from changeline.flows.workers import EXIT_SUPERSEDED
    from changeline.state.journal import Journal

    journal = Journal(tmp_path / "j.sqlite")
    journal.assign_run("c1", "upf-1", "attempt-1")
    proc = multiprocessing.get_context("spawn").Process(target=_beat_until_superseded, args=(str(tmp_path / "j.sqlite"),))
    proc.start()
    while journal.run_of("c1", "upf-1").beats == 0:  # it beats...
        assert proc.is_alive()
        time.sleep(0.05)
    journal.assign_run("c1", "upf-1", "attempt-2")  # ...until the campaign hands the NE to another attempt
    proc.join(60)
    assert proc.exitcode == EXIT_SUPERSEDED
