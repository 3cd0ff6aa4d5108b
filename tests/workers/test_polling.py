"""Polling to the truth: pending/unknown answers are asked again on the state's schedule,
and when it runs out the flow's arm decides, or the session is reported for review."""

from __future__ import annotations

from flowengine.adapters.base import EffectCall, EffectResult
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry
from flowengine.spec import load_flow
from flowengine.workers import EffectRunner
from tests.conftest import FLOWS
from tests.factories import create_request

V1 = (FLOWS / "deposit.yaml").read_text()
PAY = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}


class NoAnswer:
    """An RPC that never answers: every look is 'unknown'."""

    def __init__(self) -> None:
        self.looks = 0

    def perform(self, call: EffectCall) -> EffectResult:
        self.looks += 1
        return EffectResult("unknown", detail="timeout")

    def status_of(self, key: str) -> EffectResult | None:
        self.looks += 1
        return EffectResult("unknown", detail="timeout")


def engine_for(paid_state: str, store_url: str, clock: ManualClock) -> Engine:
    text = V1.replace("version: 1\n", "version: polling\n", 1).replace(
        "    effect: evm.deliver\n    outcomes: {done: delivered, failed: refunding}\n", paid_state
    )
    return Engine(FlowRegistry([load_flow("deposit.yaml", text=text)]), store_url, clock)


def run_until_quiet(runner: EffectRunner, clock: ManualClock, seconds: int) -> None:
    for _ in range(seconds):
        runner.run_once()
        clock.advance(1)


def test_an_exhausted_schedule_without_an_arm_reports_the_session(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for(
        "    effect: evm.deliver\n    poll: ['10s×2']\n"
        "    outcomes: {done: delivered, failed: refunding}\n",
        store_url,
        clock,
    )
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY)
    rpc = NoAnswer()
    run_until_quiet(EffectRunner(engine, {"evm.deliver": rpc}), clock, 60)
    assert rpc.looks == 3  # the first try, then the two scheduled looks
    assert engine.get(sid).status == "paid"  # never silently failed
    log = engine.history(sid)[-1]
    assert (log.event, log.meta["applied"]) == ("evm.deliver.unknown", False)
    with engine.store.transaction() as tx:
        assert tx.effects(sid)[0].status == "review"
        assert tx.webhooks(sid)[-1].type == "session.requires_review"


def test_an_exhausted_schedule_follows_the_flows_unknown_arm(
    store_url: str, clock: ManualClock
) -> None:
    engine = engine_for(
        "    effect: evm.deliver\n    poll: ['5s', '1m']\n"
        "    outcomes: {done: delivered, failed: refunding, unknown: review}\n",
        store_url,
        clock,
    )
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY)
    run_until_quiet(EffectRunner(engine, {"evm.deliver": NoAnswer()}), clock, 120)
    assert engine.get(sid).status == "requires_review"
    assert [s.session_id for s in engine.review_queue()] == [sid]
