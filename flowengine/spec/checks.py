"""Static checks: the mistakes that would make a flow misbehave, caught before it runs.

Each check looks at the whole :class:`FlowSpec` and returns :class:`Problem` values
located at the offending key, with a hint that says how to fix it. All checks run on
every load, so a person fixing a flow sees every problem at once instead of one per run.
"""

from __future__ import annotations

import difflib
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator

from statemachine import StateChart

from ..errors import Problem
from ..registry import Registry
from .models import FlowSpec
from .variance import roles
from .yamlpos import Positions

#: Names python-statemachine uses for its own attributes: a state or event with one of
#: these names would shadow the machine's API in the compiled class. ``dir(StateChart)``
#: has the class attributes; the rest are set on each machine in ``__init__`` or read
#: as class options.
RESERVED_NAMES = frozenset(
    {name for name in dir(StateChart) if not name.startswith("__")}
    | {"model", "state_field", "start_value", "history_values", "listeners"}
)


def did_you_mean(word: str, choices: Iterable[str], what: str) -> str:
    options = sorted(set(choices))
    cutoff = 0.5 if len(word) <= 3 else 0.6  # 'on' → 'to' is a fair guess; short words differ more
    close = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    if close:
        return f"did you mean '{close[0]}'?"
    shown = ", ".join(options[:12]) + (", …" if len(options) > 12 else "")
    return f"known {what}: {shown}" if options else f"no {what} are defined"


def check_flow(spec: FlowSpec, positions: Positions, registry: Registry) -> list[Problem]:
    checks = (
        _initial_state,
        _reserved_names,
        _unknown_states,
        _effects_and_outcomes,
        _final_states,
        _unknown_names,
        _timers,
        _ambiguous_transitions,
        _graph,
        _upgrade_map,
        _variance_roles,
    )
    return [problem for check in checks for problem in check(spec, positions, registry)]


