"""The campaign's concurrency cap (changeline.engine.turns.WorkSlots): never more than `cap` NEs at work,
and a freed slot goes to the waiting NE first in dispatch order. Threads, no devices."""

from __future__ import annotations

import threading
import time

from changeline.engine.turns import WorkSlots, lookahead


def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


def test_a_freed_slot_goes_to_the_waiter_first_in_dispatch_order():
    slots = WorkSlots(1)
    order: list[int] = []
    waiting: list[int] = []
    release_first = threading.Event()

    def work(rank: int, hold: threading.Event | None = None) -> None:
        with slots.slot(rank, on_wait=lambda: waiting.append(rank)):
            order.append(rank)
            if hold is not None:
                hold.wait(5)

    first = threading.Thread(target=work, args=(0, release_first))
    first.start()
    _wait_until(lambda: order == [0])
    # Ready in the "wrong" order: rank 3 before rank 1 before rank 2.
    late = [threading.Thread(target=work, args=(rank,)) for rank in (3, 1, 2)]
    for thread in late:
        thread.start()
        _wait_until(lambda: len(waiting) == late.index(thread) + 1)
    release_first.set()
    for thread in [first, *late]:
        thread.join(5)
    assert order == [0, 1, 2, 3]
    assert waiting == [3, 1, 2]


def test_never_more_than_the_cap_at_work():
    slots = WorkSlots(3)
    busy = peak = 0
    lock = threading.Lock()

    def work(rank: int) -> None:
        nonlocal busy, peak
        with slots.slot(rank):
            with lock:
                busy += 1
                peak = max(peak, busy)
            time.sleep(0.01)
            with lock:
                busy -= 1

    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak == 3 and busy == 0


def test_a_slot_is_given_back_when_the_work_fails():
    slots = WorkSlots(1)
    try:
        with slots.slot(0):
            raise RuntimeError("step blew up")
    except RuntimeError:
        pass
    done = threading.Event()
    threading.Thread(target=lambda: (slots.slot(1).__enter__(), done.set())).start()
    assert done.wait(2)


def test_lookahead_keeps_start_turns_busy_but_never_exceeds_the_cap():
    assert lookahead(50, 5) == 10
    assert lookahead(3, 5) == 3
    assert lookahead(1, 5) == 1
