"""Compile a :class:`FlowSpec` into a python-statemachine ``StateChart`` class.

The flow language is ours (timers, effects with outcomes, webhooks are not part of
python-statemachine's own schema), but the runtime is theirs: this module lowers a spec
to the mapping that ``statemachine.io.create_machine_class_from_definition`` accepts and
lets the library build the class. Guards become callables looked up by name in the
:class:`~flowengine.registry.Registry`; effects, timers and webhooks become entry and
transition actions that only *record a request* on the machine's model
(:class:`MachineContext`). Nothing is performed inside a transition: the engine commits
the requests with the new state, and workers carry them out (see DESIGN).

Classes are cached on the registry, per content hash (changing the registry drops its
cache). Constructing a python-statemachine instance is by far the most expensive part
of a step (it registers every callback anew), so each compiled flow keeps a small pool
of live machines and points one at the stored state for each event: the library reads
the current state from the model on every step, so this is the same restore, without
the construction. A machine that raised is never reused; one that reached a final
state (where the library stops its engine) gets a fresh engine first (:func:`_revive`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from statemachine import StateChart
from statemachine.exceptions import TransitionNotAllowed as _RuntimeNotAllowed
from statemachine.io import create_machine_class_from_definition

from .errors import FlowEngineError, TransitionNotAllowed
from .registry import Guard, Registry, default_registry
from .spec import Edge, FlowSpec, StateSpec

REVIEW_STATUS = "requires_review"


@dataclass(frozen=True)
class EffectRequest:
    """Perform ``effect`` (an adapter operation) for this session; requested in ``state``."""

    effect: str
    state: str
    amount: str | None = None
    """The state's ``amount:`` (held, due, excess), fixed in base units when requested."""
    kind: Literal["effect"] = "effect"


@dataclass(frozen=True)
class TimerRequest:
    """Send ``event`` later: ``after_seconds`` from now, or at the session's expiry."""

    event: str
    state: str
    after_seconds: int | None = None
    at: str | None = None
    kind: Literal["timer"] = "timer"


@dataclass(frozen=True)
class WebhookRequest:
    """Tell the merchant: a webhook event of ``type`` (e.g. ``session.succeeded``)."""

    type: str
    state: str
    kind: Literal["webhook"] = "webhook"


Request = EffectRequest | TimerRequest | WebhookRequest


@dataclass(slots=True)
class MachineContext:
    """The model a compiled machine is bound to.

    python-statemachine keeps the current state in ``state``; guards read ``session`` and
    ``payload``; entry and transition actions append to ``requests``. The engine builds
    one per step from the stored session, so nothing here outlives a transaction.
    """

    state: str | None = None
    session: Mapping[str, Any] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    tolerance: Callable[[int], int] = field(default=lambda expected: 0)
    """The flow's variance tolerance in base units for an expected amount."""


@dataclass(frozen=True)
class Step:
    """The result of one event: where the session was, where it is, what it asked for."""

    event: str
    source: str
    target: str
    requests: tuple[Request, ...]


class CompiledFlow:
    """A flow ready to run: its spec and the python-statemachine class built from it."""

    def __init__(
        self,
        spec: FlowSpec,
        machine_class: type[StateChart[Any]],
        guards: Mapping[str, Guard] | None = None,
    ) -> None:
        self.spec = spec
        self.machine_class = machine_class
        self._guards = dict(guards or {})
        self._pool: list[tuple[StateChart[Any], MachineContext]] = []
        self._entry_requests = {
            name: tuple(_entry_requests(name, state)) for name, state in spec.states.items()
        }
        accepted: dict[str, dict[str, None]] = {name: {} for name in spec.states}
        self._outgoing: dict[str, list[Edge]] = {name: [] for name in spec.states}
        for edge in spec.edges():
            accepted[edge.source][edge.event] = None
            self._outgoing[edge.source].append(edge)
        self._accepted = {name: tuple(events) for name, events in accepted.items()}

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self, session: Mapping[str, Any] | None = None) -> Step:
        """Enter the initial state for a new session: what its entry actions request.

        The initial state's entry actions are exactly its declared requests, so they are
        read from the spec rather than by building a machine for every new session.
        """
        initial = self.spec.initial_state
        return Step("", "", initial, self._entry_requests[initial])

    def send(
        self,
        state: str,
        event: str,
        payload: Mapping[str, Any] | None = None,
        session: Mapping[str, Any] | None = None,
    ) -> Step:
        """Apply ``event`` to a session stored in ``state``; raise if it is not accepted."""
        if state not in self._accepted:
            raise FlowEngineError(
                f"state '{state}' does not exist in flow {self.spec.name} version "
                f"{self.spec.version}"
            )
        machine, context = self._acquire(state)
        context.session = session or {}
        context.payload = payload or {}
        context.tolerance = self.spec.variance.allowance
        try:
            machine.send(event)
        except _RuntimeNotAllowed:
            raise TransitionNotAllowed(event, state, self.accepted_events(state)) from None
        target = context.state
        assert target is not None
        step = Step(event, state, target, tuple(context.requests))
        if machine.is_terminated:
            _revive(machine)
        self._pool.append((machine, context))  # list.append is atomic: thread-safe
        return step

    def _acquire(self, state: str) -> tuple[StateChart[Any], MachineContext]:
        """A live machine whose model holds ``state`` and no leftover requests."""
        try:
            machine, context = self._pool.pop()
        except IndexError:
            context = MachineContext(state=state)
            return self.machine_class(model=context), context
        context.state = state
        context.requests = []
        return machine, context

    def entry_requests(self, state: str) -> tuple[Request, ...]:
        """What entering ``state`` requests (its effect, timers and webhooks)."""
        return self._entry_requests[state]

    def accepted_events(self, state: str) -> tuple[str, ...]:
        """Events with a transition out of ``state`` (before guards are evaluated)."""
        return self._accepted.get(state, ())

    def is_review(self, state: str) -> bool:
        """A state where a person must decide (its status is ``requires_review``)."""
        return self.status_of(state) == REVIEW_STATUS

    def enabled(self, state: str, session: Mapping[str, Any]) -> list[tuple[Edge, bool]]:
        """Each way out of ``state``, and whether its guards hold for ``session`` now."""
        context = MachineContext(state=state, session=session)
        context.tolerance = self.spec.variance.allowance
        found = []
        for edge in self._outgoing.get(state, ()):
            transition = self.spec.transitions[edge.index] if edge.kind != "outcome" else None
            holds = True
            if transition is not None:
                holds = all(self._guards[g](context) for g in transition.guards) and not any(
                    self._guards[g](context) for g in transition.unless
                )
            found.append((edge, holds))
        return found

    def is_final(self, state: str) -> bool:
        return self.spec.states[state].final

    def status_of(self, state: str) -> str:
        return self.spec.states[state].status_name(state)


