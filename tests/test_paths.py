"""Listing every path through a flow, and walking each one through the compiled machine."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from flowengine import FlowEngineError, TransitionNotAllowed, compile_flow, load_flow
from flowengine.cli import main
from flowengine.compiler import EffectRequest, Request, TimerRequest, WebhookRequest
from flowengine.paths import FlowPath, all_paths, format_paths
from flowengine.registry import Facts, default_registry
from flowengine.spec import Edge, FlowSpec

FLOWS = sorted((Path(__file__).parent.parent / "flows").glob("*.yaml"))
DEPOSIT = Path(__file__).parent.parent / "flows" / "deposit.yaml"


def test_deposit_paths_end_in_each_final_state() -> None:
    paths = all_paths(load_flow(DEPOSIT))

    assert {path.states[-1] for path in paths} == {"completed", "bounced", "expired"}
    assert all(path.states[0] == "created" for path in paths)


def test_the_happy_path_comes_first() -> None:
    first = all_paths(load_flow(DEPOSIT))[0]

    assert first.states == ("created", "amount_selected", "paid", "delivered", "completed")
    assert first.events == (
        "select_amount",
        "payment_detected",
        "evm.deliver.done",
        "evm.settle.done",
    )


def test_guarded_alternatives_are_separate_paths() -> None:
    paths = all_paths(load_flow(DEPOSIT))
    first_steps = {(p.edges[0].event, p.edges[0].guard, p.edges[0].target) for p in paths}

    assert first_steps == {
        ("select_amount", "not amount_fixed", "amount_selected"),
        ("payment_detected", "amount_fixed", "paid"),
        ("expire", "", "expired"),
    }
    fixed_amount = [p for p in paths if p.edges[0].guard == "amount_fixed"]
    assert ("created", "paid", "delivered", "completed") in [p.states for p in fixed_amount]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda path: path.stem)
def test_every_edge_is_on_some_path(flow: Path) -> None:
    spec = load_flow(flow)

    walked = {edge for path in all_paths(spec) for edge in path.edges}

    assert set(spec.edges()) <= walked


@pytest.mark.parametrize("flow", FLOWS, ids=lambda path: path.stem)
def test_paths_visit_no_state_twice_but_for_one_self_loop(flow: Path) -> None:
    spec = load_flow(flow)
    paths = all_paths(spec)

    assert paths
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert path.states[0] == spec.initial_state
        assert spec.states[path.states[-1]].final
        loops = [edge for edge in path.edges if edge.source == edge.target]
        assert len(set(loops)) == len(loops), "a self-loop is taken twice"
        moves = [edge.target for edge in path.edges if edge.source != edge.target]
        assert len({path.states[0], *moves}) == len(moves) + 1, "a state is visited twice"
        assert all(a.target == b.source for a, b in itertools.pairwise(path.edges))


def test_the_order_is_deterministic() -> None:
    assert all_paths(load_flow(DEPOSIT)) == all_paths(load_flow(DEPOSIT))


LOOPING_FLOW = """
flowengine: 1
name: retrying
version: 1
states:
  waiting: {initial: true}
  trying:
    effect: evm.deliver
    outcomes: {done: done, failed: waiting}
  done: {final: true}
transitions:
  - {event: go, from: waiting, to: trying}
"""


def test_a_loop_is_walked_once_not_for_ever() -> None:
    spec = load_flow("retrying.yaml", text=LOOPING_FLOW)

    paths = all_paths(spec)

    assert [path.states for path in paths] == [("waiting", "trying", "done")]


def test_too_many_paths_is_an_error_not_a_hang() -> None:
    spec = load_flow(DEPOSIT)

    with pytest.raises(FlowEngineError, match="more than 3 paths"):
        all_paths(spec, max_paths=3)
    assert len(all_paths(spec, max_paths=38)) == 38


def test_a_path_as_json() -> None:
    path = all_paths(load_flow(DEPOSIT))[0]

    data = json.loads(json.dumps(path.to_dict()))

    assert data["states"] == ["created", "amount_selected", "paid", "delivered", "completed"]
    assert data["steps"][0] == {
        "event": "select_amount",
        "source": "created",
        "target": "amount_selected",
        "kind": "event",
        "guard": "not amount_fixed",
        "effects": [],
        "timer": "",
        "default": False,
    }
    assert data["steps"][2]["kind"] == "outcome"
    expiry = next(p for p in all_paths(load_flow(DEPOSIT)) if p.states[-1] == "expired")
    assert expiry.to_dict()["steps"][-1]["timer"] == "expires_at"


def test_paths_as_text() -> None:
    text = format_paths(all_paths(load_flow(DEPOSIT)))
    lines = text.splitlines()

    assert len(lines) == 38  # 14 written in the flow, 24 through its default arms
    assert lines[0] == (
        " 1. created --select_amount [not amount_fixed]--> amount_selected "
        "--payment_detected--> paid --evm.deliver.done--> delivered "
        "--evm.settle.done--> completed"
    )
    assert lines[-1] == "38. created --expire (at expiry)--> expired"
    assert "--evm.deliver.unknown (default)--> review --resolve_completed--> completed" in text
    assert format_paths([]) == "no paths"


def test_cli_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["paths", str(DEPOSIT)]) == 0
    assert capsys.readouterr().out.startswith(" 1. created --select_amount")

    assert main(["paths", str(DEPOSIT), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found) == 38
    assert found[-1]["states"] == ["created", "expired"]


# Walking every path of every shipped flow through the compiled python-statemachine class.
#
# A guard reads the session's facts, so each path gets a session that makes the guards on
# its steps hold (and the `unless` ones fail). Guards the path does not mention are tried
# both ways: the machine must follow the path whatever they say.

Session = dict[str, Any]

#: The session facts that make each built-in guard true (absent: false).
GUARD_FACTS: dict[str, dict[str, Any]] = {
    "amount_fixed": {"amountUnits": "25.00"},
    "has_calldata": {"calldata": "0xa9059cbb"},
}


def _conditions(edge: Edge) -> list[tuple[str, bool]]:
    """``"a and not b"`` → ``[("a", True), ("b", False)]``: an edge's guard, read back."""
    if not edge.guard:
        return []
    return [
        (part.removeprefix("not "), not part.startswith("not "))
        for part in edge.guard.split(" and ")
    ]


