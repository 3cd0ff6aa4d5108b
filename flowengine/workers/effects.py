"""The effect runner: perform outbox effects through their adapters, feed outcomes back.

1. Claim runnable effects in a short transaction (status ``running``, a lease, one more
   attempt). A worker that dies leaves the lease to expire; the next runner reclaims.
2. Just before performing each one, check in a transaction that this runner still
   holds the claim (and extend its lease), and that the session still waits in the
   state that asked for the effect (same state, same entry): an effect for a session
   that has moved on (a reorg, an override) is cancelled, never performed.
3. Outside any transaction, call the adapter. When an earlier attempt may have run
   (this is not the first attempt), ask ``status_of(key)`` first and perform only when
   the adapter has never seen the key: that is what makes delivery at most once.
4. In one transaction: record the attempt, apply the outcome event (``<effect>.done``
   for ``ok``, ``<effect>.failed``) with an event id derived from the key (so a
   duplicate feed is a no-op), and close the outbox row. An outcome the session's
   state no longer accepts is still logged, counted and reported for review: money
   that moved never disappears.
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
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..adapters.base import EffectAdapter, EffectCall, EffectResult
from ..engine import Engine, EventInput
from ..errors import StoreError, TransitionNotAllowed
from ..store import EffectAttempt, EffectRecord, Transaction
from .loop import run_until

log = logging.getLogger("flowengine.workers.effects")

OUTCOME_EVENTS = {"ok": "done", "failed": "failed"}


@dataclass(frozen=True)
class RetryPolicy:
    """When a state declares no ``poll:`` schedule: look again after base·2ⁿ (at most
    ``cap``), ``max_looks`` times in all, then report the outcome (see module doc)."""

    base_ms: int = 1_000
    cap_ms: int = 300_000
    max_looks: int = 20

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
            except StoreError:
                raise
            except Exception as exc:  # one broken effect must not stop the others
                log.exception("effect %s could not be completed", effect.key)
                self._park(effect, f"{type(exc).__name__}: {exc}")
        return len(claimed)

    def run(self, stop: threading.Event, idle_seconds: float = 0.2) -> None:
        run_until(stop, self.run_once, idle_seconds)

    def _run(self, effect: EffectRecord) -> None:
        call = self._confirm(effect)
        if call is None:
            return
        started = self.engine.clock.now_ms()
        result = self._attempt(effect, call)
        self._finish(effect, result, started)

    def _confirm(self, effect: EffectRecord) -> EffectCall | None:
        """Re-check the claim and the session just before acting; extend the lease."""
        now = self.engine.clock.now_ms()
        with self.engine.store.transaction() as tx:
            current = tx.get_effect(effect.key)
            if not self._still_mine(current, effect):
                return None
            assert current is not None
            record = tx.get_session(effect.session_id)
            if record is None or (record.state, record.entered_seq) != (effect.state, effect.seq):
                tx.update_effect(
                    replace(
                        current,
                        status="cancelled",
                        lease_until=None,
                        last_error="the session left the state that requested it",
                    )
                )
                return None
            tx.update_effect(replace(current, lease_until=now + self.lease_ms))
            return EffectCall(
                effect.key,
                effect.effect,
                effect.session_id,
                record.data,
                effect.attempts,
                effect.params or {},
            )

    def _still_mine(self, current: EffectRecord | None, claimed: EffectRecord) -> bool:
        return (
            current is not None
            and current.status == "running"
            and current.claimed_by == self.worker_id
            and current.attempts == claimed.attempts
        )

    def _attempt(self, effect: EffectRecord, call: EffectCall) -> EffectResult:
        adapter = self.adapters.get(effect.effect)
        if adapter is None:
            return EffectResult("unknown", detail=f"no adapter is bound to '{effect.effect}'")
        try:
            if effect.attempts > 1:
                known = adapter.status_of(effect.key)
                if known is not None:
                    return known
            return adapter.perform(call)
        except Exception as exc:  # an adapter's crash is an unknown outcome, not ours
            return EffectResult("unknown", detail=f"{type(exc).__name__}: {exc}")

    def _finish(self, effect: EffectRecord, result: EffectResult, started: int) -> None:
        now = self.engine.clock.now_ms()
        with self.engine.store.transaction() as tx:
            tx.record_attempt(
                EffectAttempt(
                    effect.key, effect.attempts, started, now, result.outcome, result.detail
                )
            )
            current = tx.get_effect(effect.key)
            if not self._still_mine(current, effect):
                return  # another runner took over after our lease ran out: its result wins
            assert current is not None
            suffix = OUTCOME_EVENTS.get(result.outcome)
            if suffix is None:
                wait = self.retry.next_look(effect.attempts, self._schedule(tx, effect))
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
            item = EventInput(
                effect.session_id,
                f"{effect.effect}.{suffix}",
                dict(result.payload),
                event_id=f"effect:{effect.key}:{suffix}",
                meta={"effect": effect.key, "attempt": effect.attempts},
            )
            note = None
            try:
                self.engine.apply(tx, item)
            except TransitionNotAllowed as exc:
                note = f"outcome logged but not applied: {exc}"
                self.engine.record_unapplied(tx, item, note)
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
        """The ``poll:`` delays (seconds) of the state that requested ``effect``."""
        record = tx.get_session(effect.session_id)
        if record is None:
            return None
        state = self.engine.flow_of(tx, record).spec.states.get(effect.state)
        return state.poll_delays() if state is not None else None

    def _park(self, effect: EffectRecord, reason: str) -> None:
        """Mark an effect whose outcome could not be handled for a person to look at."""
        with self.engine.store.transaction() as tx:
            current = tx.get_effect(effect.key)
            if current is not None and current.status in ("running", "pending"):
                tx.update_effect(
                    replace(current, status="review", lease_until=None, last_error=reason)
                )
