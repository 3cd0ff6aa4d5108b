"""Generate readable pytest cases from a flow, the way XState's ``@xstate/graph`` does.

Why: a flow file *is* the specification of a session's lifecycle, so the tests that
prove the engine follows it can be derived from it instead of written (and forgotten)
by hand. This is model-based testing: the flow's graph (:meth:`FlowSpec.edges` —
transitions per source state, effect outcomes, timers) is the model, its simple paths
(:func:`flowengine.paths.all_paths`) are the candidate test cases, and a small set of
them is chosen so that, together, they take **every edge** and exercise **every guard
both ways**:

* a *transition* is one :class:`~flowengine.spec.Edge`;
* a *guard branch* is (guarded edge, its guards hold) or (guarded edge, refused). A
  refused guard is exercised by any case that, in the edge's source state and with
  session facts that make the guard false, sends the edge's event: either another
  transition takes it, or the engine raises ``TransitionNotAllowed`` and writes nothing
  (for a timer: the timer fires nothing and is cancelled).

The choice is a greedy set cover over (path, session facts) pairs — deterministic, ties
going to the earlier path of :func:`all_paths` (happy path first) — followed by short
*refusal cases* for the refused branches no path reaches. An edge that loops back to a
state visited before is on no simple path; it gets walks of its own (a way to its
source, the edge, a way on to a final state). A path is only used with facts under which
the engine really follows it: the first transition whose guards pass takes an event,
and of a state's timers the one due first fires (the others are cancelled).

Session facts are what the built-in guards read: ``amount_fixed``
(``destination.amountUnits`` set) and ``has_calldata`` (``destination.calldata`` set);
each case creates its session with the facts its guards need. A guard registered by a
package (a *custom* guard) reads facts testgen cannot know how to set, so the cases that
need one are emitted with ``pytest.mark.skip`` and a reason, and counted as uncovered.

Each generated case drives the real :class:`~flowengine.engine.Engine` (memory store,
:class:`~flowengine.clock.ManualClock`) the way production does — events by ``send``,
effect outcomes as ``<effect>.done|failed`` events, timers by moving the clock and
running the :class:`~flowengine.workers.TimerWorker` — and checks after every step the
state the session is in and the effects that step requested (the ``requests`` rows of
its event log). The walking itself is :class:`flowengine.testing.FlowWalk`, written
once; the generated module holds the cases, imports only flowengine (and pytest when a
case is skipped), and finds the flow file from its own folder upwards, so it runs from
any checkout. ``make testgen`` regenerates the committed files; a test fails when one is
stale.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from .paths import all_paths, timer_text
from .spec import Edge, FlowSpec, TransitionSpec, load_flow
from .testing import EXPIRES_IN

#: Guards testgen can make hold or fail by choosing the create-session request, with
#: the value a case uses when the flow does not care.
BUILTIN_GUARDS: dict[str, bool] = {"amount_fixed": True, "has_calldata": False}

#: Guards on the payment an event reports: the total received, this event's ``units``
#: included, against a fixed ``amountUnits`` (-1 short, 0 within tolerance, +1 over; 0
#: when the payer chose the amount). Testgen makes them hold or fail by choosing what
#: each ``payment_detected`` pays: the rest exactly, 1 base unit, or twice the amount.
PAYMENT_GUARDS: dict[str, Callable[[int], bool]] = {
    "fully_paid": lambda position: position >= 0,
    "underpaid": lambda position: position < 0,
    "overpaid": lambda position: position > 0,
}
PAYMENT_EVENT = "payment_detected"
#: How much has been received: nothing, short of the amount, exactly it, more.
Received = Literal["none", "short", "exact", "over"]
#: What a payment can do to that, by what it pays (a total never goes down).
_PAYING: dict[Received, dict[str, Received]] = {
    "none": {"exact": "exact", "short": "short", "over": "over"},
    "short": {"exact": "exact", "short": "short", "over": "over"},
    "exact": {"exact": "exact", "over": "over"},
    "over": {"over": "over"},
}
_POSITION: dict[Received, int] = {"none": -1, "short": -1, "exact": 0, "over": 1}

LINE_LENGTH = 100


Facts = tuple[tuple[str, bool], ...]
Item = tuple[Literal["edge", "holds", "refused"], Edge]


@dataclass(frozen=True)
class Coverage:
    """What the generated cases cover: edges (transitions) and guard branches."""

    transitions_covered: int
    transitions_total: int
    guard_branches_covered: int
    guard_branches_total: int
    uncovered: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return (
            self.transitions_covered == self.transitions_total
            and self.guard_branches_covered == self.guard_branches_total
        )

    def summary(self) -> str:
        return (
            f"transitions {self.transitions_covered}/{self.transitions_total}, "
            f"guard branches {self.guard_branches_covered}/{self.guard_branches_total}"
        )


@dataclass(frozen=True)
class _Step:
    """One line of a case: a step the session takes, or a probe it must refuse."""

    kind: Literal["event", "outcome", "timer", "refused", "deferred"]
    edge: Edge  # for "refused": the guarded edge whose guard is false
    target: str
    effects: tuple[str, ...]
    notes: tuple[str, ...] = ()
    pay: str = ""  # a payment: "exact", "short" or "over" (see PAYMENT_GUARDS)


@dataclass(frozen=True)
class _Case:
    kind: Literal["path", "refusal"]
    facts: Facts
    steps: tuple[_Step, ...]
    covers: frozenset[Item]
    skip: str = ""


#: A candidate case: its path's index in all_paths, its facts, its steps, what it covers.
_Candidate = tuple[int, Facts, list[_Step], frozenset[Item]]


@dataclass
class _Plan:
    cases: list[_Case] = field(default_factory=list)
    coverage: Coverage = field(default_factory=lambda: Coverage(0, 0, 0, 0))


# -- guards and session facts -----------------------------------------------------------


class _Unknown:
    """The outcome of an event that depends on a custom guard's value."""


