"""The compiler: FlowSpec → a python-statemachine class, cached, recording requests."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine import (
    FlowEngineError,
    FlowValidationError,
    Registry,
    TransitionNotAllowed,
    compile_flow,
    load_flow,
)
from flowengine.compiler import (
    CompiledFlow,
    EffectRequest,
    MachineContext,
    Request,
    TimerRequest,
    WebhookRequest,
)
from flowengine.registry import GuardContext

FLOWS = Path(__file__).resolve().parent.parent / "flows"
DEPOSIT = FLOWS / "deposit.yaml"
FIXED = {"destination": {"amountUnits": "25.00"}}


@pytest.fixture(scope="module")
def deposit() -> CompiledFlow:
    return compile_flow(load_flow(DEPOSIT))


# --- cache and content hash ------------------------------------------------------------


def test_the_same_spec_compiles_once(deposit: CompiledFlow) -> None:
    again = compile_flow(load_flow(DEPOSIT))
    assert again is deposit
    assert again.machine_class is deposit.machine_class


BLOCK = """\
# A comment, and block style.
flowengine: 1
name: tiny
version: 1
states:
  a:
    initial: true
  b:
    final: true
transitions:
  - event: go
    from: a
    to: b
    guards: amount_fixed
"""

FLOW_STYLE = """\
flowengine: 1
version: "1"
name: tiny
transitions: [{to: b, from: [a], event: go, guards: [amount_fixed]}]
states: {b: {final: true}, a: {initial: true}}
"""


def test_a_formatting_only_change_keeps_the_content_hash_and_the_class() -> None:
    block = load_flow("block.yaml", text=BLOCK)
    flow_style = load_flow("flow.yaml", text=FLOW_STYLE)
    assert block.content_hash == flow_style.content_hash
    assert len(block.content_hash) == 64
    assert compile_flow(block).machine_class is compile_flow(flow_style).machine_class


@pytest.mark.parametrize(
    "change",
    [("version: 1", "version: 2"), ("to: b", "to: b\n    effects: evm.call"), ("go", "went")],
)
def test_a_change_of_meaning_changes_the_content_hash(change: tuple[str, str]) -> None:
    changed = load_flow("changed.yaml", text=BLOCK.replace(*change))
    assert changed.content_hash != load_flow("block.yaml", text=BLOCK).content_hash
    assert compile_flow(changed) is not compile_flow(load_flow("block.yaml", text=BLOCK))


def test_the_cache_is_per_registry() -> None:
    spec = load_flow("block.yaml", text=BLOCK)
    assert compile_flow(spec, Registry.default()) is not compile_flow(spec, Registry.default())


def test_a_new_registry_never_gets_a_class_built_for_an_old_one() -> None:
    text = """\
flowengine: 1
name: coin
version: 1
states:
  a: {initial: true}
  heads: {final: true}
  tails: {final: true}
transitions:
  - {event: flip, from: a, to: heads, guards: coin}
  - {event: flip, from: a, to: tails, unless: coin}
