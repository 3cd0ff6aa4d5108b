"""Every path of every shipped flow, driven through the engine on every store.

Paths come from :func:`flowengine.paths.all_paths`; each step is fed the way it happens
in production: events by ``send``, effect outcomes as ``<effect>.done|failed`` events,
timers by the :class:`TimerWorker` once the clock reaches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.paths import FlowPath, all_paths
from flowengine.spec import Edge, load_flow
from flowengine.workers import TimerWorker
from tests.conftest import FLOWS
from tests.factories import create_request

PAYLOADS: dict[str, dict[str, Any]] = {
    "payment_detected": {"units": 25_000_000, "txHash": "0x" + "aa" * 32},
}
OUTCOME_PAYLOAD = {"units": 25_000_000, "txHash": "0x" + "bb" * 32}
EXPIRES_IN = 3600


def shipped_paths() -> list[Any]:
    cases = []
    for file in sorted(FLOWS.glob("*.yaml")):
        spec = load_flow(file)
        for number, path in enumerate(all_paths(spec), start=1):
            cases.append(pytest.param(spec.name, path, id=f"{spec.name}-{number}"))
    return cases


def request_for(flow: str, edges: Sequence[Edge]) -> dict[str, Any]:
    """A create-session body whose facts make the path's guards come out as drawn."""
    guards = " ".join(edge.guard for edge in edges)
    fixed = "not amount_fixed" not in guards
    return create_request(flow=flow, amount="25.00" if fixed else None, expiresIn=EXPIRES_IN)


def walk(
    engine: Engine, clock: ManualClock, flow: str, edges: Sequence[Edge]
) -> tuple[str, list[str]]:
    """A new session taken along ``edges``: its id and the states it visited."""
    sid = engine.create_session(request_for(flow, edges)).session_id
    timers = TimerWorker(engine)
    visited = [engine.record(sid).state]
    received = 0
    for edge in edges:
        if edge.kind == "timer":
            clock.advance(EXPIRES_IN)
            assert timers.run_once() == 1
        elif edge.kind == "outcome":
            payload = OUTCOME_PAYLOAD if edge.effect == "done" else {}
            engine.send(sid, edge.event, payload)
        else:
            payload = dict(PAYLOADS.get(edge.event, {}))
            if "underpaid" in edge.guard:
                payload["units"] = 10_000_000  # short of 25.00 by more than the tolerance
            elif "overpaid" in edge.guard:
                payload["units"] = 30_000_000 - received  # 5.00 over, beyond the tolerance
            elif "fully_paid" in edge.guard:
                payload["units"] = 25_000_000 - received  # the rest
            received += payload.get("units", 0)
            engine.send(sid, edge.event, payload)
        visited.append(engine.record(sid).state)
    return sid, visited


@pytest.mark.parametrize(("flow", "path"), shipped_paths())
def test_every_path_of_every_shipped_flow(
    engine: Engine, clock: ManualClock, flow: str, path: FlowPath
) -> None:
    sid, visited = walk(engine, clock, flow, path.edges)
    assert visited == list(path.states)
    log = engine.history(sid)
    assert [e.target for e in log] == list(path.states)
    assert log[-1].target in {
        name for name, s in engine.flows.current(flow).spec.states.items() if s.final
    }


@pytest.mark.parametrize("flow", sorted(file.stem for file in FLOWS.glob("*.yaml")))
def test_a_failed_settlement_is_left_to_a_person_not_refunded(
    engine: Engine, clock: ManualClock, flow: str
) -> None:
    # The delivery (or call) is counted when it is done: refunding after a failed
    # settlement returned what the session then held, nothing, and ended it 'bounced'
    # (a payer told their money came back, a merchant told it did not arrive).
    path = next(
        p
        for p in all_paths(engine.flows.current(flow).spec)
        if any(edge.event == "evm.settle.failed" for edge in p.edges)
    )
    upto = [edge.event for edge in path.edges].index("evm.settle.failed") + 1
    sid, _ = walk(engine, clock, flow, path.edges[:upto])
    session = engine.get(sid)
    assert (session.amounts.delivered, session.amounts.refunded) == ("25.00", "0.00")
    assert session.status != "bounced"
    with engine.store.transaction() as tx:
        assert not [e for e in tx.effects(sid) if e.effect.endswith(".refund")]
