"""Fire due timers as events, exactly once, surviving restarts and competing workers.

A timer is a row written in the same transaction as the state entry that requested it.
This worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on
several machines split them) and, in the *same* transaction, applies the timer's event
and marks the row fired: a crash before commit leaves the timer pending, a commit
leaves it fired, never both. A timer whose session has left the state that scheduled
it (its ``entered_seq`` no longer matches) is marked cancelled instead. Where sends are
planned outside the write lock (:mod:`flowengine.planning`), so are the due timers'
events: under the lock a plan is used only for a session that did not change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from ..engine import Engine, EventInput
from ..errors import StoreError, TransitionNotAllowed
from ..planning import Plan
from ..store import TimerRecord, Transaction
from .loop import run_until

log = logging.getLogger("flowengine.workers.timers")


class TimerWorker:
    def __init__(self, engine: Engine, batch: int = 100) -> None:
        self.engine = engine
        self.batch = batch

    def run_once(self) -> int:
        """Fire every timer due now (up to ``batch``); return how many fired.

        The batch shares one transaction. If one timer cannot be fired (a bug, a flow
        version nobody can load), the batch is rolled back and retried one timer per
        transaction, so the broken timer is marked ``failed`` and the others still fire.
        """
        now = self.engine.clock.now_ms()
        plans = self._plan_due(now) if self.engine.plans_now() else {}
        try:
            with self.engine.store.transaction() as tx:
                return self._fire_due(tx, now, self.batch, plans=plans)
        except StoreError:
            raise
        except Exception:
            log.exception("a timer failed; firing this batch one by one")
        fired = 0
        for _ in range(self.batch):
            attempted: list[TimerRecord] = []
            try:
                with self.engine.store.transaction() as tx:
                    count = self._fire_due(tx, now, 1, attempted)
            except StoreError:
                raise
            except Exception as exc:
                if not attempted:
                    raise  # it failed before reaching any timer: nothing to park
                self._mark_failed(attempted[-1], exc)
                continue
            if count == 0 and not self._any_due(now):
                break
            fired += count
        return fired

    def _plan_due(self, now: int) -> dict[int, Plan]:
        """The events of the timers due now, planned outside the write lock (in one
        read transaction; a session's second due timer is fired under the lock)."""
        with self.engine.store.reading() as view:
            # Rolled back: on PostgreSQL (optimistic=True) the rows are locked only
            # until then, and SKIP LOCKED never makes another worker wait for them.
            due = view.claim_due_timers(now, self.batch)
        plans = self.engine.plan_events([_fired(timer) for timer in due])
        return {t.timer_id: plan for t, plan in zip(due, plans, strict=True) if plan is not None}

    def _fire_due(
        self,
        tx: Transaction,
        now: int,
        limit: int,
        attempted: list[TimerRecord] | None = None,
        plans: Mapping[int, Plan] | None = None,
    ) -> int:
        fired = 0
        timers = tx.claim_due_timers(now, limit)
        # Their sessions are locked up front, in session-id order like send_many's, so a
        # timer batch and a group commit cannot deadlock on each other; one round trip.
        sessions, known = tx.lock_for_events([(t.session_id, _event_id(t)) for t in timers])
        for timer in timers:
            if attempted is not None:
                attempted.append(timer)
            record = sessions.get(timer.session_id)
            if record is None or (record.state, record.entered_seq) != (
                timer.state,
                timer.entered_seq,
            ):
                tx.finish_timer(timer.timer_id, "cancelled")  # the session moved on
                continue
            plan = (plans or {}).get(timer.timer_id)
            try:
                result = self.engine.apply_planned(tx, _fired(timer), plan, record, known)
            except TransitionNotAllowed:
                tx.finish_timer(timer.timer_id, "cancelled")
                continue
            sessions[timer.session_id] = result.record  # a later timer of it sees this
            tx.finish_timer(timer.timer_id, "fired")
            fired += 1
        return fired

    def _any_due(self, now: int) -> bool:
        with self.engine.store.transaction() as tx:
            return bool(tx.claim_due_timers(now, 1))

    def _mark_failed(self, timer: TimerRecord, exc: Exception) -> None:
        """Park the timer that raised as ``failed`` (unless another worker got to it)."""
        log.error("timer %s could not fire: %s: %s", timer.timer_id, type(exc).__name__, exc)
        with self.engine.store.transaction() as tx:
            if tx.get_session(timer.session_id, for_update=True) is None:
                return
            for row in tx.timers(timer.session_id):
                if row.timer_id == timer.timer_id and row.status == "pending":
                    tx.finish_timer(timer.timer_id, "failed")

    def run(self, stop: threading.Event, idle_seconds: float = 0.5) -> None:
        run_until(stop, self.run_once, idle_seconds)


def _fired(timer: TimerRecord) -> EventInput:
    """The timer's event, as it is applied when the timer fires."""
    return EventInput(
        timer.session_id,
        timer.event,
        {},
        event_id=_event_id(timer),
        meta={"timer": timer.timer_id, "due_at": timer.due_at},
    )


def _event_id(timer: TimerRecord) -> str:
    """The fired event's id: a timer fires once, whichever worker fires it."""
    return f"timer:{timer.timer_id}"
