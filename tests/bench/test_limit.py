"""The device-time limit of bench/campaign_bench.py: chain formula and zero-cost dispatch replay."""

from __future__ import annotations

import pytest

from bench.limit import MIB, RESTART_GRACE_S, Job, chain_seconds, schedule, step_device_seconds
from changeline.devices.sim.profiles import Delays

DELAYS = Delays(install=240, restart=90, dial_test=6, transfer_mb_per_s=40, cdr_write=30)


def test_each_atom_waits_for_what_the_ne_or_the_model_makes_it_wait_for():
    one = dict(delays=DELAYS, image_bytes=80 * MIB, speed=0.1)
    assert step_device_seconds("dial_test", {"scenarios": ["a", "b"]}, **one) == 12
    assert step_device_seconds("transfer_software", {"image": "x"}, **one) == pytest.approx(2.0)
    assert step_device_seconds("install_software", {"image": "x"}, **one) == 240
    assert step_device_seconds("drain_traffic", {"settle_s": 30}, **one) == 30
    assert step_device_seconds("kpi_check", {"settle_s": 60}, **one) == 60
    assert step_device_seconds("activate_software", {"version": "1.3.0"}, **one) == pytest.approx(
        90 + RESTART_GRACE_S / 0.1)
    assert step_device_seconds("billing_check", {"scenario": "s", "sessions": 2}, **one) == 2 * 6 + 30
    assert step_device_seconds("precheck", {}, **one) == 0


def test_chain_is_speed_times_the_sum_of_its_steps():
    steps = [("install_software", {}), ("dial_test", {"scenarios": ["a"]}), ("validate_upgrade", {})]
    assert chain_seconds(steps, DELAYS, image_bytes=0, speed=0.05) == pytest.approx(0.05 * 246)


def test_waves_run_one_after_another_and_a_wave_is_a_makespan_at_concurrency():
    waves = [[Job("a", None, 10, 3)], [Job("b", None, 5, 2), Job("c", None, 7, 2), Job("d", None, 1, 2)]]
    result = schedule(waves, concurrency=2)
    # wave 2: b and c start together, d takes b's worker at 5 and ends at 6; c ends at 7
    assert result.wave_seconds == [10, 7]
    assert result.seconds == 17
    assert result.critical_path == ["a", "c"]
    assert result.critical_steps == 5


def test_a_pool_member_waits_for_its_peer_holding_its_worker_meanwhile():
    wave = [Job("p1", "pool", 10, 4), Job("p2", "pool", 10, 4), Job("x", None, 3, 1)]
    fifo = schedule([wave], concurrency=2)
    # p2 holds the second worker while it waits for p1; x starts only when p1's worker frees
    assert fifo.starts == {"p1": 0, "p2": 10, "x": 10}
    assert fifo.seconds == 20
    assert fifo.critical_path == ["p1", "p2"]
    ideal = schedule([wave], concurrency=2, skip_busy_pools=True)
    assert ideal.starts["x"] == 0 and ideal.starts["p2"] == 10
    assert ideal.seconds == 20


def test_ideal_dispatch_takes_the_next_ne_whose_pool_is_free():
    wave = [Job("a1", "a", 10, 1), Job("a2", "a", 10, 1), Job("b1", "b", 10, 1), Job("b2", "b", 10, 1)]
    assert schedule([wave], concurrency=2).seconds == 30       # a2 blocks a worker behind a1
    assert schedule([wave], concurrency=2, skip_busy_pools=True).seconds == 20