_cache_lock = threading.Lock()


def compile_flow(spec: FlowSpec, registry: Registry | None = None) -> CompiledFlow:
    """The compiled class for ``spec``, built once per content hash and registry."""
    registry = registry or default_registry()
    with _cache_lock:
        compiled: CompiledFlow | None = registry.compiled.get(spec.content_hash)
        if compiled is None:
            _check_names(spec, registry)
            guards = {name: info.check for name, info in registry.guards.items()}
            compiled = CompiledFlow(spec, _build_class(spec, registry), guards)
            registry.compiled[spec.content_hash] = compiled
        return compiled


def _check_names(spec: FlowSpec, registry: Registry) -> None:
    """A spec checked against another registry may name guards this one lacks."""
    missing = sorted(
        {g for t in spec.transitions for g in (*t.guards, *t.unless)} - registry.guards.keys()
    )
    if missing:
        raise FlowEngineError(
            f"flow {spec.name} uses guards this registry does not have: {', '.join(missing)}"
        )


def _revive(machine: StateChart[Any]) -> None:
    """Give a machine that reached a final state a fresh engine, ready for reuse.

    python-statemachine stops a machine's engine for good at a top-level final state.
    The engine is a separate object: these are the two lines the library's own
    ``StateChart.__setstate__`` runs after unpickling, and ``start`` returns at once
    because the model already holds a state. It spares rebuilding the whole machine
    (callback registration, ~0.7 ms) once per finished session. python-statemachine is
    pinned exactly in pyproject.toml because this uses its internals.
    """
    machine._engine = machine._get_engine()  # type: ignore[no-untyped-call]
    machine._engine.start()


def _entry_requests(name: str, state: StateSpec) -> list[Request]:
    """What entering ``state`` asks for: its effect, its timers, its webhooks."""
    requests: list[Request] = []
    if state.effect:
        requests.append(EffectRequest(state.effect, name, state.amount))
    for timer in state.timers:
        requests.append(TimerRequest(timer.event, name, timer.after_seconds, timer.at))
    for webhook in state.emit:
        requests.append(WebhookRequest(webhook, name))
    return requests


def _build_class(spec: FlowSpec, registry: Registry) -> type[StateChart[Any]]:
    states: dict[str, dict[str, Any]] = {}
    for name, state in spec.states.items():
        enter = [_record(request) for request in _entry_requests(name, state)]
        states[name] = {
            "name": state.label or name.replace("_", " ").capitalize(),
            "value": name,
            "initial": state.initial,
            "final": state.final,
            "enter": enter,
            "on": {},
        }
        for arm, (target, _) in spec.arms(name).items():
            states[name]["on"][f"{state.effect}.{arm}"] = [{"target": target}]

    for _, transition in spec.in_precedence():
        for source in transition.sources:
            definition: dict[str, Any] = {"target": transition.to}
            if transition.guards:
                definition["cond"] = [_guard(registry, g) for g in transition.guards]
            if transition.unless:
                definition["unless"] = [_guard(registry, g) for g in transition.unless]
            if transition.effects:
                definition["on"] = [_record(EffectRequest(e, source)) for e in transition.effects]
            states[source]["on"].setdefault(transition.event, []).append(definition)

    class_name = "".join(part.capitalize() for part in spec.name.split("_")) + "Flow"
    return create_machine_class_from_definition(
        class_name,
        states=states,  # type: ignore[arg-type]
        allow_event_without_transition=False,
        catch_errors_as_events=False,
    )


def _record(request: Request) -> Callable[..., None]:
    def record(model: MachineContext) -> None:
        model.requests.append(request)

    record.__name__ = f"request_{request.kind}"
    return record


def _guard(registry: Registry, name: str) -> Callable[..., bool]:
    check: Guard = registry.guards[name].check

    def guard(model: MachineContext) -> bool:
        return check(model)

    guard.__name__ = name
    return guard
