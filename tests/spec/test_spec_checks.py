"""Every static check of flowengine/spec/checks.py, on small flows written inline.

Each flow starts with the same three header lines, so ``states:`` is always line 4 and
the positions asserted below can be counted by eye.
"""

from __future__ import annotations

import pytest

from flowengine import FlowValidationError, load_flow
from flowengine.errors import Problem
from flowengine.registry import Registry
from flowengine.spec.checks import RESERVED_NAMES, did_you_mean

HEADER = "flowengine: 1\nname: t\nversion: 1\n"


def problems(body: str, registry: Registry | None = None) -> list[Problem]:
    with pytest.raises(FlowValidationError) as info:
        load_flow("inline.yaml", text=HEADER + body, registry=registry)
    return list(info.value.problems)


def one(found: list[Problem], fragment: str) -> Problem:
    matching = [p for p in found if fragment in p.message]
    assert len(matching) == 1, [str(p) for p in found]
    return matching[0]


def at(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.column


def where(body: str, token: str, occurrence: int = 1) -> tuple[int, int]:
    """Line and column (1-based) of the ``occurrence``-th ``token`` in the flow text."""
    seen = 0
    for number, line in enumerate((HEADER + body).splitlines(), start=1):
        start = line.find(token)
        while start != -1:
            seen += 1
            if seen == occurrence:
                return number, start + 1
            start = line.find(token, start + 1)
    raise AssertionError(f"{token!r} #{occurrence} not in the flow")


def test_a_correct_flow_has_no_problem() -> None:
    spec = load_flow(
        "inline.yaml",
        text=HEADER
        + """\
states:
  created: {initial: true, timers: [{after: 30m, event: expire}]}
  paid: {effect: evm.deliver, outcomes: {done: completed, failed: expired}}
  completed: {final: true}
  expired: {final: true}
transitions:
  - {event: payment_detected, from: created, to: paid, guards: amount_fixed}
  - {event: payment_detected, from: created, to: expired, unless: amount_fixed}
  - {event: expire, from: created, to: expired}
""",
    )
    assert spec.initial_state == "created"


# --- did_you_mean ----------------------------------------------------------------------


def test_did_you_mean_suggests_the_closest_name() -> None:
    assert did_you_mean("piad", ["paid", "created"], "states") == "did you mean 'paid'?"


def test_did_you_mean_lists_the_known_names_when_nothing_is_close() -> None:
    assert did_you_mean("zzz", ["b", "a"], "guards") == "known guards: a, b"


def test_did_you_mean_shortens_a_long_list() -> None:
    names = [f"name_{i:02}" for i in range(20)]
    hint = did_you_mean("zzz", names, "states")
    assert hint.endswith(", …")
    assert hint.count(",") == 12


def test_did_you_mean_with_nothing_defined() -> None:
    assert did_you_mean("x", [], "effects") == "no effects are defined"


# --- _initial_state --------------------------------------------------------------------


def test_no_initial_state() -> None:
    found = problems(
        """\
states:
  created: {}
  paid: {final: true}
transitions:
  - {event: payment_detected, from: created, to: paid}
"""
    )
    problem = one(found, "no initial state")
    assert at(problem) == (4, 1)
    assert "'initial: true'" in problem.hint
    assert len(found) == 1  # the graph checks need exactly one initial state


def test_several_initial_states_each_extra_one_reported() -> None:
    found = problems(
        """\
states:
  a: {initial: true}
  b: {initial: true}
  c:
    initial: true
    final: true
transitions:
  - {event: go, from: [a, b], to: c}
"""
    )
    several = [p for p in found if p.message.startswith("several initial states")]
    assert [(at(p), p.message) for p in several] == [
        ((6, 7), "several initial states ('a' and 'b')"),  # b's 'initial' key
        ((8, 5), "several initial states ('a' and 'c')"),
    ]
    assert "remove 'initial: true' from 'b' or from 'a'" in several[0].hint


# --- _reserved_names -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["send", "states", "configuration", "current_state"])
def test_reserved_state_name(name: str) -> None:
    assert name in RESERVED_NAMES
    found = problems(
        f"""\
states:
  a: {{initial: true}}
  {name}: {{final: true}}
transitions:
  - {{event: go, from: a, to: {name}}}
"""
    )
    problem = one(found, "is reserved by the state-machine runtime")
    assert problem.message == f"state name '{name}' is reserved by the state-machine runtime"
    assert at(problem) == (6, 3)
    assert f"'{name}_state'" in problem.hint


def test_reserved_event_name() -> None:
    found = problems(
        """\
states:
  a: {initial: true}
  b: {final: true}
transitions:
  - event: send
    from: a
    to: b
"""
    )
    problem = one(found, "reserved")
    assert problem.message == "event name 'send' is reserved by the state-machine runtime"
    assert at(problem) == (8, 12)
    assert "'send_event'" in problem.hint


@pytest.mark.parametrize("name", ["model", "state_field", "history_values", "listeners"])
def test_a_state_named_like_a_machine_attribute_is_refused(name: str) -> None:
    found = problems(
        f"""\
states:
  a: {{initial: true}}
  {name}: {{}}
  z: {{final: true}}
transitions:
  - {{event: go, from: a, to: {name}}}
  - {{event: finish, from: {name}, to: z}}
"""
    )
    assert one(found, "reserved").line == 6


def test_an_event_named_like_a_state_is_refused() -> None:
    body = """\
states:
  a: {initial: true}
  b: {}
  c: {final: true}
transitions:
  - {event: b, from: a, to: b}
  - {event: finish, from: b, to: c}
"""
    found = problems(body)
    assert any("'b'" in p.message for p in found)


# --- _unknown_states -------------------------------------------------------------------


def test_unknown_source_in_a_list_is_located_at_the_item() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  amount_selected: {}
  paid: {final: true}
transitions:
  - {event: select_amount, from: created, to: amount_selected}
  - event: payment_detected
    from: [created, amount_selectd]
    to: paid
  - {event: payment_detected, from: amount_selected, to: paid}
"""
    )
    problem = one(found, "unknown state 'amount_selectd'")
    assert at(problem) == (11, 21)  # the list item
    assert problem.hint == "did you mean 'amount_selected'?"


def test_unknown_single_source_is_located_at_the_value() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
transitions:
  - {event: go, from: created, to: paid}
  - {event: again, from: craeted, to: paid}
"""
    )
    problem = one(found, "unknown state 'craeted'")
    assert at(problem) == (9, 26)  # the value
    assert problem.hint == "did you mean 'created'?"


