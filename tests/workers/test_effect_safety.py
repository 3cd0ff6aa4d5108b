"""Money safety in the effect runner: the scenarios a review found, as regression tests.

Each test is a way an effect could have been performed twice, performed for a session
that had moved on, or had its outcome lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowengine.adapters.base import EffectCall, EffectResult
from flowengine.adapters.ledger import LedgerAdapter
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from flowengine.workers import EffectRunner
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
