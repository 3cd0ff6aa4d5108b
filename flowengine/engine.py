"""The engine: apply one event to one session, atomically and idempotently.

``Engine.send`` is the whole contract of the library: load the session (locked), run
the compiled python-statemachine class of the flow version the session was created
with, and write the new state, a log row, the effects, timers and webhooks the
transition requested, and the updated amounts, all in one store transaction. Nothing
is performed here: workers (:mod:`flowengine.workers`) claim the outbox rows later
and feed outcomes back as events. A crash at any moment therefore leaves either the
whole step or nothing.

``send_many`` puts several events (for several sessions) in one transaction — group
commit — which is how a busy deployment amortises the cost of a durable commit.

Where the store's write lock covers the whole database (SQLite) and other writers keep
it busy, a send is first *planned* without it and committed under it if its session
did not change meanwhile (:mod:`flowengine.planning`): the state chart, most of a
send's work, then runs while other processes write, so they share the machine's cores.

What a person decides (overrides, retries) is in :mod:`flowengine.decisions`; the
event and its result in :mod:`flowengine.events`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import groupby
from typing import Any

from . import amounts
from .clock import Clock, SystemClock
from .compiler import CompiledFlow, Step, WebhookRequest
from .decisions import AllowedEvent, Decisions, ParkedWork
from .errors import (
    FieldError,
    FlowEngineError,
    IdempotencyConflict,
    SessionNotFound,
    TransitionNotAllowed,
    ValidationError,
)
from .events import ENGINE_META, EventInput, SendResult
from .flows import FlowRegistry, UnknownFlow, save_version_in
from .grouping import SendGroups
from .jsonvalue import plain
from .migration import migrate, next_event_state
from .outbox import request_rows, write_requests
from .planning import Draft, Plan
from .sessions import (
    Catalog,
    CreateSessionRequest,
    Session,
    new_client_secret,
    new_session_id,
    parse_create_request,
)
from .sessions.view import session_view
from .store import (
    EffectRecord,
    EventRecord,
    SessionRecord,
    Store,
    Transaction,
    open_store,
)

__all__ = [
    "CREATED_EVENT",
    "DEFERRED",
    "DEFER_LIMIT",
    "LATE_SUFFIX",
    "REFUND_EFFECT",
    "REVIEW_WEBHOOK",
    "AllowedEvent",
    "Engine",
    "EventInput",
    "ParkedWork",
    "SendResult",
]

_REFUSALS = (TransitionNotAllowed, SessionNotFound, IdempotencyConflict, ValidationError)
"""What refuses one event of a batch, writing nothing for it; the others go on."""

CREATED_EVENT = "session.created"
DEFERRED = "deferred"
"""Key in the session data: events waiting for a state that can take them."""
DEFER_LIMIT = 10
REFUND_EFFECT = "evm.refund"
LATE_SUFFIX = ":late"
REVIEW_WEBHOOK = "session.requires_review"


class Engine(Decisions):
    """Create sessions, feed them events, read them back.

    >>> engine = Engine(FlowRegistry.from_directory("flows"), "sqlite:///sessions.db")
    >>> session = engine.create_session({...})                      # doctest: +SKIP
    >>> engine.send(session.session_id, "payment_detected", {"units": 25_000_000})
    """

    def __init__(
        self,
        flows: FlowRegistry,
        store: Store | str = "memory://",
        clock: Clock | None = None,
        catalog: Catalog | None = None,
        *,
        optimistic: bool | None = None,
        group_commit: int = 1,
    ) -> None:
        self.flows = flows
        self.store = open_store(store) if isinstance(store, str) else store
        self.clock = clock or SystemClock()
        self.catalog = catalog or Catalog.default()
        self.optimistic = optimistic
        """Plan sends before taking the write lock (:mod:`flowengine.planning`): always
        (True), never (False), or when the store says so (None, the default: on SQLite
        while other writers keep it waiting)."""
        self._groups = SendGroups(self._send_batch, group_commit) if group_commit > 1 else None
        """Concurrent :meth:`send` calls share a commit, up to ``group_commit`` events
        (:mod:`flowengine.grouping`); 1, the default, gives every send a transaction of
        its own."""
        self._saved_versions: set[str] = set()

    # -- sessions ---------------------------------------------------------------------

    def create_session(self, request: CreateSessionRequest | Mapping[str, Any]) -> Session:
        """Validate ``request`` (the body of ``POST /v1/sessions``) and start a session."""
        if not isinstance(request, CreateSessionRequest):
            request = parse_create_request(request, self.catalog)
        try:
            flow = self.flows.current(request.flow)
        except UnknownFlow as exc:
            raise ValidationError([FieldError("flow", "unknown_flow", str(exc))]) from None
        now = self.clock.now_ms()
        data = request.to_session_data(self.catalog)
        data["clientSecret"] = new_client_secret()
        data["amounts"] = amounts.empty()
        step = flow.start(data)
        spec = flow.spec
        record = SessionRecord(
            session_id=new_session_id(),
            flow_name=spec.name,
            flow_version=spec.version,
            flow_hash=spec.content_hash,
            state=step.target,
            status=flow.status_of(step.target),
            data=data,
            created_at=now,
            updated_at=now,
            expires_at=now + request.expires_in * 1000,
            seq=1,
            entered_seq=1,
        )
        created = EventRecord(
            session_id=record.session_id,
            seq=1,
            event_id=CREATED_EVENT,
            event=CREATED_EVENT,
            source="",
            target=step.target,
            requests=request_rows(step.requests),
            created_at=now,
        )
        with self.store.transaction() as tx:
            saved = self._save_flow_version(tx, flow, now)
            tx.insert_session(record)
            tx.append_event(created)
            write_requests(tx, record, step.requests, now)
        if saved:  # only once committed: a rolled-back create must not skip it next time
            self._saved_versions.add(saved)
        return session_view(record)

    def get(self, session_id: str, *, with_history: bool = False) -> Session:
        with self.store.transaction() as tx:
            record = tx.get_session(session_id)
            if record is None:
                raise SessionNotFound(session_id)
            history = tx.events(session_id) if with_history else None
        return session_view(record, history)

    def record(self, session_id: str) -> SessionRecord:
        with self.store.transaction() as tx:
            record = tx.get_session(session_id)
        if record is None:
            raise SessionNotFound(session_id)
        return record

    def history(self, session_id: str) -> list[EventRecord]:
        """The session's event log, oldest first."""
        with self.store.transaction() as tx:
            if tx.get_session(session_id) is None:
                raise SessionNotFound(session_id)
            return tx.events(session_id)

    # -- events -----------------------------------------------------------------------

    def send(
        self,
        session_id: str,
        event: str,
        payload: Mapping[str, Any] | None = None,
        *,
        event_id: str | None = None,
        external_ref: str | None = None,
    ) -> SendResult:
        """Apply ``event`` to the session in one transaction and return the outcome.
        With ``Engine(..., group_commit=N)``, sends made at the same time from other
        threads may share that transaction; each gets its own outcome, as if alone.

        Raises :class:`TransitionNotAllowed` (nothing written) when the session's state
        does not accept the event, :class:`SessionNotFound`, or
        :class:`IdempotencyConflict` when ``event_id`` was used for a different event.
        """
        item = EventInput(session_id, event, payload or {}, event_id, external_ref)
        if self._groups is not None:
            result = self._groups.send(item)  # alone, or with concurrent sends
        else:
            (result,) = self._send_batch([item])
        if isinstance(result, FlowEngineError):
            raise result  # nothing was written for it
        return result

    def send_many(self, items: Sequence[EventInput]) -> list[SendResult | FlowEngineError]:
        """Apply several events in ONE transaction (group commit).

        A refused event (not allowed, unknown session, idempotency conflict, invalid
        payload) is returned as its error in place and writes nothing; the others are
        committed together.
        """
        return self._send_batch(items)

    def _send_batch(self, items: Sequence[EventInput]) -> list[SendResult | FlowEngineError]:
        """Apply ``items`` in one write transaction; refused ones come back as their
        error, in place. The batch may be planned before the write lock is taken
        (:attr:`optimistic`, :mod:`flowengine.planning`)."""
        results: dict[int, SendResult | FlowEngineError] = {}
        checked: dict[int, EventInput] = {}
        for index, item in enumerate(items):  # before the batch read uses their ids
            try:
                checked[index] = _checked(_from_caller(item))
            except ValidationError as exc:
                results[index] = exc
        # Applied in session-id order (stable, so each session's own events keep their
        # order): row locks are then always taken in one order, and two concurrent
        # batches on PostgreSQL cannot deadlock on each other.
        order = sorted(checked, key=lambda i: checked[i].session_id)
        groups = [
            (session_id, list(indexes))
            for session_id, indexes in groupby(order, key=lambda i: checked[i].session_id)
        ]
        plans = self._plan(checked, groups) if groups and self.plans_now() else {}
        with self.store.transaction() as tx:
            self._commit_batch(tx, checked, groups, plans, results)
        return [results[index] for index in range(len(items))]

    def plans_now(self) -> bool:
        """Whether the next sends are planned before the write lock is taken."""
        if self.optimistic is not None:
            return self.optimistic
        # A store written before plan_sends existed does not plan.
        return bool(getattr(self.store, "plan_sends", False))

    def _plan(
        self, checked: Mapping[int, EventInput], groups: Sequence[tuple[str, list[int]]]
    ) -> dict[str, Plan]:
        """Each session's events applied to a :class:`Draft` in a read transaction, no
        write lock held (see :mod:`flowengine.planning`). A session whose plan needs
        more than its own rows, or fails for another reason than a refusal, gets none:
        it is applied under the lock, where such a failure is met as without planning."""
        plans: dict[str, Plan] = {}
        with self.store.reading() as view:
            sessions, known_events = view.read_for_events(
                [(checked[i].session_id, checked[i].event_id) for _, group in groups for i in group]
            )
            for session_id, group in groups:
                base = sessions.get(session_id)
                draft = Draft(view, base)
                results: dict[int, SendResult | FlowEngineError] = {}
                try:
                    self._apply_group(draft, checked, group, base, known_events, results)
                except Exception:  # NeedsLock, or a failure the lock path will report
                    continue
                plans[session_id] = Plan(draft, results)
        return plans

    def _commit_batch(
        self,
        tx: Transaction,
        checked: Mapping[int, EventInput],
        groups: Sequence[tuple[str, list[int]]],
        plans: Mapping[str, Plan],
        results: dict[int, SendResult | FlowEngineError],
    ) -> None:
        """Apply the batch in ``tx``: a session whose plan read its current ``seq`` gets
        the plan's writes; the others are applied here. The batch is read up front (its
        sessions, locked, and the log rows of the event ids of the sessions not planned:
        one round trip on PostgreSQL)."""
        locked, known_events = tx.lock_for_events(
            [
                (session_id, None if session_id in plans else checked[i].event_id)
                for session_id, group in groups
                for i in group
            ]
        )
        for session_id, group in groups:
            record = locked.get(session_id)
            plan = plans.get(session_id)
            if plan is not None and plan.holds_for(record):
                plan.draft.replay(tx)
                results.update(plan.results)
                continue
            # Without a plan, or another sender got in first: apply it now. The event ids
            # of a planned session were not looked up just now (its own lookups do it).
            known = known_events if plan is None else None
            self._apply_group(tx, checked, group, record, known, results)

    def _apply_group(
        self,
        tx: Transaction,
        checked: Mapping[int, EventInput],
        group: Sequence[int],
        record: SessionRecord | None,
        known_events: Mapping[tuple[str, str], EventRecord] | None,
        results: dict[int, SendResult | FlowEngineError],
    ) -> None:
        """Apply one session's events of a batch, in order; ``record`` is the session
        as the batch read it (its second event reads afresh); refusals go to ``results``."""
        for position, index in enumerate(group):
            item = checked[index]
            try:
                if position:
                    results[index] = self.apply(tx, item, checked=True)
                elif record is None:
                    raise SessionNotFound(item.session_id)
                else:
                    results[index] = self.apply(
                        tx, item, checked=True, locked=record, known_events=known_events
                    )
            except _REFUSALS as exc:
                results[index] = exc

    def plan_event(self, item: EventInput) -> Plan | None:
        """``item`` applied to a draft outside any write transaction, for
        :meth:`apply_planned` (a worker that must check its own rows under the lock
        first); None when plans do not pay now or this one needs the lock."""
        return self.plan_events([item])[0]

    def plan_events(self, items: Sequence[EventInput]) -> list[Plan | None]:
        """:meth:`plan_event` for each of ``items``, all in one read transaction (a
        worker's batch). Only the first event of each session is planned: a later one
        would be planned on a state its commit may not find (it gets None and is
        applied under the lock, like any item that needs it)."""
        if not self.plans_now():
            return [None] * len(items)
        checked: dict[int, EventInput] = {}
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.session_id in first:
                continue
            try:
                checked[index] = _checked(item)
            except ValidationError:
                continue  # refused under the lock, with the caller's own handling
            first[item.session_id] = index
        try:
            plans = self._plan(checked, [(sid, [index]) for sid, index in first.items()])
        except Exception:
            # No plan, whatever went wrong (a guard with a bug, the store): the worker
            # applies the events under the lock after its own checks, and meets the
            # same failure there, where it knows what to do with it.
            return [None] * len(items)
        return [
            plans.get(item.session_id) if first.get(item.session_id) == index else None
            for index, item in enumerate(items)
        ]

    def apply_planned(
        self,
        tx: Transaction,
        item: EventInput,
        plan: Plan | None,
        record: SessionRecord,
        known_events: Mapping[tuple[str, str], EventRecord] | None = None,
    ) -> SendResult:
        """:meth:`apply` for a session ``tx`` has locked (``record``): the plan's
        writes if the session is still the one planned on, else the event afresh."""
        if plan is None or not plan.holds_for(record):
            return self.apply(tx, item, locked=record, known_events=known_events)
        plan.draft.replay(tx)
        (result,) = plan.results.values()
        if isinstance(result, FlowEngineError):
            raise result
        return result

    def apply(
        self,
        tx: Transaction,
        item: EventInput,
        *,
        reoffer: bool = False,
        checked: bool = False,
        locked: SessionRecord | None = None,
        known_events: Mapping[tuple[str, str], EventRecord] | None = None,
    ) -> SendResult:
        """Apply one event inside an open transaction (workers use this to fire timers
        and feed effect outcomes in the same transaction as their own bookkeeping).

        ``locked``: the session as the caller already read it with ``for_update`` in
        this transaction (saves reading and locking it twice). ``known_events``: the log rows
        the caller already looked up by (session id, event id) in this transaction; an
        event id missing from it was not logged. ``reoffer``: an event deferred earlier,
        offered again; it is not deferred a second time, and not checked again (it was
        when it arrived; entries kept by earlier releases predate the check, and the
        money they report must not be refused now). ``checked``: the caller has passed
        ``item`` through :func:`_checked` already.
        """
        if not (reoffer or checked):
            item = _checked(item)  # refused before any write
        record = locked or tx.get_session(item.session_id, for_update=True)
        if record is None:
            raise SessionNotFound(item.session_id)
        prior = self._prior(tx, item, known_events)
        if prior is not None:
            return SendResult(record, prior, duplicate=True)
        flow = self._flow_for(tx, record)
        if flow.is_final(record.state):
            return self._late(tx, record, flow, item)
        # A newer version that takes this session over gets the event in its target
        # state; the move is written only once the event is taken (or deferred).
        flow, state, moving = next_event_state(tx, record, flow, self.flows.find(record.flow_name))
        step: Step | None = None
        try:
            step = flow.send(state, item.event, item.payload, session=record.data)
        except TransitionNotAllowed as exc:
            deferrable = not reoffer and item.event in flow.spec.defer
            if not deferrable or len(record.data.get(DEFERRED, [])) >= DEFER_LIMIT:
                raise TransitionNotAllowed(
                    exc.event, exc.state, exc.allowed, session_id=record.session_id
                ) from None
        if moving:
            record = migrate(tx, record, flow, state, item.event, self.clock.now_ms())
        if step is None:
            return self._defer(tx, record, item)
        now = self.clock.now_ms()
        seq = record.seq + 1
        data = dict(record.data)
        data["amounts"] = amounts.apply(
            data.get("amounts", amounts.empty()), item.event, item.payload
        )
        updated = replace(
            record,
            state=step.target,
            status=flow.status_of(step.target),
            data=data,
            updated_at=now,
            seq=seq,
            entered_seq=seq,
        )
        logged = EventRecord(
            session_id=record.session_id,
            seq=seq,
            event_id=item.event_id or f"auto:{uuid.uuid4().hex}",
            event=item.event,
            source=record.state,
            target=step.target,
            payload=dict(item.payload),
            requests=request_rows(step.requests),
            created_at=now,
            external_ref=item.external_ref,
            meta=dict(item.meta),
        )
        tx.append_event(logged)
        tx.update_session(updated)
        write_requests(tx, updated, step.requests, now)
        if updated.data.get(DEFERRED):
            updated = self._reoffer_deferred(tx, updated)
        return SendResult(updated, logged)

    def _defer(self, tx: Transaction, record: SessionRecord, item: EventInput) -> SendResult:
        """Keep an event the state cannot take yet, to offer it again after a transition.
        (``apply`` has checked its payload, so a re-offer cannot fail on bad units.)"""
        entry = {
            "event": item.event,
            "payload": dict(item.payload),
            "event_id": item.event_id,
            "external_ref": item.external_ref,
            "seq": record.seq + 1,
        }
        data = {**record.data, DEFERRED: [*record.data.get(DEFERRED, []), entry]}
        return self._log_unapplied(
            tx,
            replace(record, data=data),
            item,
            "deferred: the state cannot take it yet",
            notify=False,
            count=False,
            meta={"deferred": True},
        )

    def _reoffer_deferred(self, tx: Transaction, record: SessionRecord) -> SessionRecord:
        """Offer each deferred event, oldest first, now that the state has changed; again
        while a pass takes any (one taken may open the way for one offered before it);
        those no state takes keep waiting."""
        waiting = list(record.data.get(DEFERRED, []))
        tx.update_session(replace(record, data={**record.data, DEFERRED: []}))
        while True:
            still: list[Any] = []
            for entry in waiting:
                item = EventInput(
                    record.session_id,
                    entry["event"],
                    entry["payload"],
                    event_id=f"{entry['event_id'] or 'deferred'}:{entry['seq']}:applied",
                    meta={"deferred_from": entry["seq"], "external_ref": entry["external_ref"]},
                )
                try:
                    self.apply(tx, item, reoffer=True)
                except TransitionNotAllowed:
                    still.append(entry)
                except FlowEngineError as exc:
                    # Writes of this transaction are queued already: failing the whole
                    # transaction is right, reporting just the event as refused is not.
                    raise FlowEngineError(
                        f"session {record.session_id}: re-offering deferred event "
                        f"'{entry['event']}' (#{entry['seq']}) failed: {exc}"
                    ) from exc
            if not still or len(still) == len(waiting):
                break
            waiting = still
        latest = tx.get_session(record.session_id, for_update=True)
        assert latest is not None
        if still:
            latest = replace(latest, data={**latest.data, DEFERRED: still})
            tx.update_session(latest)
        return latest

    def _late(
        self, tx: Transaction, record: SessionRecord, flow: CompiledFlow, item: EventInput
    ) -> SendResult:
        """An event for a finished session: recorded, never refused, routed by ``on_late``.

        A late refund gives back exactly what this late event brought (its ``units``,
        fixed in the effect row now), never "whatever the session holds" when the
        refund runs: two late payments refunded at once, or a session a person settled
        by hand, would otherwise pay out more than arrived. Only a payment is refunded:
        a late event that brought no money (an outcome, a refund booked by hand) goes
        to review instead. So does a late refund that did not go through: the payer's
        money is still held, and a person must know.
        """
        if str(item.meta.get("effect", "")).endswith(LATE_SUFFIX):
            action = "ignore" if item.event.endswith(".done") else "review"
        else:
            action = flow.spec.late_action(item.event)
        moved = amounts.movement(item.event, item.payload)
        if action == "refund" and (moved is None or moved.kind != "received" or not moved.units):
            action = "review"
        result = self._log_unapplied(
            tx,
            record,
            item,
            f"late: the session is {record.state} ({action})",
            notify=action == "review",
            count=True,
            meta={"late": action},
        )
        if action == "refund" and not result.duplicate:
            assert moved is not None
            held = amounts.totals(result.record.data.get("amounts", {}))["held"]
            owed = sum(  # late refunds requested and not yet counted as refunded
                int((effect.params or {}).get("units", 0))
                for effect in tx.effects(record.session_id)
                if effect.key.endswith(LATE_SUFFIX)
                and effect.status in ("pending", "running", "review")
            )
            refund = min(moved.units, held - owed)  # never more than the session holds
            if refund <= 0:
                return result
            now = self.clock.now_ms()
            tx.add_effect(
                EffectRecord(
                    key=f"{record.session_id}:{REFUND_EFFECT}:{result.event.seq}{LATE_SUFFIX}",
                    session_id=record.session_id,
                    effect=REFUND_EFFECT,
                    state=record.state,
                    seq=record.entered_seq,
                    status="pending",
                    attempts=0,
                    available_at=now,
                    created_at=now,
                    params={"units": refund},
                )
            )
        return result

    def record_unapplied(self, tx: Transaction, item: EventInput, reason: str) -> SendResult:
        """Log a fact the session's state cannot take, without a transition.

        Money that moved must never vanish because the flow had moved on (an effect
        that completed after the session left its state, say): the event is logged
        with its payload, counted in the amounts, and the merchant is told with a
        ``session.requires_review`` webhook.
        """
        item = _checked(item)
        record = tx.get_session(item.session_id, for_update=True)
        if record is None:
            raise SessionNotFound(item.session_id)
        return self._log_unapplied(tx, record, item, reason, notify=True, count=True)

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
    ) -> SendResult:
        prior = self._prior(tx, item)
        if prior is not None:
            return SendResult(record, prior, duplicate=True)
        now = self.clock.now_ms()
        data = dict(record.data)
        if count:
            data["amounts"] = amounts.apply(
                data.get("amounts", amounts.empty()), item.event, item.payload
            )
        updated = replace(record, data=data, updated_at=now, seq=record.seq + 1)
        logged = EventRecord(
            session_id=record.session_id,
            seq=updated.seq,
            event_id=item.event_id or f"auto:{uuid.uuid4().hex}",
            event=item.event,
            source=record.state,
            target=record.state,
            payload=dict(item.payload),
            created_at=now,
            external_ref=item.external_ref,
            meta={**item.meta, **(meta or {}), "applied": False, "reason": reason},
        )
        tx.append_event(logged)
        tx.update_session(updated)
        if notify:
            write_requests(tx, updated, [WebhookRequest(REVIEW_WEBHOOK, record.state)], now)
        return SendResult(updated, logged)

    # -- internals --------------------------------------------------------------------

    def _prior(
        self,
        tx: Transaction,
        item: EventInput,
        known_events: Mapping[tuple[str, str], EventRecord] | None = None,
    ) -> EventRecord | None:
        """The earlier log row for this same event, if it was applied already."""
        if item.event_id is not None:
            prior = (
                tx.find_event(item.session_id, item.event_id)
                if known_events is None
                else known_events.get((item.session_id, item.event_id))
            )
            if prior is not None:
                if prior.event != item.event or dict(prior.payload) != dict(item.payload):
                    raise IdempotencyConflict(
                        f"event id {item.event_id!r} of session {item.session_id} was used for "
                        f"'{prior.event}' with another payload; use a new event id"
                    )
                return prior
        if item.external_ref is not None:
            prior = tx.find_event_by_ref(item.session_id, item.external_ref)
            if prior is not None and prior.event != item.event:
                raise IdempotencyConflict(
                    f"external ref {item.external_ref!r} of session {item.session_id} already "
                    f"reported '{prior.event}', not '{item.event}'; a different fact needs "
                    "its own reference"
                )
            return prior
        return None

    def flow_of(self, tx: Transaction, record: SessionRecord) -> CompiledFlow:
        """The compiled flow version ``record`` runs (for workers that need its spec)."""
        return self._flow_for(tx, record)

    def _flow_for(self, tx: Transaction, record: SessionRecord) -> CompiledFlow:
        """The flow version this session was created with (never "whatever is current")."""
        flow = self.flows.by_hash(record.flow_hash)
        if flow is not None:
            return flow
        stored = tx.get_flow_version(record.flow_hash)
        if stored is None:
            raise FlowEngineError(
                f"session {record.session_id} runs flow {record.flow_name} version "
                f"{record.flow_version} ({record.flow_hash[:12]}), which neither this engine "
                "nor the store knows"
            )
        return self.flows.load_version(stored.content_hash, stored.text, stored.name)

    def _save_flow_version(self, tx: Transaction, flow: CompiledFlow, now: int) -> str | None:
        """Store the flow version (insert if absent) unless this engine already did."""
        spec = flow.spec
        if spec.content_hash in self._saved_versions:
            return None
        save_version_in(tx, spec, now)
        return spec.content_hash