_UNKNOWN = _Unknown()
Taken = TransitionSpec | None | _Unknown


def _condition(
    transition: TransitionSpec, facts: Mapping[str, bool], custom: bool | None
) -> bool | None:
    """Whether ``transition``'s guards pass under ``facts``. Each ``guards``/``unless``
    entry naming a custom guard counts as ``custom`` (satisfied when True, not when
    False; None: unknown, and so is the result unless a built-in one already fails)."""
    values: list[bool | None] = []
    for name, wanted in (
        *((g, True) for g in transition.guards),
        *((g, False) for g in transition.unless),
    ):
        if name in facts:
            values.append(facts[name] == wanted)
        else:
            values.append(None if custom is None else custom)
    if False in values:
        return False
    return None if None in values else True


_last_edges: list[tuple[FlowSpec, list[Edge]]] = []


def _edges(spec: FlowSpec) -> list[Edge]:
    """``spec.edges()``, kept for the flow being planned (it is asked for very often)."""
    if _last_edges and _last_edges[0][0] is spec:
        return _last_edges[0][1]
    edges = spec.edges()
    _last_edges[:] = [(spec, edges)]
    return edges


def _custom_guards(transitions: Iterable[TransitionSpec]) -> list[str]:
    names = (g for t in transitions for g in (*t.guards, *t.unless))
    known = BUILTIN_GUARDS.keys() | PAYMENT_GUARDS.keys()
    return list(dict.fromkeys(g for g in names if g not in known))


def _candidates(spec: FlowSpec, source: str, event: str) -> list[TransitionSpec]:
    """The transitions that may take ``event`` in ``source``, in the order the compiled
    machine tries them (variance-policy ones, then file order: the first whose guards
    pass is taken)."""
    return [t for _, t in spec.in_precedence() if t.event == event and source in t.sources]


def _taken(
    spec: FlowSpec,
    source: str,
    event: str,
    facts: Mapping[str, bool],
    assume_custom: bool = False,
    let_through: TransitionSpec | None = None,
) -> Taken:
    """The transition ``event`` takes in ``source``: None when refused, ``_UNKNOWN`` when
    a custom guard decides. With ``assume_custom``, custom guards are taken to let
    ``let_through`` pass and to stop every other transition (to sketch a skipped case)."""
    state = spec.states[source]
    if state.effect and any(event == f"{state.effect}.{arm}" for arm in spec.arms(source)):
        return _UNKNOWN  # an effect outcome of the same name comes first
    for transition in _candidates(spec, source, event):
        custom = (transition is let_through) if assume_custom else None
        passes = _condition(transition, facts, custom)
        if passes is None:
            return _UNKNOWN
        if passes:
            return transition
    return None


def _transition_of(spec: FlowSpec, edge: Edge) -> TransitionSpec | None:
    """The transition an event or timer edge comes from (None for an effect outcome)."""
    if edge.kind == "outcome":
        return None
    if edge.kind == "event":
        return spec.transitions[edge.index]
    for transition in _candidates(spec, edge.source, edge.event):
        if transition.to == edge.target and transition.condition_text() == edge.guard:
            return transition
    return None  # pragma: no cover - edges() builds timer edges from these transitions


def _deferred_events(spec: FlowSpec) -> set[str]:
    """Events the flow defers (``defer:``) instead of refusing, when the language has it."""
    return set(getattr(spec, "defer", None) or ())


def _used_guards(spec: FlowSpec) -> list[str]:
    """The built-in guards the flow reads, in BUILTIN_GUARDS order."""
    used = {g for t in spec.transitions for g in (*t.guards, *t.unless)}
    return [name for name in BUILTIN_GUARDS if name in used]


def _values(facts: Facts, received: Received) -> dict[str, bool]:
    """Every known guard's value: the session facts, and the payment guards for what
    has been received (this event's payment included)."""
    values = dict(facts)
    position = _POSITION[received] if values["amount_fixed"] else 0
    values.update({name: check(position) for name, check in PAYMENT_GUARDS.items()})
    return values


