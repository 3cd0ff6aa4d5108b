"""Late, duplicate and out-of-order events: recorded and routed, never lost.

A payment can reach a session after it finished (a payer pays twice) or before its state
can take it (funds before the amount was chosen). Neither is an exception at the chain
watcher: the flow's ``on_late`` and ``defer`` policies say what happens.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flowengine.adapters.base import EffectCall, EffectResult
from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.engine import Engine, EventInput
from flowengine.errors import TransitionNotAllowed, ValidationError
from flowengine.flows import FlowRegistry
from flowengine.reconcile import reconcile
from flowengine.spec import load_flow
from flowengine.workers import EffectRunner
from tests.conftest import FLOWS
from tests.factories import create_request

V1 = (FLOWS / "deposit.yaml").read_text()
PAY = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}
SECOND_PAY = {"units": 10_000_000, "txHash": "0x" + "cc" * 32}


def engine_for(policy: str, store_url: str, clock: ManualClock) -> Engine:
    text = V1.replace("version: 1\n", "version: policy\n", 1) + "\n" + policy
    return Engine(FlowRegistry([load_flow("deposit.yaml", text=text)]), store_url, clock)


def completed(engine: Engine) -> str:
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY, external_ref="8453:0xaa:0")
    engine.send(sid, "evm.deliver.done", PAY)
    engine.send(sid, "evm.settle.done")
    return sid


def test_a_late_payment_is_recorded_and_reported_by_default(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for("", store_url, clock)
    sid = completed(engine)
    late = engine.send(sid, "payment_detected", SECOND_PAY, external_ref="8453:0xcc:0")
    assert late.state == "completed"
    assert late.event.meta["late"] == "review"
    assert engine.get(sid).amounts.received == "35.00"  # the money that arrived counts
    with engine.store.transaction() as tx:
        assert tx.webhooks(sid)[-1].type == "session.requires_review"
    again = engine.send(sid, "payment_detected", SECOND_PAY, external_ref="8453:0xcc:0")
    assert again.duplicate
    assert engine.get(sid).amounts.received == "35.00"


def test_a_late_payment_can_be_refunded_by_policy(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("on_late: {payment_detected: refund}", store_url, clock)
    sid = completed(engine)
    engine.send(sid, "payment_detected", SECOND_PAY, external_ref="8453:0xcc:0")
    ledger = LedgerAdapter(tmp_path / "ledger.db")
    runner = EffectRunner(engine, {"evm.refund": ledger})
    while runner.run_once():
        pass
    assert [(effect, units) for _, effect, units in ledger.transfers()] == [
        ("evm.refund", 10_000_000)  # what the session held: the late payment only
    ]
    amounts = engine.get(sid).amounts
    assert (amounts.received, amounts.delivered, amounts.refunded) == ("35.00", "25.00", "10.00")
    assert engine.get(sid).status == "completed"
    assert reconcile(engine.store, ["deposit"]).mismatches == []


def test_an_ignored_late_event_is_only_recorded(store_url: str, clock: ManualClock) -> None:
    engine = engine_for("on_late: {default: ignore}", store_url, clock)
    sid = completed(engine)
    engine.send(sid, "select_amount")
    with engine.store.transaction() as tx:
        assert "session.requires_review" not in [w.type for w in tx.webhooks(sid)]
    assert engine.history(sid)[-1].meta["late"] == "ignore"


def test_an_early_payment_waits_for_the_state_that_takes_it(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for("defer: payment_detected", store_url, clock)
    sid = engine.create_session(create_request(amount=None)).session_id
    early = engine.send(sid, "payment_detected", PAY, external_ref="8453:0xaa:0")
    assert early.state == "created"  # kept, not refused
    assert engine.send(sid, "select_amount").state == "paid"  # ...and taken right after
    log = engine.history(sid)
    assert [e.event for e in log] == [
        "session.created",
        "payment_detected",
        "select_amount",
        "payment_detected",
    ]
    assert log[1].meta["deferred"] is True
    assert log[3].meta["deferred_from"] == 2
    assert engine.get(sid).amounts.received == "25.00"  # counted once
    assert reconcile(engine.store, ["deposit"]).mismatches == []


def test_a_payment_deferred_by_an_earlier_release_is_still_taken(
    tmp_path: Path, clock: ManualClock
) -> None:
    # Releases before the JSON-only check could keep a deferred payload with a NaN in it;
    # re-offering it must take the money, not refuse a field the caller never sent now.
    store = tmp_path / "old.db"
    engine = engine_for("defer: payment_detected", f"sqlite:///{store}", clock)
    sid = engine.create_session(create_request(amount=None)).session_id
    engine.send(sid, "payment_detected", PAY, external_ref="8453:0xaa:0")
    with sqlite3.connect(store) as db:
        db.execute(
            "UPDATE sessions SET data = replace(data, '\"units\":25000000', "
            '\'"units":25000000,"fxRate":NaN\') WHERE session_id = ?',
            (sid,),
        )
    assert engine.send(sid, "select_amount").state == "paid"
    assert engine.get(sid).amounts.received == "25.00"


def test_deferral_is_bounded(store_url: str, clock: ManualClock) -> None:
    engine = engine_for("defer: evm.settle.done", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    for n in range(10):
        engine.send(sid, "evm.settle.done", event_id=f"early-{n}")
    with pytest.raises(TransitionNotAllowed):
        engine.send(sid, "evm.settle.done", event_id="one-too-many")


def test_late_refunds_give_back_exactly_each_late_payment(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    """Each late refund's amount is fixed when it is requested: two refunds claimed at
    once cannot both pay out "everything held" (which paid 45.00 for 35.00 received)."""
    engine = engine_for("on_late: {payment_detected: refund}\n", store_url, clock)
    sid = completed(engine)
    engine.send(sid, "payment_detected", {"units": 7_000_000, "txHash": "0x" + "01" * 32})
    engine.send(sid, "payment_detected", {"units": 3_000_000, "txHash": "0x" + "02" * 32})
    with engine.store.transaction() as tx:
        refunds = [e.params for e in tx.effects(sid) if e.key.endswith(":late")]
    assert refunds == [{"units": 7_000_000}, {"units": 3_000_000}]

    ledger = LedgerAdapter(tmp_path / "ledger.db")
    runner = EffectRunner(engine, {"evm.refund": ledger, "evm.deliver": ledger})
    while runner.run_once():
        pass
    session = engine.get(sid)
    assert (session.amounts.received, session.amounts.refunded) == ("35.00", "10.00")
    assert session.amounts.held == "0.00"


def test_a_late_payment_to_a_session_settled_by_hand_refunds_only_itself(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for("on_late: {payment_detected: refund}\n", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY)
    engine.send(sid, "evm.deliver.failed")
    engine.send(sid, "evm.refund.failed")  # review: a person refunds 25.00 by hand
    engine.override(sid, "resolve_bounced", reason="refunded by hand", actor="ops")
    engine.send(sid, "payment_detected", {"units": 7_000_000, "txHash": "0x" + "03" * 32})
    with engine.store.transaction() as tx:
        (late,) = [e for e in tx.effects(sid) if e.key.endswith(":late")]
    assert late.params == {"units": 7_000_000}  # not the 32.00 the books say is held


def test_an_early_event_with_bad_units_is_refused_not_deferred(
    store_url: str, clock: ManualClock
) -> None:
    """Deferred events are re-offered later; one that could never be applied would fail
    every later transition, so it is refused at the door and nothing is written."""
    engine = engine_for("defer: payment_detected", store_url, clock)
    sid = engine.create_session(create_request(amount=None)).session_id
    with pytest.raises(ValidationError):
        engine.send(sid, "payment_detected", {"units": "25000000"})
    assert [e.event for e in engine.history(sid)] == ["session.created"]
    assert engine.send(sid, "select_amount").state == "amount_selected"


class RefundBounces(LedgerAdapter):
    """The payer's address refuses the transfer."""

    def perform(self, call: EffectCall) -> EffectResult:
        return EffectResult("failed", detail="execution reverted")


