"""The effect runner with a real ledger adapter: outcomes, retries, exactly-once delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.adapters.base import EffectCall
from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.workers import EffectRunner, RetryPolicy
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "cd" * 32}
EFFECTS = ("evm.deliver", "evm.settle", "evm.refund", "evm.call")


@pytest.fixture
def ledger(tmp_path: Path) -> LedgerAdapter:
    return LedgerAdapter(tmp_path / "ledger.db")


@pytest.fixture
def runner(engine: Engine, ledger: LedgerAdapter) -> EffectRunner:
    return EffectRunner(engine, dict.fromkeys(EFFECTS, ledger), retry=RetryPolicy(1000, 8000))


def run_all(runner: EffectRunner) -> None:
    while runner.run_once():
        pass


def test_delivery_and_settlement_run_to_completion(
    engine: Engine, runner: EffectRunner, ledger: LedgerAdapter
) -> None:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    run_all(runner)
    session = engine.get(sid)
    assert session.status == "completed"
    assert session.amounts.delivered == "25.00"
    assert [(effect, units) for _, effect, units in ledger.transfers()] == [
        ("evm.deliver", 25_000_000),
        ("evm.settle", 25_000_000),
    ]
    with engine.store.transaction() as tx:
        assert [e.status for e in tx.effects(sid)] == ["done", "done"]
        # Each call to the adapter is on record as it starts and when it answers.
        assert [a.outcome for a in tx.attempts(f"{sid}:evm.deliver:2")] == ["started", "ok"]


def test_a_reverted_delivery_refunds_and_bounces(
    engine: Engine, runner: EffectRunner, ledger: LedgerAdapter
) -> None:
    ledger.script("evm.deliver", "failed")
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    run_all(runner)
    session = engine.get(sid)
    assert session.status == "bounced"
    assert session.amounts.refunded == "25.00"
    assert session.destination.delivery is not None
    assert [e.event for e in engine.history(sid)][-2:] == ["evm.deliver.failed", "evm.refund.done"]


def test_pending_outcomes_are_retried_with_backoff(
    engine: Engine, runner: EffectRunner, ledger: LedgerAdapter, clock: ManualClock
) -> None:
    ledger.script("evm.deliver", "pending", "unknown")
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    assert runner.run_once() == 1
    assert runner.run_once() == 0  # not due for another second
    with engine.store.transaction() as tx:
        effect = tx.effects(sid)[0]
    assert effect.status == "pending"
    assert effect.available_at == clock.now_ms() + 1000
    clock.advance(1)
    assert runner.run_once() == 1  # unknown: next look in 2 s
    clock.advance(2)
    run_all(runner)
    assert engine.get(sid).status == "completed"
    with engine.store.transaction() as tx:
        outcomes = [a.outcome for a in tx.attempts(f"{sid}:evm.deliver:2")]
    assert [o for o in outcomes if o != "started"] == ["pending", "unknown", "ok"]


def test_a_runner_that_died_mid_effect_is_recovered_without_paying_twice(
    engine: Engine, runner: EffectRunner, ledger: LedgerAdapter, clock: ManualClock
) -> None:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    # a first runner claims the effect and performs it, then dies before recording it
    with engine.store.transaction() as tx:
        (claimed,) = tx.claim_effects(clock.now_ms(), 1, "dead-runner", 60_000)
    ledger.perform(EffectCall(claimed.key, claimed.effect, sid, engine.record(sid).data, 1))
    assert runner.run_once() == 0  # its lease still holds
    clock.advance(61)
    run_all(runner)
    assert engine.get(sid).status == "completed"
    deliveries = [t for t in ledger.transfers() if t[1] == "evm.deliver"]
    assert len(deliveries) == 1