def test_unknown_target() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
transitions:
  - {event: go, from: created, to: paid}
  - {event: go_too, from: created, to: piad}
"""
    )
    problem = one(found, "unknown state 'piad'")
    assert at(problem) == (9, 40)
    assert problem.hint == "did you mean 'paid'?"


def test_unknown_outcome_target() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid:
    effect: evm.deliver
    outcomes:
      done: completed
      failed: refundng
  refunding: {final: true}
  completed: {final: true}
transitions:
  - {event: go, from: created, to: paid}
  - {event: refund, from: created, to: refunding}
"""
    )
    problem = one(found, "unknown state 'refundng'")
    assert at(problem) == (10, 15)
    assert problem.hint == "did you mean 'refunding'?"


# --- _effects_and_outcomes -------------------------------------------------------------


def test_outcomes_without_an_effect() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid:
    outcomes: {done: completed}
  completed: {final: true}
transitions:
  - {event: go, from: created, to: paid}
"""
    )
    problem = one(found, "has outcomes but no effect")
    assert problem.message == "state 'paid' has outcomes but no effect"
    assert at(problem) == (7, 5)
    assert "add 'effect: <adapter.op>'" in problem.hint


def test_an_effect_without_a_done_outcome() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid:
    effect: evm.deliver
    outcomes: {failed: completed}
  completed: {final: true}
transitions:
  - {event: go, from: created, to: paid}
"""
    )
    problem = one(found, "has no 'done' outcome")
    assert problem.message == "the effect 'evm.deliver' of state 'paid' has no 'done' outcome"
    assert at(problem) == (7, 5)
    assert "outcomes: {done:" in problem.hint


# --- _final_states ---------------------------------------------------------------------


