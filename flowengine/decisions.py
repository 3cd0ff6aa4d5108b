"""What a person does with a session the machine could not settle.

A session in a review state, an effect the workers parked after too many failures, a
timer whose firing raised: each waits for someone to decide. The decisions are
transitions or retries like any other write (one transaction, idempotent where it
matters), with one difference: each carries who decided and why, in the session's log
beside the machine's own steps, so an audit reads the whole story.

:class:`Decisions` is part of :class:`~flowengine.engine.Engine` (``engine.override``,
``engine.retry_effect``, …); it is kept here so the engine module holds the event path
alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .clock import Clock
from .compiler import CompiledFlow
from .errors import FieldError, FlowEngineError, SessionNotFound, ValidationError
from .events import EventInput, SendResult
from .flows import FlowRegistry
from .migration import next_event_state
from .store import (
    EffectAttempt,
    EffectRecord,
    SessionRecord,
    Store,
    TimerRecord,
    Transaction,
)


@dataclass(frozen=True)
class AllowedEvent:
    """An event a session's state takes, where it leads, and whether its guards hold now."""

    event: str
    target: str
    guard: str
    enabled: bool
    kind: str


@dataclass(frozen=True)
class ParkedWork:
    """What the workers gave up on: effects parked for review, timers that failed."""

    effects: list[EffectRecord]
    timers: list[TimerRecord]


class _Engine(Protocol):
    """What the decisions use of the engine they are part of."""

    store: Store
    clock: Clock
    flows: FlowRegistry

    def apply(self, tx: Transaction, item: EventInput) -> SendResult: ...

    def flow_of(self, tx: Transaction, record: SessionRecord) -> CompiledFlow: ...

    def _log_unapplied(
        self,
        tx: Transaction,
        record: SessionRecord,
        item: EventInput,
        reason: str,
        *,
        notify: bool,
        count: bool,
        meta: Mapping[str, Any] | None = None,
    ) -> SendResult: ...