def _from_caller(item: EventInput) -> EventInput:
    """``item``, refused if its caller set a key of :data:`ENGINE_META` in its meta:
    the engine would take the event for one of its own (a late refund's outcome, say,
    which is never refunded again) and decide differently."""
    taken = sorted(ENGINE_META.intersection(item.meta))
    if taken:
        raise ValidationError(
            [
                FieldError(
                    f"meta.{key}",
                    "reserved",
                    f"'{key}' is a key the engine writes itself; give your note another name",
                )
                for key in taken
            ]
        )
    return item


def _checked(item: EventInput) -> EventInput:
    """``item`` as it will be stored; refused if its payload, metadata or names (event,
    event id, external ref) are not plain JSON every store keeps as given (see
    :mod:`flowengine.jsonvalue`), or its units are not base units."""
    payload, payload_errors = plain(item.payload, "payload")
    meta, meta_errors = plain(item.meta, "meta")
    names = {
        "session_id": item.session_id,
        "event": item.event,
        "event_id": item.event_id,
        "external_ref": item.external_ref,
    }
    _, name_errors = plain(names, "")
    if payload_errors or meta_errors or name_errors:
        named = [replace(e, param=e.param.lstrip(".")) for e in name_errors]
        raise ValidationError(payload_errors + meta_errors + named)
    amounts.movement(item.event, payload)
    if payload is item.payload and meta is item.meta:
        return item
    return replace(item, payload=payload, meta=meta)