def _pay_choices(spec: FlowSpec, edge: Edge, received: Received) -> list[str]:
    """What a step may pay: nothing to choose ("") unless it is a payment in a flow that
    has payment guards."""
    used = {g for t in spec.transitions for g in (*t.guards, *t.unless)}
    if edge.event != PAYMENT_EVENT or edge.kind != "event" or not used & PAYMENT_GUARDS.keys():
        return [""]
    return list(_PAYING[received])


def _paid(received: Received, pay: str) -> Received:
    return _PAYING[received][pay] if pay else received


def _assignments(spec: FlowSpec) -> list[Facts]:
    """Every way to set the guards the flow reads (others keep their default)."""
    used = _used_guards(spec)
    result: list[Facts] = []
    for values in itertools.product((True, False), repeat=len(used)):
        chosen = dict(zip(used, values, strict=True))
        result.append(
            tuple((name, chosen.get(name, BUILTIN_GUARDS[name])) for name in BUILTIN_GUARDS)
        )
    return result


# -- walking a path on paper ------------------------------------------------------------


def _effects(spec: FlowSpec, edge: Edge) -> tuple[str, ...]:
    """What taking ``edge`` requests: the transition's effects, then the target's own."""
    entry = spec.states[edge.target].effect
    return (*edge.effects, *((entry,) if entry else ()))


def _same_event(spec: FlowSpec, edge: Edge) -> list[Edge]:
    """The guarded edges that compete with ``edge`` for its event in its source state."""
    return [
        other
        for other in _edges(spec)
        if other.source == edge.source
        and other.event == edge.event
        and other.kind == edge.kind
        and other.guard
    ]


def _refusals(
    spec: FlowSpec, source_edge: Edge, facts: Mapping[str, bool], taken: Edge | None
) -> tuple[list[Item], list[str]]:
    """The refused guard branches exercised by sending ``source_edge``'s event (and the
    comment lines that say so), ``taken`` being the edge that took it, if any."""
    items: list[Item] = []
    notes: list[str] = []
    for other in _same_event(spec, source_edge):
        transition = _transition_of(spec, other)
        if other == taken or transition is None:
            continue
        if _condition(transition, facts, None) is False:
            items.append(("refused", other))
            notes.append(f"[{other.guard}] is false: not {other.source} → {other.target}")
    return items, notes


@dataclass(frozen=True)
class _Walked:
    """A path walked on paper: its steps, what they cover, and the session's clock."""

    steps: list[_Step]
    covers: set[Item]
    now: int = 0  # seconds since the session was created
    entered: int = 0  # when it entered the state it is in
    received: Received = "none"


def _timer_index(spec: FlowSpec, edge: Edge) -> int:
    """Which of its source state's timers a timer edge stands for."""
    timers = spec.states[edge.source].timers
    return next(
        index
        for index, timer in enumerate(timers)
        if timer.event == edge.event and (timer.after or "expires_at") == edge.timer
    )


def _due(spec: FlowSpec, state: str, index: int, entered: int) -> int:
    timer = spec.states[state].timers[index]
    after = timer.after_seconds
    return EXPIRES_IN if after is None else entered + after


def _preempted(
    spec: FlowSpec,
    state: str,
    index: int,
    facts: Mapping[str, bool],
    entered: int,
    assume_custom: bool,
) -> bool | None:
    """Whether another timer of ``state``, due first, fires before timer ``index`` does
    (then that one moves the session and this one is cancelled); None when a custom
    guard decides. The timer worker fires due timers by due time, then in the order
    the state lists them."""
    due = _due(spec, state, index, entered)
    for other, timer in enumerate(spec.states[state].timers):
        other_due = _due(spec, state, other, entered)
        if other == index or (other_due, other) > (due, index):
            continue
        taken = _taken(spec, state, timer.event, facts, assume_custom, None)
        if isinstance(taken, _Unknown):
            return None
        if taken is not None:
            return True
    return False


def _walk(
    spec: FlowSpec,
    edges: Sequence[Edge],
    facts: Facts,
    assume_custom: bool = False,
    last_pay: str | None = None,
) -> _Walked | None:
    """The steps of a path under ``facts`` and what they cover, or None when the engine
    would not follow it (a guard sends the event elsewhere, another timer fires first,
    or a custom guard decides and ``assume_custom`` is off). A payment pays what makes
    the path's transition take it (the rest exactly, if that does; ``last_pay`` fixes
    what the last step pays)."""
    walked = _Walked([], set())
    for number, edge in enumerate(edges, start=1):
        notes: list[str] = []
        now = walked.now
        if edge.kind == "outcome":
            walked.steps.append(_Step("outcome", edge, edge.target, _effects(spec, edge)))
            walked.covers.add(("edge", edge))
            walked = replace(walked, entered=now)
            continue
        transition = _transition_of(spec, edge)
        choices = _pay_choices(spec, edge, walked.received)
        if last_pay is not None and number == len(edges):
            choices = [last_pay] if last_pay in choices else []
        for pay in choices:
            received = _paid(walked.received, pay)
            values = _values(facts, received)
            taken = _taken(spec, edge.source, edge.event, values, assume_custom, transition)
            if taken is transition:
                break
        else:
            return None
        if edge.kind == "timer":
            index = _timer_index(spec, edge)
            entered = walked.entered
            if _preempted(spec, edge.source, index, values, entered, assume_custom) is not False:
                return None
            now = max(now, _due(spec, edge.source, index, entered))
        walked.covers.add(("edge", edge))
        if edge.guard:
            walked.covers.add(("holds", edge))
            notes.append(f"[{edge.guard}] holds")
        if not assume_custom:
            refused, refused_notes = _refusals(spec, edge, values, edge)
            walked.covers.update(refused)
            notes.extend(refused_notes)
        effects = _effects(spec, edge)
        walked.steps.append(_Step(edge.kind, edge, edge.target, effects, tuple(notes), pay))
        walked = replace(walked, now=now, entered=now, received=received)
    return walked