def _initial_state(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    initial = [name for name, state in spec.states.items() if state.initial]
    if not initial:
        yield at.problem(
            ("states",),
            "no initial state",
            "mark the state where every session starts with 'initial: true'",
            key=True,
        )
    for extra in initial[1:]:
        yield at.problem(
            ("states", extra, "initial"),
            f"several initial states ('{initial[0]}' and '{extra}')",
            f"a session starts in exactly one state; remove 'initial: true' from '{extra}' "
            f"or from '{initial[0]}'",
            key=True,
        )


def _reserved_names(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    for name in spec.states:
        if name in RESERVED_NAMES:
            yield at.problem(
                ("states", name),
                f"state name '{name}' is reserved by the state-machine runtime",
                f"rename it, e.g. '{name}_state'",
                key=True,
            )
    for index, transition in enumerate(spec.transitions):
        if transition.event in spec.states:
            yield at.problem(
                ("transitions", index, "event"),
                f"event '{transition.event}' has the name of a state",
                "states and events share one namespace in the compiled machine; name the "
                f"event after what happened, e.g. 'go_{transition.event}'",
            )
        if transition.event in RESERVED_NAMES:
            yield at.problem(
                ("transitions", index, "event"),
                f"event name '{transition.event}' is reserved by the state-machine runtime",
                f"rename it, e.g. '{transition.event}_event'",
            )


def _unknown_states(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    names = spec.states.keys()
    for index, transition in enumerate(spec.transitions):
        for position, source in enumerate(transition.sources):
            if source not in names:
                path: tuple[str | int, ...] = ("transitions", index, "from", position)
                yield at.problem(
                    path, f"unknown state '{source}'", did_you_mean(source, names, "states")
                )
        if transition.to not in names:
            yield at.problem(
                ("transitions", index, "to"),
                f"unknown state '{transition.to}'",
                did_you_mean(transition.to, names, "states"),
            )
    for name, state in spec.states.items():
        for arm, target in state.outcomes.items():
            if target not in names:
                yield at.problem(
                    ("states", name, "outcomes", arm),
                    f"unknown state '{target}'",
                    did_you_mean(target, names, "states"),
                )


def _effects_and_outcomes(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    for name, state in spec.states.items():
        if state.outcomes and not state.effect:
            yield at.problem(
                ("states", name, "outcomes"),
                f"state '{name}' has outcomes but no effect",
                "outcomes say where an effect's result leads; add 'effect: <adapter.op>'",
                key=True,
            )
        for key in ("amount", "poll"):
            if getattr(state, key) is not None and not state.effect:
                yield at.problem(
                    ("states", name, key),
                    f"state '{name}' has '{key}' but no effect",
                    f"'{key}' belongs to the state's effect; add 'effect: <adapter.op>' or "
                    f"remove '{key}'",
                    key=True,
                )
        if state.effect and "done" not in state.outcomes:
            yield at.problem(
                ("states", name, "effect"),
                f"the effect '{state.effect}' of state '{name}' has no 'done' outcome",
                "add 'outcomes: {done: <next state>, failed: <state>}' so its result leads "
                "somewhere",
                key=True,
            )


def _final_states(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    for name, state in spec.states.items():
        if not state.final:
            continue
        if state.initial:
            yield at.problem(
                ("states", name, "final"),
                f"state '{name}' is both initial and final",
                "a session would end before it starts; remove one of the two",
                key=True,
            )
        for field in ("effect", "timers"):
            if getattr(state, field):
                yield at.problem(
                    ("states", name, field),
                    f"final state '{name}' has {field}",
                    "a finished session does nothing more; move this to the state before it",
                    key=True,
                )
    for index, transition in enumerate(spec.transitions):
        for source in transition.sources:
            if source in spec.states and spec.states[source].final:
                yield at.problem(
                    ("transitions", index, "from"),
                    f"transition '{transition.event}' leaves final state '{source}'",
                    "final states have no way out; remove 'final: true' or this transition",
                )


def _unknown_names(spec: FlowSpec, at: Positions, registry: Registry) -> Iterator[Problem]:
    guards = registry.guards.keys()
    effects = registry.effects.keys()
    for index, transition in enumerate(spec.transitions):
        for field in ("guards", "unless"):
            for position, guard in enumerate(getattr(transition, field)):
                if guard not in guards:
                    yield at.problem(
                        ("transitions", index, field, position),
                        f"unknown guard '{guard}'",
                        did_you_mean(guard, guards, "guards"),
                    )
        for position, effect in enumerate(transition.effects):
            if effect not in effects:
                yield at.problem(
                    ("transitions", index, "effects", position),
                    f"unknown effect '{effect}'",
                    did_you_mean(effect, effects, "effects"),
                )
    for name, state in spec.states.items():
        if state.effect and state.effect not in effects:
            yield at.problem(
                ("states", name, "effect"),
                f"unknown effect '{state.effect}'",
                did_you_mean(state.effect, effects, "effects"),
            )


def _timers(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    for name, state in spec.states.items():
        accepted = {t.event for t in spec.transitions if name in t.sources}
        for index, timer in enumerate(state.timers):
            if timer.event not in accepted:
                yield at.problem(
                    ("states", name, "timers", index, "event"),
                    f"timer event '{timer.event}' has no transition from '{name}'",
                    f"add a transition with 'event: {timer.event}' and 'from: {name}', "
                    "or remove the timer",
                )


def _ambiguous_transitions(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, transition in spec.in_precedence():
        for source in transition.sources:
            earlier = seen[(source, transition.event)]
            for other in earlier:
                first = spec.transitions[other]
                if first.condition == transition.condition:
                    yield at.problem(
                        ("transitions", index, "event"),
                        f"event '{transition.event}' from '{source}' is already handled by "
                        f"transition #{other + 1} under the same guards",
                        "give the two transitions different guards (e.g. 'guards: [x]' and "
                        "'unless: [x]'), or remove one",
                    )
                elif not first.guards and not first.unless:
                    yield at.problem(
                        ("transitions", index, "event"),
                        f"event '{transition.event}' from '{source}' can never take this "
                        f"transition: unguarded transition #{other + 1} comes first",
                        "list the guarded transition before the unguarded one",
                    )
            earlier.append(index)


def _graph(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    initial = [name for name, state in spec.states.items() if state.initial]
    if len(initial) != 1:
        return
    successors = _successors(spec)
    predecessors: dict[str, set[str]] = defaultdict(set)
    for source, targets in successors.items():
        for target in targets:
            predecessors[target].add(source)

    reachable = _closure(initial[0], successors)
    for name in spec.states:
        if name not in reachable:
            yield at.problem(
                ("states", name),
                f"state '{name}' is unreachable from the initial state '{initial[0]}'",
                f"add a transition with 'to: {name}', or remove the state",
                key=True,
            )
    finals = [name for name, state in spec.states.items() if state.final]
    if not finals:
        yield at.problem(
            ("states",),
            "the flow has no final state",
            "mark where sessions end (e.g. completed, expired) with 'final: true'",
            key=True,
        )
        return
    can_finish: set[str] = set()
    for final in finals:
        can_finish |= _closure(final, predecessors)
    if not can_finish & {initial[0]}:
        yield at.problem(
            ("states", initial[0]),
            "no final state can be reached from the initial state",
            "add transitions that lead from the start to a state with 'final: true'",
            key=True,
        )
    for name, state in spec.states.items():
        if state.final or name not in reachable:
            continue
        if not successors.get(name):
            yield at.problem(
                ("states", name),
                f"state '{name}' is a dead end: not final, and nothing leads out of it",
                "add a transition, timer or effect outcome from it, or mark it 'final: true'",
                key=True,
            )
        elif name not in can_finish:
            yield at.problem(
                ("states", name),
                f"a session in '{name}' can never finish: no path from it reaches a final state",
                "add a way from this state (or the loop it is in) to a final state",
                key=True,
            )


def _successors(spec: FlowSpec) -> dict[str, set[str]]:
    """Where each state leads (edges between known states only)."""
    successors: dict[str, set[str]] = defaultdict(set)
    for edge in spec.edges():
        if edge.source in spec.states and edge.target in spec.states:
            successors[edge.source].add(edge.target)
    return successors


def _closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in graph.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _upgrade_map(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    """The new side of ``upgrade.migrate``: targets exist, are reachable, not itself."""
    upgrade = spec.upgrade
    if isinstance(upgrade, str):
        return
    if spec.version in upgrade.versions:
        yield at.problem(
            ("upgrade", "from"),
            f"version {spec.version} cannot upgrade from itself",
            "name the older versions this one takes over, e.g. 'from: 1'",
        )
    initial = [name for name, state in spec.states.items() if state.initial]
    reachable = _closure(initial[0], _successors(spec)) if len(initial) == 1 else set(spec.states)
    for old, new in upgrade.migrate.items():
        path = ("upgrade", "migrate", old)
        if new not in spec.states:
            yield at.problem(
                path, f"unknown state '{new}'", did_you_mean(new, spec.states, "states")
            )
        elif new not in reachable:
            yield at.problem(
                path,
                f"'{old}' is migrated into '{new}', which this version never reaches",
                "migrate into a state the flow's transitions lead to",
            )


def check_upgrade(new: FlowSpec, old: FlowSpec) -> list[Problem]:
    """The old side of ``new.upgrade.migrate`` against version ``old``, located in ``new``.

    Run wherever the older version is known: ``flows check`` and ``flows deploy`` read
    it from the store, tests pass it directly.
    """
    upgrade = new.upgrade
    if isinstance(upgrade, str) or not upgrade.covers(old.version) or old.name != new.name:
        return []
    at = new.source.positions if new.source else Positions(f"<flow {new.name}>")
    problems: list[Problem] = []
    for old_state, new_state in upgrade.migrate.items():
        path = ("upgrade", "migrate", old_state)
        if old_state not in old.states:
            problems.append(
                at.problem(
                    path,
                    f"version {old.version} has no state '{old_state}'",
                    did_you_mean(old_state, old.states, f"states of version {old.version}"),
                    key=True,
                )
            )
        elif new_state in new.states and old.states[old_state].final != new.states[new_state].final:
            finished = old.states[old_state].final
            problems.append(
                at.problem(
                    path,
                    f"'{old_state}' is {'final' if finished else 'not final'} in version "
                    f"{old.version} but '{new_state}' is {'not final' if finished else 'final'}",
                    "a finished session cannot be reopened, nor a live one finished by a "
                    "migration: map final states to final states",
                    key=True,
                )
            )
    return problems


def _variance_roles(spec: FlowSpec, at: Positions, _: Registry) -> Iterator[Problem]:
    """A variance policy that sends sessions somewhere needs that state to exist."""
    variance = spec.variance
    states = spec.states
    review, refund = roles(spec.model_dump(by_alias=True))
    for key in ("review_state", "refund_state"):
        named = getattr(variance, key)
        if named is not None and named not in states:
            yield at.problem(
                ("variance", key), f"unknown state '{named}'", did_you_mean(named, states, "states")
            )
    needs = {"underpaid": variance.underpaid, "overpaid": variance.overpaid}
    for key, action in needs.items():
        if action in ("review", "refund_difference") and review is None:
            why = {
                "review": "",
                "refund_difference": "an excess refund that fails leaves the whole payment "
                "held for a person; ",
            }[action]
            yield at.problem(
                ("variance", key),
                f"'{key}: {action}' needs a review state",
                f"{why}add a state with 'status: requires_review', or name one in "
                "'variance.review_state'",
            )
        if action in ("refund_all", "wait_until_expiry", "refund_difference") and refund is None:
            yield at.problem(
                ("variance", key),
                f"'{key}: {action}' needs a refund state",
                "add a state whose effect refunds (e.g. 'effect: evm.refund'), or name one "
                "in 'variance.refund_state'",
            )
