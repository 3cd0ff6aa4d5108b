"""Variance policies written as words (``variance: {underpaid: review, …}``).

Each policy becomes ordinary guarded transitions when the flow loads; these tests run
the deposit flow with one policy at a time, in base units, on every store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.errors import FlowValidationError
from flowengine.flows import FlowRegistry
from flowengine.paths import all_paths
from flowengine.spec import load_flow
from flowengine.workers import EffectRunner, TimerWorker
from tests.conftest import FLOWS
from tests.factories import create_request

V1 = (FLOWS / "deposit.yaml").read_text()


def pay(units: int, n: int = 1) -> dict[str, object]:
    return {"units": units, "txHash": "0x" + f"{n:02x}" * 32}


def with_policy(policy: str) -> str:
    return V1.replace("version: 1\n", "version: policy\n", 1) + f"\nvariance: {policy}\n"


def engine_for(policy: str, store_url: str, clock: ManualClock) -> Engine:
    spec = load_flow("deposit.yaml", text=with_policy(policy))
    return Engine(FlowRegistry([spec]), store_url, clock)


def drain(engine: Engine, tmp_path: Path) -> LedgerAdapter:
    ledger = LedgerAdapter(tmp_path / "ledger.db")
    runner = EffectRunner(
        engine, dict.fromkeys(("evm.deliver", "evm.settle", "evm.refund"), ledger)
    )
    while runner.run_once():
        pass
    return ledger


def test_underpaid_review_sends_a_short_payment_to_a_person(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for("{underpaid: review}", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    assert engine.send(sid, "payment_detected", pay(10_000_000)).state == "review"
    exact = engine.create_session(create_request()).session_id
    assert engine.send(exact, "payment_detected", pay(25_000_000)).state == "paid"


def test_underpaid_refund_all_gives_a_short_payment_back(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("{underpaid: refund_all}", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", pay(10_000_000))
    drain(engine, tmp_path)
    session = engine.get(sid)
    assert (session.status, session.amounts.refunded) == ("bounced", "10.00")


def test_underpaid_wait_until_expiry_waits_then_refunds(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("{underpaid: wait_until_expiry}", store_url, clock)
    topped_up = engine.create_session(create_request(expiresIn=600)).session_id
    assert engine.send(topped_up, "payment_detected", pay(10_000_000, 1)).state == "created"
    assert engine.send(topped_up, "payment_detected", pay(15_000_000, 2)).state == "paid"
    abandoned = engine.create_session(create_request(expiresIn=600)).session_id
    engine.send(abandoned, "payment_detected", pay(10_000_000, 3))
    unpaid = engine.create_session(create_request(expiresIn=600)).session_id
    clock.advance(600)
    TimerWorker(engine).run_once()
    drain(engine, tmp_path)
    assert engine.get(abandoned).status == "bounced"
    assert engine.get(abandoned).amounts.refunded == "10.00"
    assert engine.get(unpaid).status == "expired"  # nothing arrived: nothing to refund
    assert engine.get(topped_up).amounts.delivered == "25.00"


def test_overpaid_review_and_paid_late_refund_all(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for(
        "{tolerance: 1%, overpaid: review, paid_late: refund_all}", store_url, clock
    )
    within = engine.create_session(create_request()).session_id
    assert engine.send(within, "payment_detected", pay(25_200_000)).state == "paid"  # +0.8 %
    over = engine.create_session(create_request()).session_id
    assert engine.send(over, "payment_detected", pay(30_000_000)).state == "review"
    drain(engine, tmp_path)
    late = engine.send(within, "payment_detected", pay(5_000_000, 9))
    assert late.event.meta["late"] == "refund"


def test_policy_transitions_are_drawn_and_walked_like_any_other() -> None:
    spec = load_flow("deposit.yaml", text=with_policy("{underpaid: review}"))
    added = [t for t in spec.transitions if t.origin == "variance"]
    assert [(t.event, t.sources, t.to, t.guards) for t in added] == [
        ("payment_detected", ["created", "amount_selected"], "review", ["underpaid"])
    ]
    assert any("underpaid" in e.guard for p in all_paths(spec) for e in p.edges)


def test_a_policy_without_the_state_it_needs_is_located(tmp_path: Path) -> None:
    text = with_policy("{underpaid: review, refund_state: refundng}").replace(
        "status: requires_review", "status: needs_help"
    )
    with pytest.raises(FlowValidationError) as refused:
        load_flow("deposit.yaml", text=text)
    found = {p.message: p.hint for p in refused.value.problems}
    assert (
        "add a state with 'status: requires_review'"
        in found["'underpaid: review' needs a review state"]
    )
    assert found["unknown state 'refundng'"] == "did you mean 'refunding'?"


def test_overpaid_refund_difference_delivers_amount_units_and_refunds_the_rest(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("{tolerance: 1%, overpaid: refund_difference}", store_url, clock)
    over = engine.create_session(create_request()).session_id
    assert engine.send(over, "payment_detected", pay(30_000_123)).state == "refunding_excess"
    with engine.store.transaction() as tx:
        (requested,) = tx.effects(over)
    assert (requested.effect, requested.params) == ("evm.refund", {"units": 5_000_123})
    within = engine.create_session(create_request()).session_id
    assert engine.send(within, "payment_detected", pay(25_200_000, 2)).state == "paid"

    ledger = drain(engine, tmp_path)

    session = engine.get(over)
    assert session.status == "completed"
    assert (session.amounts.received, session.amounts.delivered) == ("30.000123", "25.00")
    assert (session.amounts.refunded, session.amounts.held) == ("5.000123", "0.00")
    moved = [(effect, units) for key, effect, units in ledger.transfers() if over in key]
    assert moved == [
        ("evm.refund", 5_000_123),
        ("evm.deliver", 25_000_000),
        ("evm.settle", 25_000_000),
    ]
    assert engine.get(within).amounts.delivered == "25.20"  # within tolerance: accepted


def test_a_failed_excess_refund_leaves_everything_held_for_review(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("{overpaid: refund_difference}", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", pay(40_000_000))
    ledger = LedgerAdapter(tmp_path / "ledger.db")
    ledger.script("evm.refund", "failed")
    runner = EffectRunner(
        engine, dict.fromkeys(("evm.deliver", "evm.settle", "evm.refund"), ledger)
    )
    while runner.run_once():
        pass
    session = engine.get(sid)
    assert (session.status, session.amounts.held, session.amounts.delivered) == (
        "requires_review",
        "40.00",
        "0.00",
    )


def test_paid_late_refund_difference_refunds_the_late_payment(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("{paid_late: refund_difference}", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", pay(25_000_000))
    drain(engine, tmp_path)
    late = engine.send(sid, "payment_detected", pay(7_000_000, 9))
    assert late.event.meta["late"] == "refund"
    drain(engine, tmp_path)
    session = engine.get(sid)
    assert (session.status, session.amounts.refunded, session.amounts.held) == (
        "completed",
        "7.00",
        "0.00",
    )


def test_refund_difference_is_refused_for_an_underpayment_with_a_hint() -> None:
    with pytest.raises(FlowValidationError) as refused:
        load_flow("deposit.yaml", text=with_policy("{underpaid: refund_difference}"))
    (problem,) = refused.value.problems
    assert problem.message == "an underpayment has no difference to refund"
    assert "'refund_all'" in problem.hint
    assert problem.line == V1.count("\n") + 2  # the 'variance:' line appended to the file