# -- choosing the cases -----------------------------------------------------------------


def _universe(spec: FlowSpec) -> list[Item]:
    items: list[Item] = []
    for edge in _edges(spec):
        items.append(("edge", edge))
    for edge in _edges(spec):
        if edge.guard:
            items.extend([("holds", edge), ("refused", edge)])
    return items


def _greedy(candidates: Sequence[_Candidate], wanted: set[Item]) -> list[_Candidate]:
    """A greedy set cover: repeatedly the candidate covering most still-wanted items
    (the first such in candidate order), until none adds anything."""
    chosen: list[_Candidate] = []
    left = set(wanted)
    while left:
        best = max(candidates, key=lambda c: len(c[3] & left), default=None)
        if best is None or not best[3] & left:
            break
        chosen.append(best)
        left -= best[3]
    return chosen


def _plan(spec: FlowSpec) -> _Plan:
    universe = _universe(spec)
    paths = _walks(spec)
    assignments = _assignments(spec)

    candidates: list[_Candidate] = []
    for index, edges in enumerate(paths):
        for facts in assignments:
            walked = _walk(spec, edges, facts)
            if walked is not None:
                candidates.append((index, facts, walked.steps, frozenset(walked.covers)))
    chosen = _greedy(candidates, set(universe))
    chosen.sort(key=lambda c: (c[0], assignments.index(c[1])))
    cases = [_Case("path", facts, tuple(steps), covers) for _, facts, steps, covers in chosen]
    covered: set[Item] = set()
    for case in cases:
        covered |= case.covers

    # Refused guards that no path exercises: walk to the source state, send the event.
    for kind, edge in universe:
        if kind != "refused" or (kind, edge) in covered:
            continue
        probe = _probe(spec, paths, assignments, edge)
        if probe is not None:
            cases.append(probe)
            covered |= probe.covers

    # What only a custom guard could decide: sketch it, skipped, and count it uncovered.
    reasons: dict[Item, str] = {}
    missing = [item for item in universe if item not in covered]
    sketches: list[_Candidate] = []
    for index, edges in enumerate(paths):
        for facts in assignments:
            walked = _walk(spec, edges, facts, assume_custom=True)
            if walked is not None:
                sketches.append((index, facts, walked.steps, frozenset(walked.covers)))
                break
    wanted = {item for item in missing if item[0] != "refused"}
    for _, facts, steps, covers in sorted(_greedy(sketches, wanted), key=lambda c: c[0]):
        custom = _custom_guards(t for step in steps for t in _competitors(spec, step.edge))
        cases.append(_Case("path", facts, tuple(steps), frozenset(), _skip_reason(custom)))
        for item in covers & wanted:
            reasons.setdefault(item, f"custom guard {', '.join(custom)} decides it")
    for item in missing:
        kind, edge = item
        if kind != "refused":
            continue
        sketch = _probe(spec, paths, assignments, edge, assume_custom=True)
        deciding = _candidates(spec, edge.source, edge.event)
        custom = _custom_guards(
            [*deciding, *(t for step in sketch.steps for t in _competitors(spec, step.edge))]
            if sketch is not None
            else deciding
        )
        if not custom:
            continue
        if sketch is not None:
            reason = _skip_reason(custom)
            cases.append(_Case("refusal", sketch.facts, sketch.steps, frozenset(), reason))
        reasons[item] = f"custom guard {', '.join(custom)} decides it"

    uncovered = tuple(
        f"{_describe(item)}: "
        + reasons.get(item, "no session facts reach it (the guards contradict the way there)")
        for item in missing
    )
    edges_total = sum(1 for kind, _ in universe if kind == "edge")
    return _Plan(
        cases,
        Coverage(
            transitions_covered=sum(1 for i in universe if i[0] == "edge" and i in covered),
            transitions_total=edges_total,
            guard_branches_covered=sum(1 for i in universe if i[0] != "edge" and i in covered),
            guard_branches_total=len(universe) - edges_total,
            uncovered=uncovered,
        ),
    )