def test_a_state_both_initial_and_final() -> None:
    found = problems(
        """\
states:
  created: {initial: true, final: true}
"""
    )
    problem = one(found, "both initial and final")
    assert problem.message == "state 'created' is both initial and final"
    assert at(problem) == (5, 28)
    assert "remove one of the two" in problem.hint


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("{final: true, effect: evm.settle, outcomes: {done: created}}", "effect"),
        ("{final: true, timers: [{after: 1h, event: go}]}", "timers"),
    ],
)
def test_a_final_state_that_still_does_something(line: str, field: str) -> None:
    found = problems(
        f"""\
states:
  created: {{initial: true}}
  completed: {line}
transitions:
  - {{event: go, from: created, to: completed}}
"""
    )
    problem = one(found, f"final state 'completed' has {field}")
    assert problem.line == 6
    assert "move this to the state before it" in problem.hint


def test_a_transition_leaving_a_final_state() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  completed: {final: true}
transitions:
  - {event: go, from: created, to: completed}
  - {event: back, from: [created, completed], to: created}
"""
    )
    problem = one(found, "leaves final state")
    assert problem.message == "transition 'back' leaves final state 'completed'"
    assert at(problem) == (9, 25)  # the from list
    assert "remove 'final: true' or this transition" in problem.hint


# --- _unknown_names --------------------------------------------------------------------


def test_unknown_guard_and_unknown_unless() -> None:
    body = """\
states:
  created: {initial: true}
  paid: {final: true}
  expired: {final: true}
transitions:
  - {event: go, from: created, to: paid, guards: [amount_fixed, is_vip]}
  - {event: go, from: created, to: expired, unless: amount_fxed}
"""
    found = problems(body)
    vip = one(found, "unknown guard 'is_vip'")
    assert at(vip) == where(body, "is_vip")
    assert vip.hint == (
        "known guards: amount_fixed, fully_paid, has_calldata, has_received, overpaid, underpaid"
    )
    unless = one(found, "unknown guard 'amount_fxed'")
    assert at(unless) == where(body, "amount_fxed")
    assert unless.hint == "did you mean 'amount_fixed'?"


def test_unknown_transition_effect() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
transitions:
  - event: go
    from: created
    to: paid
    effects: [evm.refund, evm.refnd]
"""
    )
    problem = one(found, "unknown effect 'evm.refnd'")
    assert at(problem) == (11, 27)
    assert problem.hint == "did you mean 'evm.refund'?"


def test_unknown_state_effect() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {effect: tron.deliver, outcomes: {done: completed}}
  completed: {final: true}
transitions:
  - {event: go, from: created, to: paid}
"""
    )
    problem = one(found, "unknown effect 'tron.deliver'")
    assert at(problem) == (6, 18)
    assert problem.hint == "did you mean 'evm.deliver'?"


def test_names_are_checked_against_the_registry_given() -> None:
    empty = Registry()
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
transitions:
  - {event: go, from: created, to: paid, guards: amount_fixed}
""",
        registry=empty,
    )
    problem = one(found, "unknown guard 'amount_fixed'")
    assert problem.hint == "no guards are defined"


# --- _timers ---------------------------------------------------------------------------


def test_a_timer_whose_event_leads_nowhere_from_its_state() -> None:
    found = problems(
        """\
states:
  created:
    initial: true
    timers:
      - {at: expires_at, event: expire}
  waiting:
    timers:
      - {after: 10m, event: expire}
  expired: {final: true}
transitions:
  - {event: wait, from: created, to: waiting}
  - {event: expire, from: created, to: expired}
"""
    )
    problem = one(found, "has no transition from")
    assert problem.message == "timer event 'expire' has no transition from 'waiting'"
    assert at(problem) == (11, 29)  # the event value
    assert "add a transition with 'event: expire' and 'from: waiting'" in problem.hint


# --- _ambiguous_transitions ------------------------------------------------------------


def test_the_same_event_from_the_same_state_under_the_same_guards() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
  expired: {final: true}
transitions:
  - {event: go, from: created, to: paid, guards: [amount_fixed, has_calldata]}
  - {event: go, from: created, to: expired, guards: [has_calldata, amount_fixed]}
"""
    )
    problem = one(found, "already handled")
    assert problem.message == (
        "event 'go' from 'created' is already handled by transition #1 under the same guards"
    )
    assert at(problem) == (10, 13)


def test_a_guarded_transition_after_an_unguarded_one_never_fires() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
  expired: {final: true}
transitions:
  - {event: go, from: created, to: paid}
  - {event: go, from: created, to: expired, guards: amount_fixed}
"""
    )
    problem = one(found, "can never take this transition")
    assert "unguarded transition #1 comes first" in problem.message
    assert problem.hint == "list the guarded transition before the unguarded one"