def _sessions(spec: FlowSpec, *, holds: Callable[[dict[str, bool]], bool]) -> list[Session]:
    """A session for every combination of the flow's guards that ``holds`` accepts."""
    names = sorted({g for t in spec.transitions for g in (*t.guards, *t.unless)})
    if unknown := [name for name in names if name not in GUARD_FACTS]:
        pytest.fail(f"add the session facts that make guards {unknown} true to GUARD_FACTS")
    sessions = []
    for values in itertools.product((True, False), repeat=len(names)):
        truth = dict(zip(names, values, strict=True))
        if not holds(truth):
            continue
        destination: dict[str, Any] = {"address": "0x000000000000000000000000000000000000dEaD"}
        for name in names:
            if truth[name]:
                destination.update(GUARD_FACTS[name])
        session = {"destination": destination}
        for name in names:
            assert default_registry().guards[name].check(Facts(session)) is truth[name]
        sessions.append(session)
    return sessions


def _allows(edges: Iterable[Edge]) -> Callable[[dict[str, bool]], bool]:
    required = [c for edge in edges for c in _conditions(edge)]
    return lambda truth: all(truth[name] is wanted for name, wanted in required)


def _forbids(edge: Edge) -> Callable[[dict[str, bool]], bool]:
    allowed = _allows([edge])
    return lambda truth: not allowed(truth)


def _declared(spec: FlowSpec, edge: Edge | None, state: str) -> Counter[Request]:
    """What entering ``state`` (through ``edge``) must request, per the flow file."""
    target = spec.states[state]
    requests: list[Request] = []
    if edge is not None:
        requests += [EffectRequest(effect, edge.source) for effect in edge.effects]
    if target.effect:
        requests.append(EffectRequest(target.effect, state))
    requests += [TimerRequest(t.event, state, t.after_seconds, t.at) for t in target.timers]
    requests += [WebhookRequest(webhook, state) for webhook in target.emit]
    return Counter(requests)


def _fact_guarded(spec: FlowSpec) -> bool:
    """Flows whose guards are all facts of the session (not of amounts received so far:
    strict.yaml's payment guards are driven through the engine, with real amounts, in
    tests/engine/test_shipped_flows.py)."""
    return all(g in GUARD_FACTS for t in spec.transitions for g in (*t.guards, *t.unless))


def _every_path() -> list[Any]:
    return [
        pytest.param(spec, path, id=f"{spec.name}:{number}:{path.states[-1]}")
        for spec in filter(_fact_guarded, map(load_flow, FLOWS))
        for number, path in enumerate(all_paths(spec), start=1)
    ]


@pytest.mark.parametrize(("spec", "path"), _every_path())
def test_every_path_runs_on_the_compiled_machine(spec: FlowSpec, path: FlowPath) -> None:
    flow = compile_flow(spec)
    sessions = _sessions(spec, holds=_allows(path.edges))
    assert sessions, f"no session satisfies the guards of path {format_paths([path])}"

    for session in sessions:
        step = flow.start(session)
        visited = [step.target]
        assert Counter(step.requests) == _declared(spec, None, step.target)

        for edge in path.edges:
            step = flow.send(visited[-1], edge.event, session=session)
            visited.append(step.target)
            assert Counter(step.requests) == _declared(spec, edge, step.target), (
                f"{edge.source} --{edge.event}--> {step.target} with session {session}"
            )

        assert tuple(visited) == path.states, f"session {session}"
        assert flow.is_final(visited[-1])


@pytest.mark.parametrize("flow", FLOWS, ids=lambda path: path.stem)
def test_an_event_whose_guard_fails_is_refused(flow: Path) -> None:
    spec = load_flow(flow)
    compiled = compile_flow(spec)

    for edge in spec.edges():
        alternatives = [e for e in spec.outgoing(edge.source) if e.event == edge.event]
        if not edge.guard or len(alternatives) > 1:
            continue
        for session in _sessions(spec, holds=_forbids(edge)):
            with pytest.raises(TransitionNotAllowed):
                compiled.send(edge.source, edge.event, session=session)