def _competitors(spec: FlowSpec, edge: Edge) -> list[TransitionSpec]:
    """The transitions whose guards decide whether ``edge`` is taken."""
    if edge.kind == "outcome":
        return []
    own = _transition_of(spec, edge)
    result: list[TransitionSpec] = []
    for transition in _candidates(spec, edge.source, edge.event):
        result.append(transition)
        if transition is own:
            break
    return result


def _probe(
    spec: FlowSpec,
    paths: Sequence[tuple[Edge, ...]],
    assignments: Sequence[Facts],
    edge: Edge,
    assume_custom: bool = False,
) -> _Case | None:
    """A refusal case for ``edge``: the shortest walk to its source with facts that make
    its guard false, then its event, which another transition takes or nobody does.
    With ``assume_custom`` (a sketch for a skipped case) every custom guard fails."""
    transition = _transition_of(spec, edge)
    if transition is None:
        return None
    for facts in assignments:
        prefix = _shortest_prefix(spec, paths, facts, edge.source, assume_custom)
        if prefix is None:
            continue
        for pay in _pay_choices(spec, edge, prefix.received):
            case = _probe_step(spec, edge, transition, facts, prefix, pay, assume_custom)
            if case is not None:
                return case
    return None


def _probe_step(
    spec: FlowSpec,
    edge: Edge,
    transition: TransitionSpec,
    facts: Facts,
    prefix: _Walked,
    pay: str,
    assume_custom: bool,
) -> _Case | None:
    """The refusal case made of ``prefix`` and then ``edge``'s event (paying ``pay``),
    if ``edge``'s guard is false then."""
    values = _values(facts, _paid(prefix.received, pay))
    if _condition(transition, values, False if assume_custom else None) is not False:
        return None
    if edge.kind == "timer":
        index = _timer_index(spec, edge)
        if _preempted(spec, edge.source, index, values, prefix.entered, assume_custom) is not False:
            return None
    taken = _taken(spec, edge.source, edge.event, values, assume_custom, None)
    if isinstance(taken, _Unknown):
        return None
    if taken is None:
        deferred = edge.event in _deferred_events(spec)
        if deferred and edge.kind == "timer":
            return None  # a deferred timer event: not generated (counted uncovered)
        refused, notes = _refusals(spec, edge, values, None)
        nobody = f"no other transition takes {edge.event} in {edge.source}"
        if deferred:
            nobody += " (the flow defers it: it waits, nothing moves)"
        kind: Literal["refused", "deferred"] = "deferred" if deferred else "refused"
        last = _Step(kind, edge, edge.source, (), (*notes, nobody), pay)
        covers: set[Item] = {*prefix.covers, *refused, ("refused", edge)}
        return _Case("refusal", facts, (*prefix.steps, last), frozenset(covers))
    alternative = next(
        e
        for e in _edges(spec)
        if (e.source, e.event, e.kind) == (edge.source, edge.event, edge.kind)
        and e.timer == edge.timer  # a timer edge: the same timer fires
        and _transition_of(spec, e) is taken
    )
    way = [*(step.edge for step in prefix.steps), alternative]
    whole = _walk(spec, way, facts, assume_custom, last_pay=pay)
    if whole is None:  # pragma: no cover - _taken just said it is taken
        return None
    whole.covers.add(("refused", edge))
    return _Case("refusal", facts, tuple(whole.steps), frozenset(whole.covers))


def _shortest_prefix(
    spec: FlowSpec,
    paths: Sequence[tuple[Edge, ...]],
    facts: Facts,
    state: str,
    assume_custom: bool,
) -> _Walked | None:
    """The shortest way from the initial state to ``state`` that the engine follows
    under ``facts``."""
    for head in _heads(spec, paths, state):
        walked = _walk(spec, head, facts, assume_custom)
        if walked is not None:
            return walked
    return None


#: How many ways through a loop edge are tried (shortest first) before giving up on it.
_LOOP_TRIES = 64


