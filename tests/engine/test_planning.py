"""Sends planned before the write lock (``Engine(optimistic=True)``), on every store.

A planned send runs the state chart outside the write lock and commits what it planned
only if the session's ``seq`` did not move meanwhile; otherwise the event is applied
afresh under the lock (see :mod:`flowengine.planning`). These tests let another sender
commit between the two passes, through :class:`CommitsInBetween` (a real store with a
hook at the moment a write transaction opens), and check that the outcome is what the
two senders one after the other would give: nothing lost, nothing applied twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.engine import Engine, EventInput, SendResult
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from flowengine.store import open_store
from flowengine.workers import EffectRunner, TimerWorker
from tests.conftest import FLOWS
from tests.factories import create_request
from tests.interleaving import CommitsInBetween

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "ab" * 32}
DELIVERED = {"units": 25_000_000, "txHash": "0x" + "cd" * 32}


@pytest.fixture
def store(store_url: str) -> Iterator[CommitsInBetween]:
    opened = CommitsInBetween(open_store(store_url))
    yield opened
    opened.close()


@pytest.fixture
def planned(store: CommitsInBetween, flows: FlowRegistry, clock: ManualClock) -> Engine:
    """Plans every send, on whichever store."""
    return Engine(flows, store, clock, optimistic=True)


@pytest.fixture
def other(store: CommitsInBetween, flows: FlowRegistry, clock: ManualClock) -> Engine:
    """Another sender on the same database, applying under the lock."""
    return Engine(flows, store.store, clock, optimistic=False)


def steps(engine: Engine, session_id: str) -> list[tuple[int, str, str, str]]:
    return [(e.seq, e.event, e.source, e.target) for e in engine.history(session_id)]


def test_a_planned_send_writes_what_a_send_under_the_lock_writes(
    store: CommitsInBetween, planned: Engine, other: Engine
) -> None:
    events = [
        ("payment_detected", PAYMENT),
        ("payment_detected", PAYMENT),  # the same event id again: a duplicate
        ("evm.deliver.done", DELIVERED),
        ("evm.settle.done", {}),
    ]
    outcomes = []
    for engine in (planned, other):
        sid = engine.create_session(create_request()).session_id
        for event, payload in events:
            engine.send(sid, event, payload, event_id=f"{event}:1")
        with engine.store.transaction() as tx:
            outbox = (
                [(e.effect, e.status, e.params) for e in tx.effects(sid)],
                [(t.event, t.state, t.status) for t in tx.timers(sid)],
                [w.type for w in tx.webhooks(sid)],
            )
        outcomes.append((steps(engine, sid), engine.record(sid).data["amounts"], outbox))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][-1] == (4, "evm.settle.done", "delivered", "completed")


def test_a_refusal_planned_on_an_old_state_is_decided_again_under_the_lock(
    store: CommitsInBetween, planned: Engine, other: Engine
) -> None:
    sid = planned.create_session(create_request()).session_id
    # Planned in 'created', which does not take a delivery outcome; by the time it
    # commits the other sender has moved the session to 'paid', which does.
    store.meanwhile.append(lambda: other.send(sid, "payment_detected", PAYMENT))
    result = planned.send(sid, "evm.deliver.done", DELIVERED)
    assert result.state == "delivered"
    assert steps(planned, sid) == [
        (1, "session.created", "", "created"),
        (2, "payment_detected", "created", "paid"),
        (3, "evm.deliver.done", "paid", "delivered"),
    ]


def test_a_payment_planned_before_the_session_expired_is_recorded_as_late(
    store: CommitsInBetween, planned: Engine, other: Engine
) -> None:
    sid = planned.create_session(create_request(expiresIn=60)).session_id
    store.meanwhile.append(lambda: other.send(sid, "expire"))
    result = planned.send(sid, "payment_detected", PAYMENT)  # planned in 'created': paid
    assert result.state == "expired"
    assert result.event.meta["late"] == "review"  # on_late's default: tell the merchant
    assert steps(planned, sid)[1:] == [
        (2, "expire", "created", "expired"),
        (3, "payment_detected", "expired", "expired"),
    ]


def test_the_same_event_committed_meanwhile_is_a_duplicate_not_a_second_payment(
    store: CommitsInBetween, planned: Engine, other: Engine
) -> None:
    sid = planned.create_session(create_request()).session_id
    store.meanwhile.append(lambda: other.send(sid, "payment_detected", PAYMENT, event_id="tx-1"))
    result = planned.send(sid, "payment_detected", PAYMENT, event_id="tx-1")
    assert result.duplicate
    assert result.event.seq == 2
    assert planned.record(sid).data["amounts"]["received"] == 25_000_000  # counted once
    assert len(planned.history(sid)) == 2


def test_group_commit_keeps_the_plans_of_unchanged_sessions_only(
    store: CommitsInBetween, planned: Engine, other: Engine
) -> None:
    quiet, busy = (planned.create_session(create_request()).session_id for _ in range(2))
    store.meanwhile.append(lambda: other.send(busy, "payment_detected", PAYMENT, event_id="p"))
    results = planned.send_many(
        [
            EventInput(quiet, "payment_detected", PAYMENT, event_id="p"),
            EventInput(busy, "payment_detected", PAYMENT, event_id="p"),
            EventInput(busy, "evm.deliver.done", DELIVERED, event_id="d"),
        ]
    )
    assert all(isinstance(r, SendResult) for r in results)
    first, again, delivered = (r for r in results if isinstance(r, SendResult))
    assert (first.state, first.duplicate) == ("paid", False)
    assert (again.duplicate, again.event.seq) == (True, 2)  # the other sender's row
    assert (delivered.state, delivered.event.seq) == ("delivered", 3)
    assert steps(planned, busy)[1:] == [
        (2, "payment_detected", "created", "paid"),
        (3, "evm.deliver.done", "paid", "delivered"),
    ]


def test_a_late_refund_reads_effects_so_it_is_applied_under_the_lock(
    store: CommitsInBetween, clock: ManualClock
) -> None:
    """The session's effects change without its seq (a runner claims one): a plan that
    needs them is not used, and the event is applied under the lock."""
    text = (FLOWS / "deposit.yaml").read_text().replace("version: 1\n", "version: late\n", 1)
    flows = FlowRegistry([load_flow("deposit.yaml", text=text + "\non_late: {default: refund}\n")])
    engine = Engine(flows, store, clock, optimistic=True)
    sid = engine.create_session(create_request()).session_id
    for event, payload in [
        ("payment_detected", PAYMENT),
        ("evm.deliver.done", DELIVERED),
        ("evm.settle.done", {}),
    ]:
        engine.send(sid, event, payload)
    late = engine.send(sid, "payment_detected", {"units": 7_000_000, "txHash": "0x" + "ee" * 32})
    assert late.event.meta["late"] == "refund"
    with engine.store.transaction() as tx:
        refunds = [e.params for e in tx.effects(sid) if e.key.endswith(":late")]
    assert refunds == [{"units": 7_000_000}]


def test_by_default_an_engine_plans_while_its_store_says_writers_contend(
    store: CommitsInBetween, flows: FlowRegistry, clock: ManualClock
) -> None:
    engine = Engine(flows, store, clock)  # optimistic=None: ask the store each batch
    sid = engine.create_session(create_request()).session_id
    store.plan_sends = False  # a process alone: no plan, no read transaction
    engine.send(sid, "payment_detected", PAYMENT)
    assert store.readings == 0
    store.plan_sends = True  # other writers keep the lock busy
    engine.send(sid, "evm.deliver.done", DELIVERED)
    assert store.readings == 1


def test_an_outcome_planned_by_the_runner_is_decided_again_if_the_session_moved(
    store: CommitsInBetween, planned: Engine, other: Engine, tmp_path: Path
) -> None:
    """The effect runner plans a definite outcome before its finishing transaction too
    (Engine.plan_event / apply_planned); its own checks of the effect row stay under
    the lock. Here another report moves the session in between."""
    ledger = LedgerAdapter(tmp_path / "ledger.db")
    runner = EffectRunner(planned, dict.fromkeys(("evm.deliver", "evm.refund"), ledger))
    sid = planned.create_session(create_request()).session_id
    other.send(sid, "payment_detected", PAYMENT)
    # Between the runner's plan of evm.deliver.done (paid -> delivered) and its commit,
    # a watcher reports the delivery reverted: the session goes to refunding.
    store.meanwhile.append(lambda: other.send(sid, "evm.deliver.failed"))
    runner.run_once()
    assert planned.record(sid).state == "refunding"
    outcome = planned.history(sid)[-1]
    assert (outcome.event, outcome.source, outcome.target) == (
        "evm.deliver.done",
        "refunding",
        "refunding",
    )
    assert outcome.meta["applied"] is False  # logged, counted, reported: never a transition
    assert planned.record(sid).data["amounts"]["delivered"] == 25_000_000


def test_a_timer_planned_before_its_session_changed_is_fired_afresh(
    store: CommitsInBetween, clock: ManualClock
) -> None:
    """The timer worker plans the due timers' events too. Here a payment that must wait
    for the amount to be chosen (``defer``) is logged between the plan and the commit:
    same state, new seq, so the expiry is applied afresh, and the waiting payment is
    then offered to the expired session: a late payment, reported, never lost."""
    text = (FLOWS / "deposit.yaml").read_text().replace("version: 1\n", "version: defer\n", 1)
    flows = FlowRegistry([load_flow("deposit.yaml", text=text + "\ndefer: payment_detected\n")])
    engine = Engine(flows, store, clock, optimistic=True)
    other = Engine(flows, store.store, clock, optimistic=False)
    sid = engine.create_session(create_request(amount=None, expiresIn=60)).session_id
    clock.advance(61)
    store.meanwhile.append(lambda: other.send(sid, "payment_detected", PAYMENT))
    assert TimerWorker(engine).run_once() == 1
    assert steps(engine, sid) == [
        (1, "session.created", "", "created"),
        (2, "payment_detected", "created", "created"),  # deferred
        (3, "expire", "created", "expired"),
        (4, "payment_detected", "expired", "expired"),  # late: on_late's review
    ]
    assert engine.record(sid).data["amounts"]["received"] == 25_000_000


def test_a_batch_is_planned_in_one_read_transaction_first_event_per_session(
    store: CommitsInBetween, planned: Engine
) -> None:
    first, second = (planned.create_session(create_request()).session_id for _ in range(2))
    items = [
        EventInput(first, "payment_detected", PAYMENT),
        EventInput(first, "evm.deliver.done", DELIVERED),  # planned on 'paid': not yet
        EventInput(second, "payment_detected", PAYMENT),
    ]
    before = store.readings
    plans = planned.plan_events(items)
    assert store.readings == before + 1
    assert [plan is not None for plan in plans] == [True, False, True]


def test_the_timer_worker_plans_its_due_timers_in_one_read_transaction(
    store: CommitsInBetween, planned: Engine, clock: ManualClock
) -> None:
    sessions = [planned.create_session(create_request(expiresIn=60)).session_id for _ in range(3)]
    clock.advance(61)
    before = store.readings
    assert TimerWorker(planned).run_once() == 3
    assert store.readings == before + 2  # one to find the due timers, one to plan them
    assert {planned.record(sid).state for sid in sessions} == {"expired"}
