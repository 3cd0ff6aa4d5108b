"""Polling to the truth: pending/unknown answers are asked again on the state's schedule,
and when it runs out the flow's arm decides, or the session is reported for review."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.adapters.base import EffectCall, EffectResult
from flowengine.cli import main
from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.errors import FlowEngineError, ValidationError
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


def engine_for(
    paid_state: str, store_url: str, clock: ManualClock, *, review_state: bool = True
) -> Engine:
    """deposit with ``paid_state`` as the paid state; without ``review_state`` no state
    has status requires_review, so pending/unknown have no default arm."""
    text = V1.replace("version: 1\n", "version: polling\n", 1).replace(
        "    effect: evm.deliver\n    outcomes: {done: delivered, failed: refunding}\n", paid_state
    )
    if not review_state:
        text = text.replace("    status: requires_review\n", "")
    return Engine(FlowRegistry([load_flow("deposit.yaml", text=text)]), store_url, clock)


def run_until_quiet(runner: EffectRunner, clock: ManualClock, seconds: int) -> None:
    for _ in range(seconds):
        runner.run_once()
        clock.advance(1)


def parked_delivery(
    store_url: str, clock: ManualClock, poll: str = "['10s']", rpc: NoAnswer | None = None
) -> tuple[Engine, str]:
    """A paid session whose delivery never answered (``rpc``), in a flow with no review
    state: once its ``poll`` schedule ran out, the runner gave up and parked the effect."""
    engine = engine_for(
        f"    effect: evm.deliver\n    poll: {poll}\n"
        "    outcomes: {done: delivered, failed: refunding}\n",
        store_url,
        clock,
        review_state=False,
    )
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY)
    run_until_quiet(EffectRunner(engine, {"evm.deliver": rpc or NoAnswer()}), clock, 60)
    return engine, sid


def test_an_exhausted_schedule_goes_to_the_review_state_by_default(
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
    assert rpc.looks == 3
    assert engine.get(sid).status == "requires_review"  # the arm the language supplies
    assert engine.history(sid)[-1].event == "evm.deliver.unknown"
    assert [s.session_id for s in engine.review_queue()] == [sid]
    # The transfer's fate is still unknown: its effect stays parked until a person decides.
    assert [e.session_id for e in engine.parked_work().effects] == [sid]
    engine.override(sid, "resolve_bounced", reason="refunded by hand", actor="ops")
    assert engine.parked_work().effects == []


def test_an_exhausted_schedule_without_an_arm_or_review_state_reports_the_session(
    store_url: str, clock: ManualClock
) -> None:
    rpc = NoAnswer()
    engine, sid = parked_delivery(store_url, clock, poll="['10s×2']", rpc=rpc)
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


def test_a_parked_effect_is_listed_until_a_person_settles_it(
    store_url: str, clock: ManualClock
) -> None:
    engine, sid = parked_delivery(store_url, clock)
    (parked,) = engine.parked_work().effects
    assert (parked.session_id, parked.effect, parked.status) == (sid, "evm.deliver", "review")

    # A person looked the transfer up on chain: it went through.
    engine.override(sid, "evm.deliver.done", reason="tx 0xbb.. on chain", actor="ops", payload=PAY)

    assert engine.parked_work().effects == []
    with engine.store.transaction() as tx:
        settled = tx.get_effect(parked.key)
    assert settled is not None
    assert settled.status == "cancelled"
    assert settled.last_error == "settled by override evm.deliver.done (ops: tx 0xbb.. on chain)"
    assert engine.get(sid).amounts.delivered == "25.00"


def test_the_review_command_lists_parked_effects(
    tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine, sid = parked_delivery(url, clock)
    engine.store.close()

    assert main(["sessions", "review", "--flows", str(FLOWS), "--store", url]) == 0

    listed = capsys.readouterr().out
    assert "0 sessions waiting for review" in listed  # the session itself still says paid
    assert f"parked effect {sid}:evm.deliver:" in listed
    assert "after 2 attempt(s)" in listed
    key = listed.split("parked effect ", 1)[1].split()[0]
    retry = ["effects", "retry", key, "--reason", "RPC fixed", "--actor", "ops"]
    assert main([*retry, "--flows", str(FLOWS), "--store", url]) == 0
    assert f"effect {key} queued again (by ops)" in capsys.readouterr().out


class Recovered:
    """The RPC answers again, and the transfer had gone through all along."""

    def __init__(self) -> None:
        self.performed = 0

    def perform(self, call: EffectCall) -> EffectResult:
        self.performed += 1
        return EffectResult("ok", {"units": 25_000_000, "txHash": "0x" + "dd" * 32})

    def status_of(self, key: str) -> EffectResult | None:
        return EffectResult("ok", {"units": 25_000_000, "txHash": "0x" + "dd" * 32})


def test_a_retried_effect_asks_before_it_acts_and_is_audited(
    store_url: str, clock: ManualClock
) -> None:
    engine, sid = parked_delivery(store_url, clock)
    (parked,) = engine.parked_work().effects

    engine.retry_effect(parked.key, reason="RPC endpoint fixed", actor="ops")
    rpc = Recovered()
    run_until_quiet(EffectRunner(engine, {"evm.deliver": rpc}), clock, 5)

    assert rpc.performed == 0  # it had gone through: reported, not made twice
    assert engine.get(sid).state == "delivered"
    assert engine.parked_work().effects == []
    audit = next(e for e in engine.history(sid) if e.event == "effect.retried")
    assert (audit.meta["actor"], audit.meta["reason"]) == ("ops", "RPC endpoint fixed")
    assert audit.payload == {"effect": parked.key}


def test_only_a_parked_effect_of_a_waiting_session_can_be_retried(
    store_url: str, clock: ManualClock
) -> None:
    engine, sid = parked_delivery(store_url, clock)
    (parked,) = engine.parked_work().effects
    with pytest.raises(ValidationError):
        engine.retry_effect(parked.key, reason=" ", actor="ops")
    with pytest.raises(FlowEngineError, match="no effect"):
        engine.retry_effect("nope", reason="why", actor="ops")
    engine.override(sid, "evm.deliver.failed", reason="reverted on chain", actor="ops")
    with pytest.raises(FlowEngineError, match="not parked for review"):
        engine.retry_effect(parked.key, reason="why", actor="ops")  # settled: cancelled
    assert [e.event for e in engine.history(sid)].count("effect.retried") == 0


def test_a_look_after_its_state_was_renamed_follows_the_new_versions_schedule(
    store_url: str, clock: ManualClock
) -> None:
    # v2 renames 'paid' to 'paying' (looking every hour) and takes v1's sessions over.
    # A second payment moves this one to v2 while the runner is asking about its
    # delivery: the next look must follow 'paying''s schedule, not the default one
    # that a lookup of the old name 'paid' in v2 falls back to.
    paid = "    effect: evm.deliver\n    outcomes: {done: delivered, failed: refunding}\n"
    v1 = V1.replace(paid, paid.replace("    outcomes", "    poll: ['10s×2']\n    outcomes"))
    v2 = (
        v1.replace("version: 1\n", "version: 2\n", 1)
        .replace("poll: ['10s×2']", "poll: ['1h×3']")
        .replace("  paid:\n", "  paying:\n")
        .replace("to: paid\n", "to: paying\n")
    ) + "defer: payment_detected\nupgrade:\n  from: 1\n  migrate: {paid: paying}\n"
    engine = Engine(FlowRegistry([load_flow("deposit.yaml", text=v1)]), store_url, clock)
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAY)

    class Broadcast:
        def perform(self, call: EffectCall) -> EffectResult:
            return EffectResult("pending", detail="broadcast")

        def status_of(self, key: str) -> EffectResult:
            engine.flows.add(load_flow("deposit.yaml", text=v2))
            second = {"units": 1_000_000, "txHash": "0x" + "cc" * 32}
            engine.send(sid, "payment_detected", second)  # deferred in v2: the move is made
            return EffectResult("pending", detail="1 confirmation")

    runner = EffectRunner(engine, {"evm.deliver": Broadcast()})
    runner.run_once()  # pending: look again in 10 s (v1's schedule)
    clock.advance(10)
    runner.run_once()  # the look during which the session moved to v2
    assert (engine.record(sid).flow_version, engine.record(sid).state) == ("2", "paying")
    with engine.store.transaction() as tx:
        (delivery,) = [e for e in tx.effects(sid) if e.effect == "evm.deliver"]
    assert (delivery.state, delivery.status) == ("paying", "pending")
    assert delivery.available_at == clock.now_ms() + 3_600_000