def _walks(spec: FlowSpec) -> list[tuple[Edge, ...]]:
    """The candidate walks: every simple path (:func:`all_paths`), then, for each edge
    no simple path takes (one that loops back to a state visited before), a way to its
    source, the edge, and a way from its target to a final state."""
    paths = [path.edges for path in all_paths(spec)]
    taken = {edge for path in paths for edge in path}
    extra: list[tuple[Edge, ...]] = []
    for edge in _edges(spec):
        if edge in taken:
            continue
        heads = _heads(spec, paths, edge.source)[: _LOOP_TRIES // 8]
        tails = _tails(spec, paths, edge.target)[: _LOOP_TRIES // 8]
        combos = [(*head, edge, *tail) for head in heads for tail in tails]
        extra.extend(sorted(dict.fromkeys(combos), key=len)[:_LOOP_TRIES])
    return paths + extra


def _ordered(spec: FlowSpec) -> dict[str, list[Edge]]:
    """The edges out of each state, in the order :func:`all_paths` tries them."""
    order = {"event": 0, "outcome": 1, "timer": 2}
    outgoing: dict[str, list[Edge]] = {name: [] for name in spec.states}
    for edge in sorted(_edges(spec), key=lambda edge: order[edge.kind]):
        outgoing[edge.source].append(edge)
    return outgoing


def _shortest(spec: FlowSpec, start: str, goal: set[str]) -> tuple[Edge, ...] | None:
    """A shortest edge sequence from ``start`` to a state in ``goal`` (guards ignored)."""
    outgoing = _ordered(spec)
    seen = {start}
    queue: list[tuple[str, tuple[Edge, ...]]] = [(start, ())]
    for state, way in queue:  # breadth first: the queue grows while it is read
        if state in goal:
            return way
        for edge in outgoing[state]:
            if edge.target not in seen:
                seen.add(edge.target)
                queue.append((edge.target, (*way, edge)))
    return None


def _heads(spec: FlowSpec, paths: Sequence[tuple[Edge, ...]], state: str) -> list[tuple[Edge, ...]]:
    """Ways from the initial state to ``state``, shortest first: the prefixes of the
    candidate walks, and a breadth-first one."""
    heads: list[tuple[Edge, ...]] = []
    for edges in paths:
        states = [spec.initial_state, *(e.target for e in edges)]
        if state in states:
            heads.append(edges[: states.index(state)])
    bfs = _shortest(spec, spec.initial_state, {state})
    if bfs is not None:
        heads.append(bfs)
    return sorted(dict.fromkeys(heads), key=len)


def _tails(spec: FlowSpec, paths: Sequence[tuple[Edge, ...]], state: str) -> list[tuple[Edge, ...]]:
    """Ways from ``state`` to a final state, shortest first."""
    tails: list[tuple[Edge, ...]] = []
    for edges in paths:
        states = [spec.initial_state, *(e.target for e in edges)]
        if state in states:
            tails.append(edges[states.index(state) :])
    finals = {name for name, s in spec.states.items() if s.final}
    bfs = _shortest(spec, state, finals)
    if bfs is not None:
        tails.append(bfs)
    return sorted(dict.fromkeys(tails), key=len)


def _skip_reason(custom: Sequence[str]) -> str:
    """Why a case is skipped, short enough for one line of the generated module."""
    names = ", ".join(f"'{name}'" for name in custom)
    if len(names) > 40:
        names = f"{names[:36].rsplit(',', 1)[0]}, …"
    plural = "s" if len(custom) > 1 else ""
    return f"custom guard{plural} {names}: testgen sets only amount_fixed and has_calldata"


def _edge_text(edge: Edge) -> str:
    label = edge.label()
    if edge.kind == "timer":
        label += f" ({timer_text(edge.timer)})"
    return f"{edge.source} --{label}--> {edge.target}"


def _describe(item: Item) -> str:
    kind, edge = item
    what = {
        "edge": "transition",
        "holds": f"guard [{edge.guard}] holding on",
        "refused": f"guard [{edge.guard}] refused on",
    }[kind]
    return f"{what} {_edge_text(edge)}"


# -- rendering --------------------------------------------------------------------------


def coverage(spec: FlowSpec) -> Coverage:
    """What :func:`generate` covers for ``spec``: transitions and guard branches."""
    return _plan(spec).coverage


def generate(spec: FlowSpec, flow_path: str) -> str:
    """The source of a pytest module testing ``spec`` (loaded from ``flow_path``, which
    the module looks for from its own folder upwards: give it relative to the checkout).

    Deterministic: the same flow and flowengine give the same text, already formatted
    as ``ruff format`` would (the text is passed through it when it is installed).
    """
    plan = _plan(spec)
    text = _render(spec, flow_path, plan)
    return _ruff_format(text)


def _ruff_format(text: str) -> str:
    """``text`` through ``ruff format`` (this environment's first), when there is one."""
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    if ruff is None:
        return text
    try:
        done = subprocess.run(
            [ruff, "format", "--isolated", f"--line-length={LINE_LENGTH}", "-"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return text
    return done.stdout if done.returncode == 0 and done.stdout else text


def _q(text: str) -> str:
    """A double-quoted Python string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_q(item) for item in items) + "]"


def _call(indent: int, func: str, args: Sequence[str]) -> list[str]:
    """``func(args)`` at ``indent``, split the way ruff format splits it."""
    pad = " " * indent
    flat = f"{pad}{func}({', '.join(args)})"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    inner = " " * (indent + 4) + ", ".join(args)
    if len(inner) <= LINE_LENGTH:
        return [f"{pad}{func}(", inner, f"{pad})"]
    lines = [f"{pad}{func}("]
    for arg in args:
        line = " " * (indent + 4) + arg + ","
        if len(line) > LINE_LENGTH and arg.endswith("]") and "[" in arg:
            head, _, body = arg.partition("[")
            lines.append(" " * (indent + 4) + head + "[")
            lines.extend(" " * (indent + 8) + item.strip() + "," for item in body[:-1].split(","))
            lines.append(" " * (indent + 4) + "],")
        else:
            lines.append(line)
    lines.append(f"{pad})")
    return lines


def _comment(indent: int, text: str, hanging: str = "") -> list[str]:
    width = LINE_LENGTH - indent - 2
    wrapped = textwrap.wrap(text, width, subsequent_indent=hanging)
    return [" " * indent + "# " + line for line in wrapped]


def _docstring(indent: int, paragraphs: Sequence[str]) -> list[str]:
    """A docstring as ruff format leaves it: one line when it fits, else the closing
    quotes on a line of their own (the first paragraph leaves room for both quotes)."""
    pad = " " * indent
    lines: list[str] = []
    for number, paragraph in enumerate(paragraphs):
        width = LINE_LENGTH - indent - (6 if number == 0 else 0)
        if number:
            lines.append("")
        lines.extend(textwrap.wrap(paragraph, width) or [""])
    if len(lines) == 1:
        return [f'{pad}"""{lines[0]}"""']
    out = [f'{pad}"""{lines[0]}']
    out.extend(f"{pad}{line}" if line else "" for line in lines[1:])
    out.append(f'{pad}"""')
    return out


def _identifier(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")


def _facts_text(spec: FlowSpec, facts: Facts) -> str:
    used = _used_guards(spec)
    parts = [("with " if value else "without ") + name for name, value in facts if name in used]
    return " and ".join(parts)


def _case_name(spec: FlowSpec, number: int, case: _Case) -> str:
    last = case.steps[-1] if case.steps else None
    if case.kind == "path":
        states = [spec.initial_state, *(step.target for step in case.steps)]
        name = f"test_{number:02d}_to_{states[-1]}"
        if len(states) > 1:
            name += f"_via_{states[-2]}"
    elif last is not None and last.kind in ("refused", "deferred"):
        verb = "refuses" if last.kind == "refused" else "defers"
        name = f"test_{number:02d}_{verb}_{_identifier(last.edge.event)}_in_{last.edge.source}"
    else:
        assert last is not None
        name = (
            f"test_{number:02d}_{_identifier(last.edge.event)}_in_{last.edge.source}"
            f"_goes_to_{last.target}"
        )
    return name[:80].rstrip("_")


def _case_summary(spec: FlowSpec, case: _Case) -> list[str]:
    """The docstring of a case: the walk in one line, and what it is about."""
    moves = (s for s in case.steps if s.kind not in ("refused", "deferred"))
    states = [spec.initial_state, *(s.target for s in moves)]
    facts = _facts_text(spec, case.facts)
    walk = " → ".join(states) + (f", {facts}" if facts else "")
    last = case.steps[-1] if case.steps else None
    if case.kind == "path" or last is None:
        return [walk + "."]
    if last.kind in ("refused", "deferred"):
        verb = "refused" if last.kind == "refused" else "deferred"
        return [f"{walk}: {last.edge.event} is {verb} in {last.edge.source}."]
    return [
        f"{walk}: a guard of {last.edge.event} in {last.edge.source} is false, so "
        f"{last.edge.source} → {last.target} takes it."
    ]


def _render_case(spec: FlowSpec, number: int, case: _Case) -> list[str]:
    lines: list[str] = []
    if case.skip:
        lines.extend(_call(0, "@pytest.mark.skip", [f"reason={_q(case.skip)}"]))
    lines.append(f"def {_case_name(spec, number, case)}() -> None:")
    lines.extend(_docstring(4, _case_summary(spec, case)))
    facts = [f"{name}={value}" for name, value in case.facts]
    lines.extend(_call(4, "walk = Walk", facts))
    start = spec.initial_state
    entry = spec.states[start].effect
    lines.extend(
        _call(4, "walk.starts_in", [_q(start), f"effects={_list([entry] if entry else [])}"])
    )
    visited = [start]
    for step in case.steps:
        for note in step.notes:
            lines.extend(_comment(4, note))
        edge = step.edge
        effects = f"effects={_list(step.effects)}"
        if step.kind == "deferred":  # logged as a row that stays in the state
            lines.extend(_call(4, "walk.deferred", [_q(edge.event)]))
            visited.append(edge.source)
            continue
        if step.kind == "refused":
            if edge.kind == "timer":
                lines.extend(
                    _call(4, "walk.timer_refused", [_q(edge.event), f"due={_q(edge.timer)}"])
                )
            else:
                pay = [f"pay={_q(step.pay)}"] if step.pay else []
                lines.extend(_call(4, "walk.refused", [_q(edge.event), *pay]))
            continue
        visited.append(step.target)
        to = f"to={_q(step.target)}"
        if step.kind == "timer":
            args = [_q(edge.event), f"due={_q(edge.timer)}", to, effects]
            lines.extend(_call(4, "walk.timer", args))
        elif step.kind == "outcome":
            lines.extend(_call(4, "walk.outcome", [_q(edge.event), to, effects]))
        else:
            pay = [f"pay={_q(step.pay)}"] if step.pay else []
            lines.extend(_call(4, "walk.send", [_q(edge.event), to, effects, *pay]))
    lines.extend(_call(4, "walk.visited", [_list(visited)]))
    return lines


_HELPERS = '''

def flow_file() -> Path:
    """FLOW_FILE, looked up from this file's folder upwards, then in the working directory."""
    for folder in (*Path(__file__).resolve().parents, Path.cwd()):
        if (folder / FLOW_FILE).is_file():
            return folder / FLOW_FILE
    raise FileNotFoundError(f"{FLOW_FILE} is neither above {__file__} nor in {Path.cwd()}")


@functools.cache
def flow() -> FlowSpec:
    return load_flow(flow_file())


class Walk(FlowWalk):
    """One session of this flow on a fresh engine, checked step by step (see
    flowengine.testing.FlowWalk for what each step feeds and checks)."""

    def __init__(self, *, amount_fixed: bool, has_calldata: bool) -> None:
        super().__init__(flow(), amount_fixed=amount_fixed, has_calldata=has_calldata)
'''


def _render(spec: FlowSpec, flow_path: str, plan: _Plan) -> str:
    cov = plan.coverage
    paths = sum(1 for c in plan.cases if c.kind == "path" and not c.skip)
    refusals = sum(1 for c in plan.cases if c.kind == "refusal" and not c.skip)
    skipped = sum(1 for c in plan.cases if c.skip)
    counts = f"{paths} path{'s' * (paths != 1)}, {refusals} refusal case{'s' * (refusals != 1)}"
    if skipped:
        counts += f", {skipped} skipped (custom guards)"
    lines = [
        f"# generated by flowengine testgen from {flow_path} (content hash "
        f"{spec.content_hash[:16]});",
        "# do not edit — regenerate with `make testgen`",
    ]
    lines.extend(
        _docstring(
            0,
            [
                f"Tests of the {spec.name} flow (version {spec.version}), generated from "
                f"{flow_path}.",
                "Why generated: the flow file is the specification, so its tests are derived "
                "from it (model-based testing, like XState's @xstate/graph) instead of written "
                "by hand and left behind when the flow changes. Each case walks one path of "
                "the flow through the real Engine (memory store, manual clock) and checks, at "
                "every step, the state the session reached and the effects the step "
                "requested. Together the cases take every transition, effect outcome and "
                "timer, and exercise every guard both ways: holding, and refused (another "
                "transition takes the event, or it raises TransitionNotAllowed)"
                + ("." if cov.complete else "; what they cannot is listed at the end."),
                f"Cases: {counts}. Coverage: {cov.summary()}.",
            ],
        )
    )
    lines += [
        "",
        "from __future__ import annotations",
        "",
        "import functools",
        "from pathlib import Path",
        "",
        *(["import pytest", ""] if any(case.skip for case in plan.cases) else []),
        "from flowengine.spec import FlowSpec, load_flow",
        "from flowengine.testing import FlowWalk",
        "",
        f"FLOW_FILE = {_q(flow_path)}",
    ]
    lines.extend(_HELPERS.rstrip("\n").split("\n"))
    for number, case in enumerate(plan.cases, start=1):
        lines += ["", ""]
        lines.extend(_render_case(spec, number, case))
    if cov.uncovered:
        lines += ["", ""]
        lines.extend(_comment(0, "Not covered (see the skipped cases):"))
        for item in cov.uncovered:
            lines.extend(_comment(0, f"- {item}", hanging="  "))
    return "\n".join(line.rstrip() for line in lines) + "\n"


# -- command line -----------------------------------------------------------------------


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``testgen FLOW [-o FILE] [--coverage]`` on the ``flowengine`` command."""
    parser = commands.add_parser(
        "testgen", help="generate pytest cases covering every transition and guard of a flow"
    )
    parser.add_argument("flow", type=Path, metavar="FLOW")
    parser.add_argument(
        "-o", "--output", type=Path, help="file to write (default: print the module)"
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="print what the cases cover; exit 1 unless every transition and guard branch is",
    )
    parser.set_defaults(run=run_testgen)


def run_testgen(args: argparse.Namespace) -> int:
    """The ``testgen`` command: write (or print) the module, and/or report coverage."""
    flow: Path = args.flow
    spec = load_flow(flow)
    shown = _display_path(flow)
    result = coverage(spec)
    if args.output is not None:
        output: Path = args.output
        output.parent.mkdir(parents=True, exist_ok=True)
        text = generate(spec, shown)
        output.write_text(text, encoding="utf-8")
        cases = text.count("\ndef test_")
        print(f"wrote {output}: {cases} cases, {result.summary()}")
    elif not args.coverage:
        sys.stdout.write(generate(spec, shown))
    if args.coverage:
        print(f"{shown}: {result.summary()}")
        for item in result.uncovered:
            print(f"  not covered: {item}")
        return 0 if result.complete else 1
    return 0


def _display_path(path: Path) -> str:
    """``flows/x.yaml`` as given, or relative to the working directory when possible."""
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()