"""

    def always(value: bool) -> Callable[[GuardContext], bool]:
        return lambda ctx: value

    wrong = []
    for attempt in range(200):
        heads = attempt % 2 == 0
        registry = Registry()
        registry.add_guard("coin", always(heads))
        spec = load_flow("coin.yaml", text=text, registry=registry)
        target = compile_flow(spec, registry).send("a", "flip").target
        if target != ("heads" if heads else "tails"):
            wrong.append(attempt)
            break
        del registry, spec
        gc.collect()
    assert wrong == []


def test_compiling_against_a_registry_that_lacks_a_guard_is_a_flowengine_error() -> None:
    spec = load_flow("block.yaml", text=BLOCK)
    with pytest.raises(FlowEngineError, match="amount_fixed"):
        compile_flow(spec, Registry())


# --- start and restore -----------------------------------------------------------------


def test_start_enters_the_initial_state_and_runs_its_entry_actions(deposit: CompiledFlow) -> None:
    step = deposit.start(FIXED)
    assert (step.event, step.source, step.target) == ("", "", "created")
    assert step.requests == (TimerRequest("expire", "created", at="expires_at"),)


def test_restore_does_not_rerun_entry_actions(deposit: CompiledFlow) -> None:
    context = MachineContext(state="paid")
    machine = deposit.machine_class(model=context)
    assert context.requests == []
    assert context.state == "paid"
    assert machine.current_state_value == "paid"


def test_send_records_only_the_new_state_entry_actions(deposit: CompiledFlow) -> None:
    step = deposit.send("created", "select_amount")
    assert step.target == "amount_selected"
    # created's own timer is not requested again; amount_selected's is.
    assert step.requests == (TimerRequest("expire", "amount_selected", at="expires_at"),)


def test_effect_timer_and_webhook_requests(deposit: CompiledFlow) -> None:
    step = deposit.send("amount_selected", "payment_detected")
    assert step.requests == (
        EffectRequest("evm.deliver", "paid"),
        WebhookRequest("session.processing", "paid"),
    )


def test_the_full_deposit_lifecycle_on_a_live_machine(deposit: CompiledFlow) -> None:
    context = MachineContext(session=FIXED)
    machine = deposit.machine_class(model=context)
    for event, state in [
        ("payment_detected", "paid"),
        ("evm.deliver.done", "delivered"),
        ("evm.settle.done", "completed"),
    ]:
        machine.send(event)
        assert context.state == state
    assert deposit.is_final("completed")
    assert deposit.status_of("completed") == "completed"
    assert deposit.status_of("review") == "requires_review"
    assert [type(r).__name__ for r in context.requests] == [
        "TimerRequest",
        "EffectRequest",
        "WebhookRequest",
        "EffectRequest",
        "WebhookRequest",
    ]


@pytest.mark.parametrize(
    ("events", "end"),
    [
        (["evm.deliver.failed", "evm.refund.done"], "bounced"),
        (["evm.deliver.done", "evm.settle.failed"], "review"),  # delivered: a person looks
        (["evm.deliver.failed", "evm.refund.failed", "resolve_completed"], "completed"),
    ],
)
def test_outcome_paths(deposit: CompiledFlow, events: list[str], end: str) -> None:
    state = "paid"
    for event in events:
        state = deposit.send(state, event).target
    assert state == end


# --- refused events --------------------------------------------------------------------


def test_a_refused_event_names_the_state_and_the_accepted_events(deposit: CompiledFlow) -> None:
    with pytest.raises(TransitionNotAllowed) as info:
        deposit.send("paid", "payment_detected")
    error = info.value
    assert isinstance(error, FlowEngineError)
    assert (error.event, error.state) == ("payment_detected", "paid")
    arms = ("evm.deliver.done", "evm.deliver.failed", "evm.deliver.pending", "evm.deliver.unknown")
    assert error.allowed == arms  # pending/unknown: the arms supplied by default
    assert str(error) == (
        "in state 'paid' does not accept event 'payment_detected' now; events this state "
        f"accepts (subject to their guards): {', '.join(arms)}"
    )


def test_a_final_state_accepts_nothing(deposit: CompiledFlow) -> None:
    with pytest.raises(TransitionNotAllowed, match=r"events this state accepts .*: none$"):
        deposit.send("completed", "expire")
    assert deposit.accepted_events("completed") == ()


def test_an_unknown_event_is_refused(deposit: CompiledFlow) -> None:
    with pytest.raises(TransitionNotAllowed, match="'created' does not accept event 'bogus'"):
        deposit.send("created", "bogus")


def test_an_unknown_state_is_a_flowengine_error(deposit: CompiledFlow) -> None:
    with pytest.raises(FlowEngineError, match="nowhere"):
        deposit.send("nowhere", "expire")


# --- guards ----------------------------------------------------------------------------


def test_guards_are_looked_up_by_name(deposit: CompiledFlow) -> None:
    assert deposit.send("created", "payment_detected", session=FIXED).target == "paid"
    with pytest.raises(TransitionNotAllowed):
        deposit.send("created", "payment_detected", session={})
    # 'unless: amount_fixed': choosing an amount is refused when the merchant fixed it.
    assert deposit.send("created", "select_amount", session={}).target == "amount_selected"
    with pytest.raises(TransitionNotAllowed):
        deposit.send("created", "select_amount", session=FIXED)


def test_guards_see_the_session_and_the_payload() -> None:
    registry = Registry.default().copy()
    seen: list[tuple[object, object]] = []

    def spy(ctx: GuardContext) -> bool:
        assert isinstance(ctx, MachineContext)  # guards see the machine's model
        seen.append((dict(ctx.session), dict(ctx.payload)))
        return True

    registry.add_guard("spy", spy)
    spec = load_flow("spy.yaml", text=BLOCK.replace("amount_fixed", "spy"), registry=registry)
    step = compile_flow(spec, registry).send("a", "go", payload={"tx": "0x1"}, session={"id": 1})
    assert step.target == "b"
    assert seen == [({"id": 1}, {"tx": "0x1"})]


def test_a_guard_that_raises_propagates() -> None:
    registry = Registry.default().copy()

    def broken(ctx: object) -> bool:
        raise RuntimeError("guard exploded")

    registry.add_guard("broken", broken)
    spec = load_flow("b.yaml", text=BLOCK.replace("amount_fixed", "broken"), registry=registry)
    with pytest.raises(RuntimeError, match="guard exploded"):
        compile_flow(spec, registry).send("a", "go")


# --- transition effects ----------------------------------------------------------------


def test_transition_effects_are_recorded_before_the_target_entry_actions() -> None:
    text = BLOCK.replace(
        "    guards: amount_fixed\n", "    effects: [evm.refund, evm.call]\n"
    ).replace("    final: true\n", "    final: true\n    emit: session.bounced\n")
    step = compile_flow(load_flow("e.yaml", text=text)).send("a", "go")
    assert step.requests == (
        EffectRequest("evm.refund", "a"),
        EffectRequest("evm.call", "a"),
        WebhookRequest("session.bounced", "b"),
    )


def test_a_timer_after_a_duration_is_recorded_in_seconds() -> None:
    text = BLOCK.replace(
        "    initial: true\n", "    initial: true\n    timers: [{after: 1h30m, event: go}]\n"
    )
    step = compile_flow(load_flow("t.yaml", text=text)).start(FIXED)
    assert step.requests == (TimerRequest("go", "a", after_seconds=5400),)


def test_the_class_has_the_flow_name_and_labels(deposit: CompiledFlow) -> None:
    assert deposit.name == "deposit"
    assert deposit.machine_class.__name__ == "DepositFlow"
    assert deposit.machine_class.states_map["created"].name == "Waiting for the payer"


# --- property: random valid linear flows walk to their final state ----------------------

EFFECTS = ("evm.deliver", "evm.settle", "evm.call", "evm.refund")
step_kinds = st.one_of(
    st.just(("event", "")),
    st.tuples(st.just("effect"), st.sampled_from(EFFECTS)),
    st.tuples(st.just("timer"), st.sampled_from(["30s", "15m", "1h30m", "2d"])),
)


def linear_flow(kinds: list[tuple[str, str]], emits: list[bool]) -> tuple[str, list[str]]:
    """A chain s0 → s1 → … → done, each step driven by an event, an effect or a timer."""
    names = [f"s{i}" for i in range(len(kinds))] + ["done"]
    states, transitions, events = [], [], []
    for i, (kind, arg) in enumerate(kinds):
        parts = ["initial: true"] if i == 0 else []
        if emits[i]:
            parts.append(f"emit: session.step{i}")
        if kind == "effect":
            parts.append(f"effect: {arg}, outcomes: {{done: {names[i + 1]}}}")
            events.append(f"{arg}.done")
        else:
            event = f"e{i}"
            if kind == "timer":
                parts.append(f"timers: [{{after: {arg}, event: {event}}}]")
            transitions.append(f"  - {{event: {event}, from: {names[i]}, to: {names[i + 1]}}}")
            events.append(event)
        states.append(f"  {names[i]}: {{{', '.join(parts)}}}")
    states.append("  done: {final: true, emit: session.succeeded}")
    text = "flowengine: 1\nname: chain\nversion: 1\nstates:\n" + "\n".join(states) + "\n"
    if transitions:
        text += "transitions:\n" + "\n".join(transitions) + "\n"
    return text, events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(step_kinds, min_size=1, max_size=12).flatmap(
        lambda kinds: st.tuples(
            st.just(kinds), st.lists(st.booleans(), min_size=len(kinds), max_size=len(kinds))
        )
    )
)
def test_random_linear_flows_compile_and_walk_to_the_final_state(
    chain: tuple[list[tuple[str, str]], list[bool]],
) -> None:
    kinds, emits = chain
    text, events = linear_flow(kinds, emits)
    try:
        flow = compile_flow(load_flow("chain.yaml", text=text))
    except FlowValidationError as exc:  # pragma: no cover - a generator bug
        pytest.fail(f"generated flow is invalid: {exc}\n{text}")

    # Engine style: restore at the stored state, send one event.
    state = flow.start().target
    engine_requests = []
    for event in events:
        step = flow.send(state, event)
        assert step.source == state
        engine_requests.append(step.requests)
        state = step.target
    assert state == "done"
    assert flow.is_final(state)

    # Live machine: the same states and the same requests, step by step.
    context = MachineContext()
    machine = flow.machine_class(model=context)
    for event, expected in zip(events, engine_requests, strict=True):
        context.requests.clear()
        machine.send(event)
        assert tuple(context.requests) == expected
    assert context.state == "done"
    assert machine.is_terminated

    # Every state after the first asked for exactly what it declares.
    for i, requests in enumerate(engine_requests[:-1], start=1):
        kind, arg = kinds[i]
        declared: list[Request] = []
        if kind == "effect":
            declared.append(EffectRequest(arg, f"s{i}"))
        if kind == "timer":
            declared.append(TimerRequest(f"e{i}", f"s{i}", after_seconds=_seconds(arg)))
        if emits[i]:
            declared.append(WebhookRequest(f"session.step{i}", f"s{i}"))
        assert list(requests) == declared
    assert engine_requests[-1] == (WebhookRequest("session.succeeded", "done"),)


def _seconds(text: str) -> int:
    from flowengine.durations import parse_duration

    return parse_duration(text)


def test_machines_are_reused_across_sessions_even_after_a_final_state() -> None:
    flow = compile_flow(load_flow(DEPOSIT), Registry.default())  # a fresh, unshared pool
    fixed = {"destination": {"amountUnits": "25.00"}}
    for _ in range(3):  # three whole sessions, each ending in a final state
        state = flow.start(fixed).target
        for event in ("payment_detected", "evm.deliver.done", "evm.settle.done"):
            state = flow.send(state, event, session=fixed).target
        assert state == "completed"
        with pytest.raises(TransitionNotAllowed):
            flow.send("completed", "payment_detected", session=fixed)
    # a reused machine starts clean: no requests leak from the previous session
    step = flow.send("created", "expire")
    assert (step.target, [r.kind for r in step.requests]) == ("expired", ["webhook"])
    assert len(flow._pool) == 1  # one machine served every step of every session
