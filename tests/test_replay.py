"""The replay check: what a new flow version would do to the sessions already running."""

from __future__ import annotations

import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.errors import FlowVersionConflict
from flowengine.flows import FlowRegistry
from flowengine.replay import deploy, replay_check
from flowengine.spec import FlowSpec, load_flow
from tests.conftest import FLOWS
from tests.factories import create_request, without_refund_on_reverted_delivery

V1 = (FLOWS / "deposit.yaml").read_text()
PAYMENT = {"units": 25_000_000, "txHash": "0x" + "aa" * 32}


def version(text: str, number: str = "2") -> FlowSpec:
    return load_flow(
        "flows/deposit.yaml", text=text.replace("version: 1\n", f"version: {number}\n", 1)
    )


@pytest.fixture
def traffic(engine: Engine) -> dict[str, str]:
    """Live sessions in several states of v1 (and one finished, which is not replayed)."""
    sid = {}
    for name in ("waiting", "paid", "refunding", "finished"):
        sid[name] = engine.create_session(create_request()).session_id
    for name in ("paid", "refunding", "finished"):
        engine.send(sid[name], "payment_detected", PAYMENT)
    engine.send(sid["refunding"], "evm.deliver.failed")
    engine.send(sid["finished"], "evm.deliver.done", PAYMENT)
    engine.send(sid["finished"], "evm.settle.done")
    return sid


def test_an_unchanged_flow_replays_clean(engine: Engine, traffic: dict[str, str]) -> None:
    report = replay_check(engine.store, load_flow(FLOWS / "deposit.yaml"))
    assert report.ok
    assert report.sessions == 3  # the finished session is not live
    assert report.events == 1 + 2 + 3


def test_an_additive_change_replays_clean(engine: Engine, traffic: dict[str, str]) -> None:
    added = V1 + "\n  - {event: cancel, from: created, to: expired}\n"
    assert replay_check(engine.store, version(added)).ok


def test_dropping_the_refund_on_a_reverted_delivery_is_caught(
    engine: Engine, traffic: dict[str, str]
) -> None:
    report = replay_check(engine.store, version(without_refund_on_reverted_delivery(V1)))
    assert not report.ok
    (divergence,) = report.divergences
    assert divergence.session_id == traffic["refunding"]
    assert (divergence.seq, divergence.event) == (3, "evm.deliver.failed")
    assert "requesting evm.refund" in divergence.recorded
    assert "bounced requesting nothing" in divergence.replayed
    assert traffic["refunding"] in report.format()


def test_renamed_states_are_compared_through_the_migrate_map(
    engine: Engine, traffic: dict[str, str]
) -> None:
    renamed = V1.replace("  refunding:\n", "  refund_pending:\n").replace(
        "failed: refunding}", "failed: refund_pending}"
    )
    assert not replay_check(engine.store, version(renamed)).ok
    mapped = renamed + "\nupgrade:\n  from: 1\n  migrate: {refunding: refund_pending, paid: paid}\n"
    assert replay_check(engine.store, version(mapped)).ok


def test_a_sample_replays_that_many_sessions(engine: Engine, traffic: dict[str, str]) -> None:
    assert replay_check(engine.store, version(V1), sample=2).sessions == 2


def test_deploy_registers_a_version_only_when_its_replay_passes(
    engine: Engine, traffic: dict[str, str], clock: ManualClock
) -> None:
    no_refund = version(without_refund_on_reverted_delivery(V1))
    refused = deploy(engine.store, no_refund, now_ms=clock.now_ms())
    assert not refused.deployed
    with engine.store.transaction() as tx:
        assert tx.get_flow_version(no_refund.content_hash) is None

    forced = deploy(engine.store, no_refund, now_ms=clock.now_ms(), force_reason="hotfix #12")
    assert forced.deployed
    with engine.store.transaction() as tx:
        stored = tx.get_flow_version(no_refund.content_hash)
    assert stored is not None
    assert stored.deployed_at == clock.now_ms()
    assert stored.deploy_note.startswith("forced: hotfix #12 (1 diverging sessions")

    additive = version(V1 + "\n  - {event: cancel, from: created, to: expired}\n", "3")
    assert deploy(engine.store, additive, now_ms=clock.now_ms()).deployed


def test_deploying_a_changed_flow_under_a_deployed_version_is_refused(
    engine: Engine, traffic: dict[str, str], clock: ManualClock
) -> None:
    edited = load_flow("flows/deposit.yaml", text=V1.replace("Waiting for the payer", "Hello"))
    with pytest.raises(FlowVersionConflict):
        deploy(engine.store, edited, now_ms=clock.now_ms())


def test_sessions_of_other_flows_are_not_replayed(engine: Engine, flows: FlowRegistry) -> None:
    engine.create_session(create_request(flow="daimo"))
    assert replay_check(engine.store, load_flow(FLOWS / "deposit.yaml")).sessions == 0


STRICT = (FLOWS / "strict.yaml").read_text()


def test_guards_on_amounts_see_the_amounts_each_event_found(engine: Engine) -> None:
    # An underpaid strict session waits in partially_paid; replayed against its own,
    # unchanged flow it must replay clean, which it only does if the guard of its
    # payment sees what had been received before it (nothing), not today's 15.00.
    sid = engine.create_session(create_request(flow="strict")).session_id
    engine.send(sid, "payment_detected", {**PAYMENT, "units": 15_000_000})
    assert engine.record(sid).state == "partially_paid"
    assert replay_check(engine.store, load_flow(FLOWS / "strict.yaml")).ok


def test_a_tighter_tolerance_is_caught_on_the_payment_it_changes(engine: Engine) -> None:
    sid = engine.create_session(create_request(flow="strict")).session_id
    engine.send(sid, "payment_detected", {**PAYMENT, "units": 24_900_000})  # 0.4 % short
    assert engine.record(sid).state == "paid"
    exact = load_flow(
        "flows/strict.yaml",
        text=STRICT.replace("tolerance: 0.5%", "tolerance: 0").replace(
            "version: 2\n", "version: 3\n", 1
        ),
    )
    report = replay_check(engine.store, exact)
    (divergence,) = report.divergences
    assert (divergence.session_id, divergence.event) == (sid, "payment_detected")


def test_a_session_moved_to_the_version_checked_replays_clean(
    engine: Engine, flows: FlowRegistry
) -> None:
    # Rows before its move name the states of the version it left: replayed from the
    # move on, the session agrees with the version it now runs.
    renamed = (
        V1.replace("  paid:\n", "  delivering:\n")
        .replace("to: paid", "to: delivering")
        .replace("from: paid", "from: delivering")
    )
    mapped = version(
        renamed + "\nupgrade:\n  from: 1\n  migrate: {created: created, paid: delivering}\n"
    )
    sid = engine.create_session(create_request()).session_id
    engine.send(sid, "payment_detected", PAYMENT)
    assert replay_check(engine.store, mapped).ok
    engine.flows.add(mapped)
    engine.send(sid, "evm.deliver.failed")  # moves the session to v2, then applies
    assert engine.record(sid).flow_version == "2"
    assert replay_check(engine.store, mapped).ok
