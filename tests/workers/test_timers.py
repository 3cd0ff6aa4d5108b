"""Durable timers: fire once when due, never after the session moved on."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flowengine.cli import main
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.errors import FlowEngineError
from flowengine.flows import FlowRegistry
from flowengine.registry import Registry
from flowengine.spec import load_flow
from flowengine.workers import TimerWorker
from tests.conftest import FLOWS
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "cd" * 32}


def test_an_unpaid_session_expires_at_its_expiry(engine: Engine, clock: ManualClock) -> None:
    session = engine.create_session(create_request(expiresIn=1800))
    worker = TimerWorker(engine)
    clock.advance(1799)
    assert worker.run_once() == 0
    clock.advance(1)
    assert worker.run_once() == 1
    expired = engine.get(session.session_id)
    assert expired.status == "expired"
    assert worker.run_once() == 0  # fired once, not again
    with engine.store.transaction() as tx:
        assert [w.type for w in tx.webhooks(session.session_id)] == ["session.expired"]


def test_a_paid_session_does_not_expire(engine: Engine, clock: ManualClock) -> None:
    session = engine.create_session(create_request(expiresIn=600))
    engine.send(session.session_id, "payment_detected", PAYMENT)
    clock.advance(3600)
    assert TimerWorker(engine).run_once() == 0
    assert engine.get(session.session_id).status == "paid"
    with engine.store.transaction() as tx:
        assert [t.status for t in tx.timers(session.session_id)] == ["cancelled"]


def test_a_timer_rescheduled_by_a_new_state_fires_once(engine: Engine, clock: ManualClock) -> None:
    session = engine.create_session(create_request(amount=None, expiresIn=600))
    engine.send(session.session_id, "select_amount")
    clock.advance(600)
    assert TimerWorker(engine).run_once() == 1  # amount_selected's timer; created's is stale
    history = engine.history(session.session_id)
    assert [e.event for e in history] == ["session.created", "select_amount", "expire"]


def test_competing_workers_fire_each_timer_exactly_once(engine: Engine, clock: ManualClock) -> None:
    ids = [engine.create_session(create_request(expiresIn=60)).session_id for _ in range(30)]
    clock.advance(61)
    workers = [TimerWorker(engine, batch=4) for _ in range(3)]
    fired: list[int] = []

    def drain(worker: TimerWorker) -> None:
        while count := worker.run_once():
            fired.append(count)

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(fired) == 30
    for sid in ids:
        assert [e.event for e in engine.history(sid)] == ["session.created", "expire"]


FRAGILE = """
flowengine: 1
name: fragile
version: 1
states:
  waiting: {initial: true, timers: [{after: 1m, event: give_up}]}
  gone: {final: true}
transitions:
  - {event: give_up, from: waiting, to: gone, guards: flaky}
"""


def fragile_engine(store_url: str, clock: ManualClock, healthy: list[bool]) -> Engine:
    """deposit plus a flow whose timer's guard raises while ``healthy[0]`` is False."""
    registry = Registry.default()

    def flaky(ctx: object) -> bool:
        if not healthy[0]:
            raise RuntimeError("a guard with a bug")
        return True

    registry.add_guard("flaky", flaky)
    flows = FlowRegistry.from_directory(FLOWS, registry)
    flows.add(load_flow("fragile.yaml", registry=registry, text=FRAGILE))
    return Engine(flows, store_url, clock)


@pytest.mark.parametrize("planned", [False, True], ids=["under the lock", "planned"])
def test_a_timer_that_cannot_fire_is_parked_and_the_others_still_fire(
    store_url: str, clock: ManualClock, planned: bool
) -> None:
    engine = fragile_engine(store_url, clock, healthy=[False])
    engine.optimistic = planned  # a plan that raises is dropped: the lock path parks it
    doomed = engine.create_session(create_request(flow="fragile")).session_id
    healthy = engine.create_session(create_request(expiresIn=120)).session_id
    clock.advance(121)
    assert TimerWorker(engine).run_once() == 1
    assert engine.get(healthy).status == "expired"
    assert engine.get(doomed).status == "waiting"
    with engine.store.transaction() as tx:
        assert [t.status for t in tx.timers(doomed)] == ["failed"]
    assert [(t.session_id, t.event) for t in engine.parked_work().timers] == [(doomed, "give_up")]
    engine.store.close()


def test_a_failed_timer_fires_once_retried_after_the_fix(
    store_url: str, clock: ManualClock
) -> None:
    health = [False]
    engine = fragile_engine(store_url, clock, health)
    sid = engine.create_session(create_request(flow="fragile")).session_id
    clock.advance(61)
    TimerWorker(engine).run_once()
    (failed,) = engine.parked_work().timers
    with pytest.raises(FlowEngineError, match="did not fail"):
        engine.retry_timer(sid, failed.timer_id + 1000, reason="fixed", actor="ops")

    health[0] = True  # the guard's bug is fixed and deployed
    engine.retry_timer(sid, failed.timer_id, reason="guard fixed in 1.4.2", actor="ops")
    assert TimerWorker(engine).run_once() == 1

    assert engine.get(sid).status == "gone"
    assert engine.parked_work().timers == []
    events = [e.event for e in engine.history(sid)]
    assert events == ["session.created", "timer.retried", "give_up"]
    engine.store.close()


def test_the_timer_retry_command_refuses_a_timer_that_did_not_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = Engine(FlowRegistry.from_directory(FLOWS), url)
    sid = engine.create_session(create_request()).session_id
    with engine.store.transaction() as tx:
        (expiry,) = tx.timers(sid)
    engine.store.close()
    args = ["timers", "retry", sid, str(expiry.timer_id), "--reason", "why", "--actor", "ops"]
    assert main([*args, "--flows", str(FLOWS), "--store", url]) == 1
    assert "did not fail (it is pending): nothing to retry" in capsys.readouterr().err
