"""Fire due timers as events, exactly once, surviving restarts and competing workers.

A timer is a row written in the same transaction as the state entry that requested it.
This worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on
several machines split them) and, in the *same* transaction, applies the timer's event
and marks the row fired: a crash before commit leaves the timer pending, a commit
leaves it fired, never both. A timer whose session has left the state that scheduled
it (its ``entered_seq`` no longer matches) is marked cancelled instead.
"""

from __future__ import annotations

import threading

from ..engine import Engine, EventInput
from ..errors import TransitionNotAllowed
from .loop import run_until


class TimerWorker:
    def __init__(self, engine: Engine, batch: int = 100) -> None:
        self.engine = engine
        self.batch = batch

    def run_once(self) -> int:
        """Fire every timer due now (up to ``batch``); return how many fired."""
        now = self.engine.clock.now_ms()
        fired = 0
        with self.engine.store.transaction() as tx:
            for timer in tx.claim_due_timers(now, self.batch):
                record = tx.get_session(timer.session_id, for_update=True)
                current = (
                    record is not None
                    and record.state == timer.state
                    and record.entered_seq == timer.entered_seq
                )
                if not current:
                    tx.finish_timer(timer.timer_id, "cancelled")
                    continue
                item = EventInput(
                    timer.session_id,
                    timer.event,
                    {},
                    event_id=f"timer:{timer.timer_id}",
                    meta={"timer": timer.timer_id, "due_at": timer.due_at},
                )
                try:
                    self.engine.apply(tx, item)
                except TransitionNotAllowed:
                    tx.finish_timer(timer.timer_id, "cancelled")
                    continue
                tx.finish_timer(timer.timer_id, "fired")
                fired += 1
        return fired

    def run(self, stop: threading.Event, idle_seconds: float = 0.5) -> None:
        run_until(stop, self.run_once, idle_seconds)
