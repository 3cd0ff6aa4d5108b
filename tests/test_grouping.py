"""Concurrent sends share a commit (flowengine.grouping): each still gets its own
outcome, as if it had been sent alone."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine, EventInput
from flowengine.errors import FlowEngineError, StoreError, TransitionNotAllowed
from flowengine.flows import FlowRegistry
from flowengine.grouping import Outcome, SendGroups
from flowengine.store import Store, Transaction, open_store
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "ab" * 32}


class HeldFirstCommit:
    """A real store whose first write transaction waits for ``release``: sends made
    meanwhile queue up behind it, as they do behind a slow commit. Counts the write
    transactions and the events each carried."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url
        self.plan_sends = False
        self.release = threading.Event()
        self.transactions = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.transactions += 1
        if self.transactions == 1:
            assert self.release.wait(30)
        with self.store.transaction() as tx:
            yield tx

    def reading(self) -> object:
        return self.store.reading()

    def close(self) -> None:
        self.store.close()


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.fixture
def held(store_url: str) -> Iterator[HeldFirstCommit]:
    store = HeldFirstCommit(open_store(store_url))
    yield store
    store.close()


def test_sends_made_while_a_commit_runs_share_the_next_one(
    held: HeldFirstCommit, flows: FlowRegistry, clock: ManualClock
) -> None:
    setup = Engine(flows, held.store, clock)
    ids = [setup.create_session(create_request()).session_id for _ in range(8)]
    engine = Engine(flows, held, clock, group_commit=50)
    groups = engine._groups
    assert groups is not None
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(engine.send, ids[0], "payment_detected", PAYMENT)
        wait_until(lambda: held.transactions == 1)  # the first commit has begun
        rest = [pool.submit(engine.send, sid, "payment_detected", PAYMENT) for sid in ids[1:]]
        wait_until(lambda: groups.waiting == 7)
        held.release.set()
        results = [first.result(), *(future.result() for future in rest)]
    assert held.transactions == 2  # the first send alone, then the seven together
    assert [r.record.session_id for r in results] == ids
    assert {r.state for r in results} == {"paid"}
    assert all(setup.record(sid).data["amounts"]["received"] == 25_000_000 for sid in ids)


def test_a_refused_send_in_a_shared_commit_is_refused_alone(
    held: HeldFirstCommit, flows: FlowRegistry, clock: ManualClock
) -> None:
    setup = Engine(flows, held.store, clock)
    first, good, bad = (setup.create_session(create_request()).session_id for _ in range(3))
    engine = Engine(flows, held, clock, group_commit=50)
    assert engine._groups is not None
    with ThreadPoolExecutor(3) as pool:
        opening = pool.submit(engine.send, first, "payment_detected", PAYMENT)
        wait_until(lambda: held.transactions == 1)
        paid = pool.submit(engine.send, good, "payment_detected", PAYMENT)
        refused = pool.submit(engine.send, bad, "evm.deliver.done", PAYMENT)  # not yet paid
        wait_until(lambda: engine._groups is not None and engine._groups.waiting == 2)
        held.release.set()
        assert opening.result().state == "paid"
        assert paid.result().state == "paid"
        with pytest.raises(TransitionNotAllowed, match="created"):
            refused.result()
    assert held.transactions == 2
    assert [e.event for e in setup.history(bad)] == ["session.created"]  # nothing written


def test_by_default_every_send_has_a_transaction_of_its_own(
    held: HeldFirstCommit, flows: FlowRegistry, clock: ManualClock
) -> None:
    assert Engine(flows, held, clock)._groups is None


def test_group_commit_1_gives_every_send_its_own_transaction(
    held: HeldFirstCommit, flows: FlowRegistry, clock: ManualClock
) -> None:
    setup = Engine(flows, held.store, clock)
    ids = [setup.create_session(create_request()).session_id for _ in range(3)]
    engine = Engine(flows, held, clock, group_commit=1)
    held.release.set()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda sid: engine.send(sid, "payment_detected", PAYMENT), ids))
    assert held.transactions == 3


# -- SendGroups on its own, with a send_batch of our own -------------------------------


