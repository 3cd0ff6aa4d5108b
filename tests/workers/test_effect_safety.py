"""Money safety in the effect runner: the scenarios a review found, as regression tests.

Each test is a way an effect could have been performed twice, performed for a session
that had moved on, or had its outcome lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowengine import amounts
from flowengine.adapters.base import EffectCall, EffectResult
from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock, SystemClock
from flowengine.engine import Engine
from flowengine.errors import FlowEngineError, StoreError
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from flowengine.store import EffectRecord
from flowengine.workers import EffectRunner, TimerWorker
from tests.conftest import FLOWS
from tests.factories import create_request

PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}
REORG_FLOW = (
    (FLOWS / "deposit.yaml")
    .read_text()
    .replace(
        "version: 1",
        "version: reorg-test",
    )
    + """
  - event: payment_reverted
    from: paid
    to: created
"""
)


@pytest.fixture
def ledger(tmp_path: Path) -> LedgerAdapter:
    return LedgerAdapter(tmp_path / "ledger.db")


@pytest.fixture
def reorg_engine(store_url: str, clock: ManualClock) -> Engine:
    return Engine(FlowRegistry([load_flow("deposit.yaml", text=REORG_FLOW)]), store_url, clock)


def drain(runner: EffectRunner) -> None:
    while runner.run_once():
        pass


def adapters(adapter: Any) -> dict[str, Any]:
    return dict.fromkeys(("evm.deliver", "evm.settle", "evm.refund"), adapter)


def test_an_effect_for_a_session_that_moved_on_is_cancelled_not_performed(
    reorg_engine: Engine, ledger: LedgerAdapter
) -> None:
    sid = reorg_engine.create_session(create_request()).session_id
    reorg_engine.send(sid, "payment_detected", PAYMENT)
    reorg_engine.send(sid, "payment_reverted")  # a reorg removed the payment
    reorg_engine.send(sid, "payment_detected", {**PAYMENT, "txHash": "0x" + "bb" * 32})
    drain(EffectRunner(reorg_engine, adapters(ledger)))
    deliveries = [t for t in ledger.transfers() if t[1] == "evm.deliver"]
    assert [key for key, _, _ in deliveries] == [f"{sid}:evm.deliver:4"]  # once, the live one
    with reorg_engine.store.transaction() as tx:
        statuses = {e.key: e.status for e in tx.effects(sid)}
    assert statuses[f"{sid}:evm.deliver:2"] == "cancelled"
    assert reorg_engine.get(sid).status == "completed"


class MovesTheSessionWhilePaying:
    """Pays, but the session is moved elsewhere while the transfer is in flight."""

    def __init__(self, engine: Engine, ledger: LedgerAdapter) -> None:
        self.engine, self.ledger = engine, ledger

    def perform(self, call: EffectCall) -> EffectResult:
        self.engine.send(call.session_id, "payment_reverted")
        return self.ledger.perform(call)

    def status_of(self, key: str) -> EffectResult | None:
        return self.ledger.status_of(key)


def test_an_outcome_the_state_no_longer_takes_is_logged_counted_and_reported(
    reorg_engine: Engine, ledger: LedgerAdapter
) -> None:
    sid = reorg_engine.create_session(create_request()).session_id
    reorg_engine.send(sid, "payment_detected", PAYMENT)
    runner = EffectRunner(
        reorg_engine, {"evm.deliver": MovesTheSessionWhilePaying(reorg_engine, ledger)}
    )
    runner.run_once()
    last = reorg_engine.history(sid)[-1]
    assert (last.event, last.source, last.target) == ("evm.deliver.done", "created", "created")
    assert last.meta["applied"] is False
    assert reorg_engine.get(sid).amounts.delivered == "25.00"  # the money that moved counts
    with reorg_engine.store.transaction() as tx:
        assert tx.webhooks(sid)[-1].type == "session.requires_review"


class AnswersWithAString(LedgerAdapter):
    def perform(self, call: EffectCall) -> EffectResult:
        done = super().perform(call)
        return EffectResult("ok", {**done.payload, "units": str(done.payload["units"])})


def test_a_malformed_outcome_parks_its_effect_and_the_runner_goes_on(
    engine: Engine, tmp_path: Path, ledger: LedgerAdapter
) -> None:
    broken = engine.create_session(create_request()).session_id
    engine.send(broken, "payment_detected", PAYMENT)
    healthy = engine.create_session(create_request()).session_id
    engine.send(healthy, "payment_detected", PAYMENT)
    runner = EffectRunner(
        engine,
        {
            "evm.deliver": AnswersWithAString(tmp_path / "odd.db"),
            "evm.settle": ledger,
        },
    )
    drain(runner)
    with engine.store.transaction() as tx:
        parked = tx.effects(broken)[0]
    assert parked.status == "review"
    assert "units" in (parked.last_error or "")
    assert engine.get(broken).status == "paid"  # not moved on a malformed answer


def test_a_runner_whose_lease_ran_out_does_not_act_on_its_old_claim(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    slow = EffectRunner(engine, adapters(ledger), worker_id="slow", lease_ms=10_000)
    with engine.store.transaction() as tx:
        (stale_claim,) = tx.claim_effects(clock.now_ms(), 1, "slow", 10_000)
    clock.advance(11)  # the slow runner's lease expires; another runner does the work
    drain(EffectRunner(engine, adapters(ledger)))
    slow._run(stale_claim)  # the slow runner finally gets to its old claim
    assert [effect for _, effect, _ in ledger.transfers()] == ["evm.deliver", "evm.settle"]
    assert engine.get(sid).status == "completed"


@pytest.mark.parametrize("planned", [False, True], ids=["under the lock", "planned"])
def test_a_runner_whose_outcome_fails_after_a_takeover_leaves_the_new_claim_alone(
    engine: Engine, clock: ManualClock, planned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runner A's lease runs out during its call and runner B takes the effect over;
    then A's outcome meets a bug. A must neither park B's claim nor drop B's result,
    whether or not it planned the outcome before its checks."""
    engine.optimistic = planned
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    done = EffectResult("ok", {"units": 25_000_000, "txHash": "0x" + "cd" * 32})
    taken: list[EffectRecord] = []
    bug = [False]
    real_apply = amounts.apply

    def apply_with_a_bug(moved: Any, event: str, payload: Any) -> Any:
        if bug[0]:
            raise RuntimeError("a bug on the outcome path")
        return real_apply(moved, event, payload)

    monkeypatch.setattr(amounts, "apply", apply_with_a_bug)

    class TakenOverDuringTheCall:
        def perform(self, call: EffectCall) -> EffectResult:
            clock.advance(2)  # A's lease (1 s) runs out; B claims the effect
            with engine.store.transaction() as tx:
                taken.extend(tx.claim_effects(clock.now_ms(), 1, "runner-B", 60_000))
            bug[0] = True  # the bug bites A's outcome only
            return done

        def status_of(self, key: str) -> EffectResult:
            return done

    adapter = {"evm.deliver": TakenOverDuringTheCall()}
    EffectRunner(engine, adapter, worker_id="runner-A", lease_ms=1000).run_once()
    (claim_b,) = taken
    bug[0] = False
    EffectRunner(engine, adapter, worker_id="runner-B", lease_ms=60_000)._run(claim_b)
    with engine.store.transaction() as tx:
        (deliver,) = [e for e in tx.effects(sid) if e.effect == "evm.deliver"]
    assert (deliver.status, deliver.claimed_by) == ("done", "runner-B")
    assert engine.get(sid).status == "delivered"


