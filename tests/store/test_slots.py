"""Connection slots are handed out first come, first served: under a burst the thread
that has waited longest gets the next free connection, not whichever asks last."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

from flowengine.store.slots import FairSlots


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def test_free_slots_are_taken_at_once_and_then_waited_for() -> None:
    slots = FairSlots(2)
    assert slots.acquire(timeout=0)
    assert slots.acquire(timeout=0)
    assert not slots.acquire(timeout=0.01)
    slots.release()
    assert slots.acquire(timeout=0)


def test_waiters_are_served_in_the_order_they_came() -> None:
    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    served: list[int] = []

    def wait_for_turn(n: int) -> None:
        assert slots.acquire(timeout=10)
        served.append(n)
        slots.release()

    threads = []
    for n in range(6):
        thread = threading.Thread(target=wait_for_turn, args=(n,))
        thread.start()
        wait_until(lambda n=n: slots.waiting == n + 1)  # queued before the next arrives
        threads.append(thread)
    slots.release()
    for thread in threads:
        thread.join(10)
    assert served == [0, 1, 2, 3, 4, 5]


def test_a_newcomer_does_not_jump_the_queue() -> None:
    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    got: list[str] = []

    def waiter() -> None:
        if slots.acquire(timeout=10):
            got.append("waiter")

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: slots.waiting == 1)
    slots.release()  # handed to the waiter, not left for anyone to grab
    assert not slots.acquire(timeout=0)
    thread.join(10)
    assert got == ["waiter"]


def test_a_waiter_that_gives_up_leaves_no_trace() -> None:
    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    assert not slots.acquire(timeout=0.02)
    assert slots.waiting == 0
    slots.release()  # nobody waits: the slot is free again, not handed to a ghost
    assert slots.acquire(timeout=0)


def test_every_slot_comes_back_under_contention() -> None:
    slots = FairSlots(3)
    in_use = 0
    most = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal in_use, most
        for _ in range(200):
            # Short waits that often run out: a slot handed over just as the wait
            # ends must still count as taken, and be given back.
            while not slots.acquire(timeout=0.0005):
                pass
            with guard:
                in_use += 1
                most = max(most, in_use)
            with guard:
                in_use -= 1
            slots.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most <= 3
    assert [slots.acquire(timeout=0) for _ in range(4)] == [True, True, True, False]


def test_a_wait_cut_short_by_a_signal_loses_no_slot() -> None:
    # A signal handler may raise inside the wait (KeyboardInterrupt, a timeout
    # library): the slot the holder then gives back must not go to the dead waiter.
    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):
            slots.acquire(timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert slots.waiting == 0
    slots.release()
    assert slots.acquire(timeout=0)


def test_a_timeout_beyond_what_threads_can_wait_is_capped() -> None:
    slots = FairSlots(1)
    assert slots.acquire(timeout=0)
    threading.Timer(0.05, slots.release).start()
    assert slots.acquire(timeout=1e12)  # no OverflowError


def test_giving_back_more_than_was_taken_is_an_error() -> None:
    slots = FairSlots(2)
    assert slots.acquire(timeout=0)
    slots.release()
    with pytest.raises(ValueError, match="more often than acquired"):
        slots.release()