class Batches:
    """A send_batch that records its batches, holds the first until ``release``, and
    fails any batch holding the event named ``poison``."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, items: Sequence[EventInput]) -> list[Outcome]:
        self.seen.append([item.event for item in items])
        if len(self.seen) == 1:
            assert self.release.wait(30)
        if any(item.event == "poison" for item in items):
            raise RuntimeError("a guard with a bug")
        if any(item.event == "store down" for item in items):
            raise StoreError("connection lost during COMMIT")
        return [FlowEngineError(f"done: {item.event}") for item in items]

    def queued_behind_first(
        self, groups: SendGroups, pool: ThreadPoolExecutor, names: list[str]
    ) -> list[Future[Outcome]]:
        """Send ``names[0]``; while its commit is held, queue the others; then let it
        end. The others are then sent together (as far as max_batch allows)."""
        futures = [pool.submit(groups.send, EventInput("s", names[0]))]
        wait_until(lambda: len(self.seen) == 1)
        futures += [pool.submit(groups.send, EventInput("s", name)) for name in names[1:]]
        wait_until(lambda: groups.waiting == len(names) - 1)
        self.release.set()
        return futures


def test_a_batch_that_fails_is_committed_again_one_send_at_a_time() -> None:
    batches = Batches()
    groups = SendGroups(batches, max_batch=10)
    with ThreadPoolExecutor(4) as pool:
        futures = batches.queued_behind_first(groups, pool, ["first", "a", "poison", "b"])
        assert str(futures[0].result()) == "done: first"
        assert str(futures[1].result()) == "done: a"
        with pytest.raises(RuntimeError, match="guard with a bug"):
            futures[2].result()
        assert str(futures[3].result()) == "done: b"
    assert batches.seen[0] == ["first"]
    assert sorted(batches.seen[1]) == ["a", "b", "poison"]  # together first, then alone
    assert sorted(map(tuple, batches.seen[2:])) == [("a",), ("b",), ("poison",)]


def test_no_batch_is_larger_than_max_batch() -> None:
    batches = Batches()
    groups = SendGroups(batches, max_batch=2)
    with ThreadPoolExecutor(6) as pool:
        names = ["first", *(f"e{i}" for i in range(5))]
        for future in batches.queued_behind_first(groups, pool, names):
            future.result()
    assert [len(batch) for batch in batches.seen] == [1, 2, 2, 1]
    assert groups.waiting == 0


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SendGroups(Batches(), max_batch=0)


class Interrupted(Exception):
    pass


def test_a_send_whose_caller_stops_waiting_leaves_the_queue_moving() -> None:
    """A signal's handler can raise in the main thread while it waits for its batch;
    the sends behind it must not wait for a leader that is gone."""

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    batches = Batches()
    groups = SendGroups(batches, max_batch=10)
    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(groups.send, EventInput("s", "first"))
            wait_until(lambda: len(batches.seen) == 1)

            def behind_then_interrupt() -> Outcome:
                wait_until(lambda: groups.waiting == 1)  # the main thread queued first
                later = pool.submit(groups.send, EventInput("s", "later"))
                wait_until(lambda: groups.waiting == 2)
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)
                wait_until(lambda: groups.waiting == 1)  # the main thread left the queue
                batches.release.set()
                return later.result(timeout=30)

            helper = threading.Thread(target=lambda: outcomes.append(behind_then_interrupt()))
            outcomes: list[Outcome] = []
            helper.start()
            with pytest.raises(Interrupted):
                groups.send(EventInput("s", "abandoned"))
            helper.join(30)
            assert str(first.result(timeout=30)) == "done: first"
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert [str(outcome) for outcome in outcomes] == ["done: later"]
    assert batches.seen == [["first"], ["later"]]  # the abandoned send was never sent


def test_a_store_error_is_every_sends_and_is_not_retried_one_by_one() -> None:
    """The commit itself may have failed after the database applied it: applying the
    events again could count a payment twice. Each send gets the error, as alone."""
    batches = Batches()
    groups = SendGroups(batches, max_batch=10)
    with ThreadPoolExecutor(4) as pool:
        futures = batches.queued_behind_first(groups, pool, ["first", "a", "store down", "b"])
        assert str(futures[0].result()) == "done: first"
        for future in futures[1:]:
            with pytest.raises(StoreError, match="during COMMIT"):
                future.result()
    assert len(batches.seen) == 2  # the first alone, then the three together: no retries


def test_a_forked_child_starts_with_an_empty_queue() -> None:
    """A child forked while a parent's thread leads a commit must not wait for that
    leader, which does not exist in the child."""
    batches = Batches()
    groups = SendGroups(batches, max_batch=10)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(groups.send, EventInput("s", "first"))
        wait_until(lambda: len(batches.seen) == 1)  # the parent's leader is committing
        pid = os.fork()
        if pid == 0:  # the child: its send must come back, not hang
            signal.alarm(10)
            outcome = groups.send(EventInput("s", "child"))
            os._exit(0 if str(outcome) == "done: child" else 1)
        _, status = os.waitpid(pid, 0)
        batches.release.set()
        held.result()
    assert os.waitstatus_to_exitcode(status) == 0