TIMEOUT_FLOW = (FLOWS / "deposit.yaml").read_text().replace(
    "version: 1", "version: delivery-timeout-test"
).replace(
    "    outcomes: {done: delivered, failed: refunding}\n  delivered:",
    "    outcomes: {done: delivered, failed: refunding}\n"
    "    timers:\n      - {after: 30m, event: delivery_timeout}\n  delivered:",
) + "  - {event: delivery_timeout, from: paid, to: review}\n"


class BroadcastsThenConfirms:
    """A chain adapter: the transfer goes out at once but is not final yet (pending)."""

    def __init__(self, ledger: LedgerAdapter) -> None:
        self.ledger = ledger
        self.asked = 0

    def perform(self, call: EffectCall) -> EffectResult:
        self.ledger.perform(call)  # the money has moved
        return EffectResult("pending", detail="broadcast, 0 confirmations")

    def status_of(self, key: str) -> EffectResult | None:
        self.asked += 1
        return self.ledger.status_of(key)


def test_money_moved_by_an_earlier_attempt_is_counted_after_the_session_moved_on(
    store_url: str, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    # The delivery went out on its first attempt (pending); while the runner waits to
    # look again, the state's own timer moves the session to review. The next look
    # must ask the adapter and count the delivery, not cancel the effect unasked.
    engine = Engine(FlowRegistry([load_flow("deposit.yaml", text=TIMEOUT_FLOW)]), store_url, clock)
    chain = BroadcastsThenConfirms(ledger)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    runner = EffectRunner(engine, {**adapters(ledger), "evm.deliver": chain})
    runner.run_once()  # performed: pending
    clock.advance(31 * 60)
    TimerWorker(engine).run_once()  # delivery_timeout: paid -> review
    drain(runner)
    assert chain.asked == 1
    session = engine.get(sid)
    assert (session.state, session.amounts.delivered) == ("review", "25.00")
    with engine.store.transaction() as tx:
        (effect,) = tx.effects(sid)
        outcomes = [a.outcome for a in tx.attempts(effect.key)]
        assert tx.webhooks(sid)[-1].type == "session.requires_review"
    assert effect.status == "done"
    assert outcomes == ["started", "pending", "started", "ok"]


def test_an_effect_never_performed_is_cancelled_once_its_session_moved_on(
    store_url: str, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    # Same story, but the first attempt never reached the chain (the adapter raised):
    # the adapter has no record of the key, so there is nothing to count, and nothing
    # is performed for a session that no longer waits for it.
    engine = Engine(FlowRegistry([load_flow("deposit.yaml", text=TIMEOUT_FLOW)]), store_url, clock)

    class Unreachable(LedgerAdapter):
        def perform(self, call: EffectCall) -> EffectResult:
            raise ConnectionError("node unreachable")

    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    EffectRunner(engine, {"evm.deliver": Unreachable(ledger.path)}).run_once()  # unknown
    clock.advance(31 * 60)
    TimerWorker(engine).run_once()
    drain(EffectRunner(engine, adapters(ledger)))
    assert ledger.transfers() == []
    with engine.store.transaction() as tx:
        (effect,) = tx.effects(sid)
    assert effect.status == "cancelled"
    assert engine.get(sid).amounts.delivered == "0.00"


class PaysThenDies:
    """The transfer goes through, then the runner's process dies before it records it."""

    def __init__(self, ledger: LedgerAdapter) -> None:
        self.ledger = ledger

    def perform(self, call: EffectCall) -> EffectResult:
        self.ledger.perform(call)
        raise SystemExit("killed")

    def status_of(self, key: str) -> EffectResult | None:
        return self.ledger.status_of(key)


def test_an_override_waits_for_an_effect_in_flight(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    # Deciding "the delivery failed" while it may have gone through would refund money
    # that was also delivered: the override is refused until a runner has asked.
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    with pytest.raises(SystemExit):
        EffectRunner(engine, {"evm.deliver": PaysThenDies(ledger)}).run_once()
    with pytest.raises(FlowEngineError, match="under way"):
        engine.override(sid, "evm.deliver.failed", reason="looks stuck", actor="ops")
    assert engine.get(sid).state == "paid"  # nothing written
    clock.advance(61)  # the dead runner's lease runs out; another takes over and asks
    drain(EffectRunner(engine, adapters(ledger)))
    session = engine.get(sid)
    assert (session.state, session.amounts.delivered) == ("completed", "25.00")
    assert [effect for _, effect, _ in ledger.transfers()] == ["evm.deliver", "evm.settle"]


class OkWithAStringAmount(LedgerAdapter):
    def perform(self, call: EffectCall) -> EffectResult:
        done = super().perform(call)
        return EffectResult("ok", {**done.payload, "units": "25000000"}, detail="tx sent")


def test_an_attempt_is_on_record_even_when_its_outcome_cannot_be_applied(
    engine: Engine, tmp_path: Path
) -> None:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    drain(EffectRunner(engine, {"evm.deliver": OkWithAStringAmount(tmp_path / "odd.db")}))
    with engine.store.transaction() as tx:
        (effect,) = tx.effects(sid)
        attempts = tx.attempts(effect.key)
    assert effect.status == "review"  # parked: the answer was malformed
    assert [(a.attempt, a.outcome, a.detail) for a in attempts] == [
        (1, "started", ""),
        (1, "ok", "tx sent"),
    ]


class DiesEveryTime(LedgerAdapter):
    """The call kills the runner's process (an out-of-memory kill, a native crash)."""

    def perform(self, call: EffectCall) -> EffectResult:
        raise SystemExit("killed")


def test_an_effect_that_keeps_killing_its_runner_is_parked_then_retried_by_a_person(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    deadly = EffectRunner(engine, {"evm.deliver": DiesEveryTime(ledger.path)}, lease_ms=1_000)
    for _ in range(3):  # three runners die on it in a row
        with pytest.raises(SystemExit):
            deadly.run_once()
        clock.advance(2)
    assert deadly.run_once() == 1  # the fourth claim parks it instead of calling again
    with engine.store.transaction() as tx:
        (effect,) = tx.effects(sid)
    assert effect.status == "review"
    assert "never came back" in (effect.last_error or "")

    engine.retry_effect(effect.key, reason="adapter fixed", actor="ops")
    drain(EffectRunner(engine, adapters(ledger)))  # a fresh share of attempts
    assert engine.get(sid).status == "completed"
    assert [effect for _, effect, _ in ledger.transfers()] == ["evm.deliver", "evm.settle"]


def test_a_store_error_on_one_effect_does_not_hold_up_the_others(
    engine: Engine, ledger: LedgerAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = engine.create_session(create_request()).session_id
    engine.send(stuck, "payment_detected", PAYMENT)
    healthy = engine.create_session(create_request()).session_id
    engine.send(healthy, "payment_detected", PAYMENT)
    finish = EffectRunner._finish

    def refused_for_one(runner: EffectRunner, effect: EffectRecord, result: Any) -> None:
        if effect.session_id == stuck:
            raise StoreError("the store refused this effect's row")
        finish(runner, effect, result)

    monkeypatch.setattr(EffectRunner, "_finish", refused_for_one)
    drain(EffectRunner(engine, adapters(ledger)))
    assert engine.get(healthy).status == "completed"
    with engine.store.transaction() as tx:
        (effect,) = tx.effects(stuck)
    assert effect.status == "pending"  # handed back, to be looked at again later
    assert "store error" in (effect.last_error or "")


class AnswersWithANul(LedgerAdapter):
    def perform(self, call: EffectCall) -> EffectResult:
        done = super().perform(call)
        return EffectResult("ok", done.payload, detail="node says: \x00 ok")


def test_an_adapter_detail_with_a_nul_character_is_kept_on_every_store(
    engine: Engine, ledger: LedgerAdapter, tmp_path: Path
) -> None:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    drain(
        EffectRunner(
            engine, {**adapters(ledger), "evm.deliver": AnswersWithANul(tmp_path / "nul.db")}
        )
    )
    assert engine.get(sid).status == "completed"
    with engine.store.transaction() as tx:
        (delivery, _) = tx.effects(sid)
        (_, answer) = tx.attempts(delivery.key)
    assert answer.detail == "node says: \\0 ok"


class SlowNode:
    """A transfer that takes longer than a runner's lease to come back."""

    def __init__(self, ledger: LedgerAdapter, seconds: float) -> None:
        self.ledger, self.seconds = ledger, seconds
        self.calls: list[str] = []

    def perform(self, call: EffectCall) -> EffectResult:
        self.calls.append("perform")
        time.sleep(self.seconds)
        return self.ledger.perform(call)

    def status_of(self, key: str) -> EffectResult | None:
        self.calls.append("status_of")
        return self.ledger.status_of(key)


def test_a_slow_call_keeps_its_lease_so_no_other_runner_takes_it_over(
    store_url: str, ledger: LedgerAdapter
) -> None:
    # Real time here: the lease is renewed every third of it while the call runs.
    engine = Engine(FlowRegistry.from_directory(FLOWS), store_url, SystemClock())
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    node = SlowNode(ledger, seconds=2.5)
    slow = EffectRunner(engine, {"evm.deliver": node}, worker_id="slow", lease_ms=900)
    other = EffectRunner(engine, {"evm.deliver": node}, worker_id="other", lease_ms=900)
    working = threading.Thread(target=slow.run_once)
    working.start()
    while working.is_alive():
        other.run_once()  # would take the effect over once the lease ran out
        time.sleep(0.05)
    working.join()
    assert node.calls == ["perform"]
    assert engine.get(sid).status == "delivered"


def test_claims_taken_over_before_their_call_started_are_not_crashes(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    # A busy runner's batch tail can be taken over again and again (its lease ran out
    # while it worked on the head): none of those claims ever called the adapter, so
    # the effect must still be performed, not parked as a crash loop.
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    for runner in ("busy-1", "busy-2", "busy-3", "busy-4"):
        with engine.store.transaction() as tx:
            assert len(tx.claim_effects(clock.now_ms(), 5, runner, 1_000)) == 1
        clock.advance(2)
    drain(EffectRunner(engine, adapters(ledger)))
    assert engine.get(sid).status == "completed"


def test_an_override_waits_for_a_pending_answer_to_be_settled(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    # The chain said "pending": the transfer may yet go through, so "delivery failed"
    # cannot be decided now (a refund would pay the money out twice).
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    EffectRunner(engine, {"evm.deliver": BroadcastsThenConfirms(ledger)}).run_once()
    with pytest.raises(FlowEngineError, match="under way"):
        engine.override(sid, "evm.deliver.failed", reason="chain looks stuck", actor="ops")
    clock.advance(2)
    drain(EffectRunner(engine, adapters(ledger)))
    assert engine.get(sid).status == "completed"


def test_a_call_that_answers_after_a_takeover_cancelled_its_effect_is_counted(
    store_url: str, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    # Runner A's call is slow and its lease runs out. Meanwhile the state's timer moves
    # the session on, and runner B takes the effect over: it asks the adapter, which
    # does not know the key yet (A's transfer has not gone out), and cancels. Then A's
    # transfer goes through. That money must be counted, not dropped with A's claim.
    engine = Engine(FlowRegistry([load_flow("deposit.yaml", text=TIMEOUT_FLOW)]), store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    runner_b = EffectRunner(engine, adapters(ledger), worker_id="runner-B", lease_ms=60_000)

    class SlowTransfer:
        def perform(self, call: EffectCall) -> EffectResult:
            clock.advance(31 * 60)  # A's lease (1 s) and the delivery timeout run out
            TimerWorker(engine).run_once()  # delivery_timeout: paid -> review
            assert runner_b.run_once() == 1  # takes the effect over, and cancels it
            return ledger.perform(call)  # A's transfer goes through at last

        def status_of(self, key: str) -> EffectResult | None:
            return ledger.status_of(key)

    EffectRunner(engine, {"evm.deliver": SlowTransfer()}, worker_id="A", lease_ms=1000).run_once()
    drain(runner_b)
    assert [effect for _, effect, _ in ledger.transfers()] == ["evm.deliver"]
    session = engine.get(sid)
    assert (session.state, session.amounts.delivered) == ("review", "25.00")
    with engine.store.transaction() as tx:
        (effect,) = tx.effects(sid)
        assert tx.webhooks(sid)[-1].type == "session.requires_review"
    assert effect.status == "done"