def test_a_late_refund_that_fails_is_reported_not_ignored(
    store_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    engine = engine_for("on_late: {payment_detected: refund}", store_url, clock)
    sid = completed(engine)
    engine.send(sid, "payment_detected", SECOND_PAY, external_ref="8453:0xcc:0")
    runner = EffectRunner(engine, {"evm.refund": RefundBounces(tmp_path / "ledger.db")})
    while runner.run_once():
        pass
    last = engine.history(sid)[-1]
    assert (last.event, last.meta["late"]) == ("evm.refund.failed", "review")
    assert engine.get(sid).amounts.held == "10.00"  # still the payer's, and a person knows
    with engine.store.transaction() as tx:
        assert tx.webhooks(sid)[-1].type == "session.requires_review"


def test_only_a_late_payment_is_refunded_and_never_beyond_what_is_held(
    store_url: str, clock: ManualClock
) -> None:
    # With every late event set to refund: a refund booked by hand after the session
    # was settled is money that left, not money to give back; and a late payment's
    # refund already requested is not counted as held a second time.
    engine = engine_for("on_late: {default: refund}", store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY)
    engine.send(sid, "evm.deliver.failed")
    engine.send(sid, "evm.refund.failed")  # review
    engine.override(sid, "resolve_bounced", reason="refunded 25 by hand", actor="ops")
    engine.send(sid, "payment_detected", {"units": 7_000_000}, external_ref="late-7")
    booked = engine.send(sid, "evm.refund.done", {"units": 25_000_000, "txHash": "0x" + "dd" * 32})
    assert booked.event.meta["late"] == "review"
    engine.send(sid, "payment_detected", {"units": 3_000_000}, external_ref="late-3")
    with engine.store.transaction() as tx:
        late = [e.params for e in tx.effects(sid) if e.key.endswith(":late")]
    # Each late payment gets its own back, the hand refund nothing more: 35 received,
    # 25 + 7 + 3 going back.
    assert late == [{"units": 7_000_000}, {"units": 3_000_000}]


def test_a_late_refund_requested_is_not_held_twice(store_url: str, clock: ManualClock) -> None:
    # A late payment's refund is on its way; a person books a larger refund by hand
    # meanwhile. What the session holds is then below what is already owed back, and
    # the next late payment is not refunded out of money that is not there.
    engine = engine_for("on_late: {payment_detected: refund}", store_url, clock)
    sid = completed(engine)  # 25 received, 25 delivered
    engine.send(sid, "payment_detected", {"units": 7_000_000}, external_ref="late-7")
    engine.send(sid, "evm.refund.done", {"units": 5_000_000}, event_id="by-hand")
    engine.send(sid, "payment_detected", {"units": 3_000_000}, external_ref="late-3")
    with engine.store.transaction() as tx:
        late = [e.params for e in tx.effects(sid) if e.key.endswith(":late")]
    # Held 35 - 25 - 5 = 5, with 7 already owed: nothing more goes out.
    assert late == [{"units": 7_000_000}]


def test_units_beyond_uint256_are_refused_and_the_rest_of_a_group_commits(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for("", store_url, clock)
    first = engine.create_session(create_request()).session_id
    second = engine.create_session(create_request()).session_id
    results = engine.send_many(
        [
            EventInput(first, "payment_detected", {"units": 2**256}),
            EventInput(second, "payment_detected", PAY),
        ]
    )
    assert isinstance(results[0], ValidationError)
    assert results[0].errors[0].param == "payload.units"
    assert engine.get(second).status == "paid"
    assert engine.get(first).status == "created"


def test_deferred_events_are_offered_again_while_one_of_them_moves_the_session(
    store_url: str, clock: ManualClock
) -> None:
    # The delivery's outcome arrives even before the payment (a fast chain watcher):
    # once the amount is chosen the payment is taken, and then the outcome, though it
    # was offered (and could not be taken) before the payment in the same round.
    engine = engine_for("defer: [evm.deliver.done, payment_detected]", store_url, clock)
    sid = engine.create_session(create_request(amount=None)).session_id
    engine.send(sid, "evm.deliver.done", PAY, event_id="early-deliver")
    engine.send(sid, "payment_detected", PAY, event_id="early-pay")
    assert engine.send(sid, "select_amount").state == "delivered"
    assert engine.record(sid).data.get("deferred") == []
    assert engine.get(sid).amounts.delivered == "25.00"
