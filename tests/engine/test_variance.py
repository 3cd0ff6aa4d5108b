"""Amount variance as policy, in base units: flows/strict.yaml next to flows/deposit.yaml.

deposit accepts and delivers what arrived (Daimo's documented behaviour); strict waits
for the rest of a short payment until expiry, then refunds everything received.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.reconcile import reconcile
from flowengine.workers import EffectRunner, TimerWorker
from tests.factories import create_request

EFFECTS = ("evm.deliver", "evm.settle", "evm.refund")


def pay(units: int, n: int = 0) -> dict[str, object]:
    return {"units": units, "txHash": "0x" + f"{n:02x}" * 32}


@pytest.fixture
def ledger(tmp_path: Path) -> LedgerAdapter:
    return LedgerAdapter(tmp_path / "ledger.db")


def drain(engine: Engine, ledger: LedgerAdapter) -> None:
    runner = EffectRunner(engine, dict.fromkeys(EFFECTS, ledger))
    while runner.run_once():
        pass


def test_deposit_delivers_what_arrived_even_if_short(engine: Engine, ledger: LedgerAdapter) -> None:
    sid = engine.create_session(create_request(amount="25.00")).session_id
    engine.send(sid, "payment_detected", pay(24_500_000))
    drain(engine, ledger)
    assert engine.get(sid).amounts.delivered == "24.50"


def test_strict_waits_for_the_rest_then_delivers_the_whole(
    engine: Engine, ledger: LedgerAdapter
) -> None:
    sid = engine.create_session(create_request(flow="strict")).session_id
    assert engine.send(sid, "payment_detected", pay(10_000_000, 1)).state == "partially_paid"
    assert engine.send(sid, "payment_detected", pay(15_000_000, 2)).state == "paid"
    drain(engine, ledger)
    session = engine.get(sid)
    assert (session.status, session.amounts.delivered) == ("completed", "25.00")


def test_strict_accepts_a_shortfall_within_its_tolerance(engine: Engine) -> None:
    sid = engine.create_session(create_request(flow="strict")).session_id
    # 0.5 % of 25.00 is 0.125: 24.88 is within it, 24.87 is not
    assert engine.send(sid, "payment_detected", pay(24_880_000)).state == "paid"
    other = engine.create_session(create_request(flow="strict")).session_id
    assert engine.send(other, "payment_detected", pay(24_870_000)).state == "partially_paid"


def test_strict_refunds_everything_when_the_rest_never_comes(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    sid = engine.create_session(create_request(flow="strict", expiresIn=600)).session_id
    engine.send(sid, "payment_detected", pay(10_000_000, 1))
    engine.send(sid, "payment_detected", pay(5_000_000, 2))
    clock.advance(600)
    assert TimerWorker(engine).run_once() == 1
    drain(engine, ledger)
    session = engine.get(sid)
    assert (session.status, session.amounts.received, session.amounts.refunded) == (
        "bounced",
        "15.00",
        "15.00",
    )
    assert [(effect, units) for _, effect, units in ledger.transfers()] == [
        ("evm.refund", 15_000_000)
    ]
    assert reconcile(engine.store, ["strict"]).mismatches == []


def test_strict_refunds_a_payment_that_arrives_after_expiry(
    engine: Engine, clock: ManualClock, ledger: LedgerAdapter
) -> None:
    sid = engine.create_session(create_request(flow="strict", expiresIn=600)).session_id
    clock.advance(600)
    TimerWorker(engine).run_once()
    late = engine.send(sid, "payment_detected", pay(25_000_000))
    assert (late.state, late.event.meta["late"]) == ("expired", "refund")
    drain(engine, ledger)
    assert engine.get(sid).amounts.refunded == "25.00"