def test_a_guarded_transition_before_an_unguarded_one_is_fine() -> None:
    spec = load_flow(
        "inline.yaml",
        text=HEADER
        + """\
states:
  created: {initial: true}
  paid: {final: true}
  expired: {final: true}
transitions:
  - {event: go, from: created, to: expired, guards: amount_fixed}
  - {event: go, from: created, to: paid}
""",
    )
    assert len(spec.transitions) == 2


def test_the_same_source_listed_twice_is_reported() -> None:
    # Reported, though the message calls the transition a duplicate of itself (#1).
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
transitions:
  - {event: go, from: [created, created], to: paid}
"""
    )
    assert one(found, "already handled").message.endswith("by transition #1 under the same guards")


# --- _graph ----------------------------------------------------------------------------


def test_an_unreachable_state() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  paid: {final: true}
  limbo: {final: true}
transitions:
  - {event: go, from: created, to: paid}
"""
    )
    problem = one(found, "unreachable")
    assert problem.message == "state 'limbo' is unreachable from the initial state 'created'"
    assert at(problem) == (7, 3)


def test_reachability_follows_outcomes_and_timers() -> None:
    spec = load_flow(
        "inline.yaml",
        text=HEADER
        + """\
states:
  created: {initial: true, timers: [{after: 1h, event: expire}]}
  expired: {effect: evm.refund, outcomes: {done: refunded}}
  refunded: {final: true}
transitions:
  - {event: expire, from: created, to: expired}
""",
    )
    assert {edge.kind for edge in spec.edges()} == {"timer", "outcome"}


def test_a_flow_without_a_final_state() -> None:
    found = problems(
        """\
states:
  a: {initial: true}
  b: {}
transitions:
  - {event: go, from: a, to: b}
  - {event: back, from: b, to: a}
"""
    )
    problem = one(found, "no final state")
    assert problem.message == "the flow has no final state"
    assert at(problem) == (4, 1)
    assert len(found) == 1


def test_no_final_state_reachable_from_the_initial_state() -> None:
    found = problems(
        """\
states:
  a: {initial: true}
  b: {}
  c: {final: true}
transitions:
  - {event: go, from: a, to: b}
  - {event: back, from: b, to: a}
"""
    )
    problem = one(found, "no final state can be reached")
    assert at(problem) == (5, 3)
    assert one(found, "'c' is unreachable")
    never = [p.message for p in found if "can never finish" in p.message]
    assert never == [
        "a session in 'a' can never finish: no path from it reaches a final state",
        "a session in 'b' can never finish: no path from it reaches a final state",
    ]


def test_a_dead_end() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  stuck: {}
  paid: {final: true}
transitions:
  - {event: go, from: created, to: paid}
  - {event: hold, from: created, to: stuck}
"""
    )
    problem = one(found, "dead end")
    assert problem.message == "state 'stuck' is a dead end: not final, and nothing leads out of it"
    assert at(problem) == (6, 3)
    assert len(found) == 1


def test_a_loop_that_never_finishes() -> None:
    found = problems(
        """\
states:
  created: {initial: true}
  ping: {}
  pong: {}
  paid: {final: true}
transitions:
  - {event: go, from: created, to: paid}
  - {event: play, from: created, to: ping}
  - {event: hit, from: ping, to: pong}
  - {event: hit, from: pong, to: ping}
"""
    )
    assert [p.message for p in found] == [
        "a session in 'ping' can never finish: no path from it reaches a final state",
        "a session in 'pong' can never finish: no path from it reaches a final state",
    ]
    assert found[0].hint == "add a way from this state (or the loop it is in) to a final state"


def test_all_checks_run_together() -> None:
    found = problems(
        """\
states:
  a: {initial: true, timers: [{after: 5m, event: tick}]}
  b: {outcomes: {done: c}}
  c: {final: true}
  send: {final: true}
transitions:
  - {event: go, from: a, to: b, guards: nope}
  - {event: go, from: a, to: d}
"""
    )
    messages = " | ".join(p.message for p in found)
    for fragment in (
        "timer event 'tick'",
        "has outcomes but no effect",
        "reserved",
        "unknown guard 'nope'",
        "unknown state 'd'",
    ):
        assert fragment in messages
    assert found == sorted(found)
