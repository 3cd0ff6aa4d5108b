"""The effect runner: perform outbox effects through their adapters, feed outcomes back.

1. Claim runnable effects in a short transaction (status ``running``, a lease, one more
   attempt). The lease is renewed while the adapter call runs; a worker that dies
   leaves it to expire, and the next runner reclaims.
2. Just before performing each one, check in a transaction that this runner still
   holds the claim (and extend its lease), and that the session still waits in the
   state that asked for the effect (same state, same entry). The session and the
   effect row are locked, in that order, for every check-then-write. An effect for a
   session that has moved on (a reorg, an override, a timer) is never performed: on
   its first attempt it is cancelled; after that an earlier attempt may have moved
   money, so the adapter is asked ``status_of`` the key, and the effect is cancelled
   only if the adapter never saw it. If the call of a runner that lost its lease was
   still under way then and answers afterwards (with anything but ``failed``), the
   effect is looked at again, so that money that call moved is counted.
3. Outside any transaction, call the adapter. When an earlier attempt may have run
   (this is not the first attempt), ask ``status_of(key)`` first and perform only when
   the adapter has never seen the key: that is what makes delivery at most once.
4. Record the attempt: a ``started`` row as the call begins (in the step-2
   transaction), its answer when it returns (its own transaction: what the adapter
   answered stays on record even if the outcome cannot be applied). Then, in one
   transaction, apply the outcome event (``<effect>.done`` for ``ok``,
   ``<effect>.failed``) with an event id derived from the key (so a duplicate feed is
   a no-op), and close the outbox row. Where sends are planned outside the write lock
   (:mod:`flowengine.planning`), so is the outcome: only the checks of the effect row
   and the plan's writes run under it. An outcome the session's state no longer
   accepts is still logged, counted and reported for review: money that moved never
   disappears.
5. ``pending`` and ``unknown`` are not answers: the runner asks ``status_of`` again on
   the state's ``poll:`` schedule (default: exponential backoff, capped, 20 looks).
   When the schedule runs out it sends ``<effect>.pending`` / ``<effect>.unknown``:
   the flow's arm for it decides, and without one the session is reported for review
   (``session.requires_review``), never silently failed.

An error in one effect (a bug, a malformed adapter answer) parks that effect in
``review`` and the runner goes on with the others.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..adapters.base import EffectAdapter, EffectCall, EffectResult
from ..engine import Engine, EventInput
from ..errors import IdempotencyConflict, StoreError, TransitionNotAllowed
from ..jsonvalue import storable_text
from ..store import EffectAttempt, EffectRecord, Transaction
from .loop import run_until

log = logging.getLogger("flowengine.workers.effects")

OUTCOME_EVENTS = {"ok": "done", "failed": "failed"}
LEFT_STATE = "the session left the state that requested it"
ANSWERED_AFTER_CANCEL = (
    "a call cut off by a takeover answered after the effect was cancelled: looking again, "
    "so that money it moved is counted"
)
"""Why an effect cancelled by a takeover is pending again: its earlier call came back
with an answer other than "failed" (money may have moved). The next runner asks the
adapter, which knows the key now, and logs and counts what it says (the session has
moved on: the outcome is recorded without a transition, and a person told)."""
STARTED = "started"
"""The outcome of an attempt row written as its call to the adapter starts."""


@dataclass(frozen=True)
class RetryPolicy:
    """When a state declares no ``poll:`` schedule: look again after base·2ⁿ (at most
    ``cap``), ``max_looks`` times in all, then report the outcome (see module doc)."""

    base_ms: int = 1_000
    cap_ms: int = 300_000
    max_looks: int = 20
    max_unfinished: int = 3
    """Calls in a row to an effect's adapter that never came back (the runner died
    during the call) before the effect is parked for a person: a call that kills its
    process must not be retried for ever, holding up the rest. A claim taken over
    before its call started does not count."""

    def delay_ms(self, attempt: int) -> int:
        return int(min(self.cap_ms, self.base_ms * 2 ** max(0, attempt - 1)))

    def next_look(self, attempt: int, schedule: list[int] | None) -> int | None:
        """Milliseconds until the next look after ``attempt`` looks, or None: give up."""
        if schedule is not None:
            return schedule[attempt - 1] * 1000 if attempt <= len(schedule) else None
        return self.delay_ms(attempt) if attempt < self.max_looks else None


class EffectRunner:
    def __init__(
        self,
        engine: Engine,
        adapters: Mapping[str, EffectAdapter],
        *,
        worker_id: str | None = None,
        batch: int = 20,
        lease_ms: int = 60_000,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.adapters = dict(adapters)
        self.worker_id = worker_id or f"runner-{uuid.uuid4().hex[:8]}"
        self.batch = batch
        self.lease_ms = lease_ms
        self.retry = retry or RetryPolicy()

    def run_once(self) -> int:
        """Claim and run a batch of effects; return how many were claimed."""
        now = self.engine.clock.now_ms()
        with self.engine.store.transaction() as tx:
            claimed = tx.claim_effects(now, self.batch, self.worker_id, self.lease_ms)
        for effect in claimed:
            try:
                self._run(effect)
            except StoreError as exc:
                # The store refused this effect's writes. If it takes the claim back,
                # the fault was in this effect (it is looked at again later, and
                # parked once its looks run out), and the others go on; if it does
                # not, the store is down, and the loop backs off.
                log.warning("effect %s: store error, retrying later: %s", effect.key, exc)
                self._retry_later(effect, f"store error: {exc}")
            except Exception as exc:  # one broken effect must not stop the others
                log.exception("effect %s could not be completed", effect.key)
                self._park(effect, f"{type(exc).__name__}: {exc}")
        return len(claimed)

    def run(self, stop: threading.Event, idle_seconds: float = 0.2) -> None:
        run_until(stop, self.run_once, idle_seconds)

    def _run(self, effect: EffectRecord) -> None:
        confirmed = self._confirm(effect)
        if confirmed is None:
            return
        call, may_perform = confirmed
        started = self.engine.clock.now_ms()
        with self._lease_kept(effect):
            result = self._attempt(effect, call, may_perform)
        if result is None:  # the session moved on, and the adapter never saw the key
            self._cancel(effect, LEFT_STATE)
            return
        self._record_attempt(effect, result, started)
        self._finish(effect, result)

    def _confirm(self, effect: EffectRecord) -> tuple[EffectCall, bool] | None:
        """Re-check the claim and the session just before acting; extend the lease.

        Returns the call and whether it may be performed: not when the session has left
        the state that asked for it. A first attempt is then simply cancelled; a later
        one may have moved money already, so the adapter is asked ``status_of`` first
        and an outcome it knows is logged and counted (see :meth:`_attempt`).
        """
        now = self.engine.clock.now_ms()
        with self.engine.store.transaction() as tx:
            # The session first, then the effect: the order an override locks them in.
            record = tx.get_session(effect.session_id, for_update=True)
            current = tx.get_effect(effect.key, for_update=True)
            if not self._still_mine(current, effect):
                return None
            assert current is not None
            cut_short = _calls_cut_short(tx.attempts(effect.key))
            if cut_short >= self.retry.max_unfinished:
                reason = (
                    f"{cut_short} calls in a row to its adapter never came back (a runner "
                    "dying during the call?); look into it, then `flowengine effects retry`"
                )
                tx.update_effect(
                    replace(current, status="review", lease_until=None, last_error=reason)
                )
                return None
            moved_on = record is None or (record.state, record.entered_seq) != (
                current.state,
                current.seq,
            )
            if moved_on and (record is None or effect.attempts == 1):
                tx.update_effect(
                    replace(current, status="cancelled", lease_until=None, last_error=LEFT_STATE)
                )
                return None
            assert record is not None
            tx.update_effect(replace(current, lease_until=now + self.lease_ms))
            # The call is about to start: on record, so a call that never comes back
            # (its runner died) is told apart from a claim that was merely taken over.
            tx.record_attempt(EffectAttempt(effect.key, effect.attempts, now, now, STARTED))
            call = EffectCall(
                effect.key,
                effect.effect,
                effect.session_id,
                record.data,
                effect.attempts,
                effect.params or {},
            )
            return call, not moved_on

    @contextmanager
    def _lease_kept(self, effect: EffectRecord) -> Iterator[None]:
        """Renew the claim's lease every third of it while the adapter call runs, so a
        slow call (a node taking its time) is not taken over and performed a second
        time by another runner. A runner that dies stops renewing: its lease runs out
        and the next runner asks ``status_of`` before acting."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_ms / 3000):
                try:
                    if not self._extend_lease(effect):
                        return
                except StoreError as exc:  # try again at the next beat
                    log.warning("effect %s: could not renew its lease: %s", effect.key, exc)

        beat = threading.Thread(target=renew, name=f"lease {effect.key}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()

    def _extend_lease(self, effect: EffectRecord) -> bool:
        with self.engine.store.transaction() as tx:
            tx.get_session(effect.session_id, for_update=True)
            current = tx.get_effect(effect.key, for_update=True)
            if not self._still_mine(current, effect):
                return False
            assert current is not None
            lease_until = self.engine.clock.now_ms() + self.lease_ms
            tx.update_effect(replace(current, lease_until=lease_until))
            return True

    def _still_mine(self, current: EffectRecord | None, claimed: EffectRecord) -> bool:
        return (
            current is not None
            and current.status == "running"
            and current.claimed_by == self.worker_id
            and current.attempts == claimed.attempts
        )

    def _attempt(
        self, effect: EffectRecord, call: EffectCall, may_perform: bool
    ) -> EffectResult | None:
        """Perform the effect, or learn its outcome; None: not performed, and need not be.

        After a first attempt the adapter is asked ``status_of`` the key before anything
        else (an earlier attempt may have gone through); only a key it has never seen is
        performed, and only while the session still waits for it.
        """
        adapter = self.adapters.get(effect.effect)
        if adapter is None:
            return EffectResult("unknown", detail=f"no adapter is bound to '{effect.effect}'")
        try:
            if effect.attempts > 1:
                known = adapter.status_of(effect.key)
                if known is not None:
                    return _storable(known)
            return _storable(adapter.perform(call)) if may_perform else None
        except Exception as exc:  # an adapter's crash is an unknown outcome, not ours
            return EffectResult("unknown", detail=_text(f"{type(exc).__name__}: {exc}"))

    def _cancel(self, effect: EffectRecord, reason: str) -> None:
        with self.engine.store.transaction() as tx:
            tx.get_session(effect.session_id, for_update=True)
            current = tx.get_effect(effect.key, for_update=True)
            if self._still_mine(current, effect):
                assert current is not None
                tx.update_effect(
                    replace(current, status="cancelled", lease_until=None, last_error=reason)
                )

    def _record_attempt(self, effect: EffectRecord, result: EffectResult, started: int) -> None:
        """Every attempt is kept, in its own transaction: even if its outcome cannot be
        applied (and the effect is parked), what the adapter answered stays on record."""
        with self.engine.store.transaction() as tx:
            tx.record_attempt(
                EffectAttempt(
                    effect.key,
                    effect.attempts,
                    started,
                    self.engine.clock.now_ms(),
                    result.outcome,
                    result.detail,
                )
            )

    def _finish(self, effect: EffectRecord, result: EffectResult) -> None:
        now = self.engine.clock.now_ms()
        # A definite outcome's event is known now: plan it before taking the lock, as
        # sends are while the store's writers contend (flowengine.planning).
        suffix = OUTCOME_EVENTS.get(result.outcome)
        plan = None if suffix is None else self.engine.plan_event(_outcome(effect, result, suffix))
        with self.engine.store.transaction() as tx:
            record = tx.get_session(effect.session_id, for_update=True)
            current = tx.get_effect(effect.key, for_update=True)
            if not self._still_mine(current, effect):
                # Another runner took over after our lease ran out: its result wins, but
                # for one that cancelled the effect (the session had moved on) without
                # knowing of this call, which may have moved money.
                if _cancelled_by_a_takeover(current, effect) and result.outcome != "failed":
                    assert current is not None
                    tx.update_effect(
                        replace(
                            current,
                            status="pending",
                            available_at=now,
                            lease_until=None,
                            claimed_by=None,
                            last_error=ANSWERED_AFTER_CANCEL,
                        )
                    )
                return
            assert current is not None
            assert record is not None  # effects refer to their session
            if suffix is None:
                wait = self.retry.next_look(effect.attempts, self._schedule(tx, current))
                if wait is not None:
                    tx.update_effect(
                        replace(
                            current,
                            status="pending",
                            available_at=now + wait,
                            lease_until=None,
                            claimed_by=None,
                            last_error=result.detail or result.outcome,
                        )
                    )
                    return
                suffix = result.outcome  # the schedule ran out: report pending/unknown
            item = _outcome(effect, result, suffix)
            note = None
            try:
                self.engine.apply_planned(tx, item, plan, record)
            except TransitionNotAllowed as exc:
                note = f"outcome logged but not applied: {exc}"
                self.engine.record_unapplied(tx, item, note)
            except IdempotencyConflict:
                # Fed before (a runner that lost its lease got there first) with another
                # payload: the first report stands, and the effect is closed all the same.
                note = "outcome already reported with another payload; the first one stands"
            final_status = {"ok": "done", "failed": "failed"}.get(result.outcome, "review")
            tx.update_effect(
                replace(
                    current,
                    status=final_status,  # type: ignore[arg-type]
                    lease_until=None,
                    last_error=note or (result.detail or None),
                )
            )

    def _schedule(self, tx: Transaction, effect: EffectRecord) -> list[int] | None:
        """The ``poll:`` delays (seconds) of the state that requested ``effect``: the
        row as read under the lock (a migration meanwhile may have renamed the state)."""
        record = tx.get_session(effect.session_id)
        if record is None:
            return None
        state = self.engine.flow_of(tx, record).spec.states.get(effect.state)
        return state.poll_delays() if state is not None else None

    def _park(self, effect: EffectRecord, reason: str) -> None:
        """Mark an effect whose outcome could not be handled for a person to look at,
        unless another runner has taken it over meanwhile: its attempt stands."""
        with self.engine.store.transaction() as tx:
            tx.get_session(effect.session_id, for_update=True)
            current = tx.get_effect(effect.key, for_update=True)
            if current is None or current.status not in ("running", "pending"):
                return
            if current.status == "pending" or self._still_mine(current, effect):
                tx.update_effect(
                    replace(current, status="review", lease_until=None, last_error=_text(reason))
                )

    def _retry_later(self, effect: EffectRecord, reason: str) -> None:
        """Give the claim back, to be looked at again after a back-off (the runner asks
        ``status_of`` first next time); parked once the looks run out."""
        now = self.engine.clock.now_ms()
        with self.engine.store.transaction() as tx:
            tx.get_session(effect.session_id, for_update=True)
            current = tx.get_effect(effect.key, for_update=True)
            if self._still_mine(current, effect):
                assert current is not None
                wait = self.retry.next_look(effect.attempts, self._schedule(tx, current))
                if wait is None:
                    reason = f"{reason} (and no looks left)"
                    tx.update_effect(
                        replace(
                            current, status="review", lease_until=None, last_error=_text(reason)
                        )
                    )
                    return
                retry = replace(
                    current,
                    status="pending",
                    available_at=now + wait,
                    lease_until=None,
                    claimed_by=None,
                    last_error=_text(reason),
                )
                tx.update_effect(retry)


def _outcome(effect: EffectRecord, result: EffectResult, suffix: str) -> EventInput:
    """The event that feeds ``result`` back: ``<effect>.<suffix>``, its id derived from
    the key, so a duplicate feed is a no-op."""
    return EventInput(
        effect.session_id,
        f"{effect.effect}.{suffix}",
        dict(result.payload),
        event_id=f"effect:{effect.key}:{suffix}",
        meta={"effect": effect.key, "attempt": effect.attempts},
    )


def _cancelled_by_a_takeover(current: EffectRecord | None, claimed: EffectRecord) -> bool:
    """Whether a later claim than ``claimed`` cancelled the effect because its session
    had left the state: it asked the adapter, which did not know the key yet while the
    earlier claim's call was still under way."""
    return (
        current is not None
        and current.status == "cancelled"
        and current.last_error == LEFT_STATE
        and current.attempts > claimed.attempts
    )


def _calls_cut_short(attempts: list[EffectAttempt]) -> int:
    """Calls to the adapter, latest first, that started and never came back: attempt
    numbers with a ``started`` row after the last one with an answer (a person's retry
    counts as one)."""
    answered = max((a.attempt for a in attempts if a.outcome != STARTED), default=0)
    return len({a.attempt for a in attempts if a.outcome == STARTED and a.attempt > answered})


def _text(value: str) -> str:
    """Text from an adapter or an exception, as every store can keep it: a NUL as
    ``\\0``, a lone surrogate as its escape (PostgreSQL refuses the one, neither SQL
    store can encode the other)."""
    if storable_text(value):
        return value
    return value.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def _storable(result: EffectResult) -> EffectResult:
    return result if storable_text(result.detail) else replace(result, detail=_text(result.detail))