class Decisions:
    """The engine's methods for a person's decisions (see the module docstring)."""

    def allowed_events(self: _Engine, session_id: str) -> list[AllowedEvent]:
        """The events the session's state takes, with targets, guards and their value now.

        What a person resolving a session in review chooses from (see :meth:`override`).
        When a newer version of its flow takes the session over at its next event, the
        events are those of the state it moves to there: an event is applied in that
        state or refused (:mod:`flowengine.migration`), so its own version's list would
        offer choices the override then refuses.
        """
        with self.store.transaction() as tx:
            record = tx.get_session(session_id)
            if record is None:
                raise SessionNotFound(session_id)
            current = self.flows.find(record.flow_name)
            flow, state, _ = next_event_state(tx, record, self.flow_of(tx, record), current)
        return [
            AllowedEvent(edge.event, edge.target, edge.guard, holds, edge.kind)
            for edge, holds in flow.enabled(state, record.data)
        ]

    def override(
        self: _Engine,
        session_id: str,
        event: str,
        *,
        reason: str,
        actor: str,
        payload: Mapping[str, Any] | None = None,
    ) -> SendResult:
        """Apply one of the :meth:`allowed_events` by hand, recording who and why.

        The log row carries ``{"override": true, "actor", "reason"}`` in its meta, so an
        audit of the session shows every human decision next to the machine's. Effects
        of the session parked for review are settled by the decision: they are marked
        ``cancelled`` (with the actor and reason), in the same transaction.

        Refused, writing nothing, while an effect of the session is under way (a runner
        holds it, or it answered ``pending``/``unknown`` and waits for another look):
        its outcome is not known, and deciding, say, that a delivery failed while it may
        have gone through would refund money that was also delivered. Once the outcome
        is in, or the looks have run out (the flow then moves the session, by default to
        review, and parks the effect), the decision is made on facts.
        """
        _require_audit(reason, actor)
        item = EventInput(
            session_id,
            event,
            payload or {},
            event_id=f"override:{uuid.uuid4().hex}",
            meta={"override": True, "actor": actor, "reason": reason},
        )
        with self.store.transaction() as tx:
            tx.get_session(session_id, for_update=True)  # no runner starts one meanwhile
            for effect in tx.effects(session_id):
                if effect.status == "running" or (
                    effect.status == "pending" and effect.attempts > 0
                ):
                    raise FlowEngineError(
                        f"session {session_id}: effect {effect.key} is under way (attempt "
                        f"{effect.attempts}, {effect.status}); its outcome is not known yet. "
                        "Wait for the runner's answer, or for its looks to run out (the "
                        "session then goes to review), then decide"
                    )
            result = self.apply(tx, item)
            for parked in tx.effects(session_id):
                if parked.status == "review":
                    note = f"settled by override {event} ({actor}: {reason})"
                    tx.update_effect(replace(parked, status="cancelled", last_error=note))
            return result

    def retry_effect(self: _Engine, key: str, *, reason: str, actor: str) -> EffectRecord:
        """Put an effect parked for review back in the queue (say, once a broken adapter
        is fixed), recording who and why in the session's log.

        Safe to do whatever happened before: the runner asks the adapter ``status_of``
        the key before performing a retried effect, so a transfer that did go through
        is reported, not made twice. Refused (nothing written) unless the effect is
        parked and its session is still in the state that requested it.
        """
        _require_audit(reason, actor)
        with self.store.transaction() as tx:
            effect = tx.get_effect(key)
            if effect is None:
                raise FlowEngineError(f"no effect {key!r}")
            # Locked in the runner's order, session then effect, and read again locked.
            record = tx.get_session(effect.session_id, for_update=True)
            effect = tx.get_effect(key, for_update=True)
            assert effect is not None
            assert record is not None
            if effect.status != "review":
                raise FlowEngineError(
                    f"effect {key} is {effect.status}, not parked for review: nothing to retry"
                )
            if (record.state, record.entered_seq) != (effect.state, effect.seq):
                raise FlowEngineError(
                    f"session {record.session_id} has left the state that requested effect "
                    f"{key} (it is in '{record.state}'); settle it with an override instead"
                )
            now = self.clock.now_ms()
            retried = replace(
                effect,
                status="pending",
                available_at=now,
                lease_until=None,
                claimed_by=None,
                last_error=f"retried by {actor}: {reason}",
            )
            tx.update_effect(retried)
            # On the effect's own record too: it counts as a finished attempt, so an
            # effect parked after runners kept dying on it gets its full share again.
            tx.record_attempt(
                EffectAttempt(key, effect.attempts, now, now, "retried", f"{actor}: {reason}")
            )
            _log_decision(self, tx, record, "effect.retried", {"effect": key}, reason, actor)
            return retried

    def retry_timer(
        self: _Engine, session_id: str, timer_id: int, *, reason: str, actor: str
    ) -> None:
        """Let a timer that ``failed`` to fire (firing it raised) fire again, once the
        cause is fixed; logged in the session with actor and reason. Refused, writing
        nothing, unless the timer failed and its session is still in the state that set
        it (a timer is only valid there)."""
        _require_audit(reason, actor)
        with self.store.transaction() as tx:
            record = tx.get_session(session_id, for_update=True)
            if record is None:
                raise SessionNotFound(session_id)
            timer = next((t for t in tx.timers(session_id) if t.timer_id == timer_id), None)
            if timer is None or timer.status != "failed":
                found = "no such timer" if timer is None else f"it is {timer.status}"
                raise FlowEngineError(
                    f"timer {timer_id} of session {session_id} did not fail ({found}): "
                    "nothing to retry"
                )
            if (record.state, record.entered_seq) != (timer.state, timer.entered_seq):
                raise FlowEngineError(
                    f"session {session_id} has left the state that set timer {timer_id} "
                    f"(it is in '{record.state}'): the timer no longer applies"
                )
            tx.finish_timer(timer_id, "pending")  # already due: the next worker pass fires it
            payload = {"timer": timer_id, "event": timer.event}
            _log_decision(self, tx, record, "timer.retried", payload, reason, actor)

    def parked_work(self: _Engine, limit: int = 100) -> ParkedWork:
        """What the workers gave up on and left for a person, oldest first: effects in
        ``review`` (an adapter that kept raising, an outcome nobody could take) and
        timers that ``failed`` to fire. An override of the session settles its effects."""
        with self.store.transaction() as tx:
            return ParkedWork(tx.parked_effects(limit), tx.failed_timers(limit))

    def review_queue(self: _Engine, flow_names: Sequence[str] | None = None) -> list[SessionRecord]:
        """Sessions waiting in a review state (status ``requires_review``), oldest first."""
        waiting: list[SessionRecord] = []
        with self.store.transaction() as tx:
            for name in flow_names or tx.flow_names():
                for record in tx.sessions_of_flow(name):
                    if self.flow_of(tx, record).is_review(record.state):
                        waiting.append(record)
        return sorted(waiting, key=lambda r: (r.updated_at, r.session_id))


def _require_audit(reason: str, actor: str) -> None:
    """A human decision needs a reason and an actor, for the audit log."""
    if not reason.strip() or not actor.strip():
        raise ValidationError(
            [
                FieldError(
                    "reason" if not reason.strip() else "actor",
                    "required",
                    "a decision by hand needs a reason and an actor, for the audit log",
                )
            ]
        )


def _log_decision(
    engine: _Engine,
    tx: Transaction,
    record: SessionRecord,
    event: str,
    payload: Mapping[str, Any],
    reason: str,
    actor: str,
) -> None:
    """Log a person's decision that is not a transition (a retry), with actor and
    reason, in the session's log: the audit trail beside the overrides."""
    audit = EventInput(
        record.session_id,
        event,
        payload,
        event_id=f"decision:{uuid.uuid4().hex}",
        meta={"override": True, "actor": actor},
    )
    engine._log_unapplied(tx, record, audit, reason, notify=False, count=False)
