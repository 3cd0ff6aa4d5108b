"""Planning sends before the write lock: run them, then commit if nothing changed.

SQLite has one write lock for the whole database. An engine that held it while the
state chart runs (more than half of a grouped send) would let no other writer in
meanwhile: a second process, or a second thread whose commit is waiting for the disk,
queues behind Python work that reads nothing but the session. So a send is applied in
two passes, always with ``Engine(optimistic=True)``, and by default while the store
reports that its writers keep finding the lock taken (``Store.plan_sends``; a process
alone never waits, and pays nothing for plans it does not need):

1. **plan** — in a read transaction (:meth:`Store.reading`: no write lock taken, none
   waited for), each session's events go through the engine exactly as they would
   under the lock, against a :class:`Draft`: a transaction that serves that session's
   reads and records its writes;
2. **commit** — in the write transaction, each session is read again, locked. One whose
   ``seq`` is what the plan read has had no event since, so the plan's writes go in as
   they are; one that changed (another sender got in first) is applied afresh under
   the lock, as without planning.

Why the ``seq`` is enough: every write to a session's row or log goes through the
engine, in a transaction that moves the session's ``seq`` on, and a plan reads nothing
else that can change: the session, its log (by event id or external reference) and
flow versions (their text and creation time never change). Whatever else the engine
would read (a session's effects, for a late refund or a move to a newer flow version)
stops the plan of that session (:class:`NeedsLock`); it is then applied under the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from .errors import FlowEngineError
from .events import SendResult
from .store import (
    EffectAttempt,
    EffectRecord,
    EventRecord,
    FlowVersionRecord,
    SessionRecord,
    TimerRecord,
    Transaction,
    WebhookRecord,
)
from .store.base import JSON, TimerStatus

Write = Callable[[Transaction], None]


class NeedsLock(Exception):
    """The plan needs a read its session's ``seq`` does not vouch for."""


class Draft:
    """A :class:`~flowengine.store.Transaction` for planning one session's events.

    Reads of that session and its log come from the read transaction ``view``, or from
    what the draft itself wrote; writes are recorded in order (:attr:`writes`), to be
    replayed in the write transaction if the session's ``seq`` is still
    :attr:`base_seq`. Anything else raises :class:`NeedsLock`.
    """

    def __init__(self, view: Transaction, base: SessionRecord | None) -> None:
        self._view = view
        self.base_seq = None if base is None else base.seq
        self._session = base
        self._events: dict[str, EventRecord] = {}
        self._refs: dict[str, EventRecord] = {}
        self.writes: list[Write] = []

    def replay(self, tx: Transaction) -> None:
        """Write what the plan wrote, in ``tx`` (which has locked the session)."""
        for write in self.writes:
            write(tx)

    def _own(self, session_id: str) -> None:
        if self._session is None or session_id != self._session.session_id:
            raise NeedsLock(f"session {session_id} is not the one planned")

    # reads the session's seq vouches for
    def get_session(self, session_id: str, *, for_update: bool = False) -> SessionRecord | None:
        if self._session is None:
            return None  # the plan saw no such session; the commit checks it still is not
        self._own(session_id)
        return self._session

    def find_event(self, session_id: str, event_id: str) -> EventRecord | None:
        self._own(session_id)
        return self._events.get(event_id) or self._view.find_event(session_id, event_id)

    def find_event_by_ref(self, session_id: str, external_ref: str) -> EventRecord | None:
        self._own(session_id)
        return self._refs.get(external_ref) or self._view.find_event_by_ref(
            session_id, external_ref
        )

    def get_flow_version(self, content_hash: str) -> FlowVersionRecord | None:
        return self._view.get_flow_version(content_hash)

    # writes, recorded
    def update_session(self, record: SessionRecord) -> None:
        self._own(record.session_id)
        self._session = record
        self.writes.append(lambda tx: tx.update_session(record))

    def append_event(self, event: EventRecord) -> None:
        self._own(event.session_id)
        self._events[event.event_id] = event
        if event.external_ref is not None:
            self._refs[event.external_ref] = event
        self.writes.append(lambda tx: tx.append_event(event))

    def add_effect(self, effect: EffectRecord) -> None:
        self._own(effect.session_id)
        self.writes.append(lambda tx: tx.add_effect(effect))

    def add_timer(
        self, session_id: str, event: str, state: str, entered_seq: int, due_at: int
    ) -> None:
        self._own(session_id)
        self.writes.append(lambda tx: tx.add_timer(session_id, event, state, entered_seq, due_at))

    def add_webhook(self, session_id: str, type: str, body: JSON, created_at: int) -> None:
        self._own(session_id)
        self.writes.append(lambda tx: tx.add_webhook(session_id, type, body, created_at))

    def save_flow_version(self, record: FlowVersionRecord) -> None:
        self.writes.append(lambda tx: tx.save_flow_version(record))

    # everything else: not covered by the session's seq, or not the event path's
    def _needs_lock(self, what: str) -> NoReturn:
        raise NeedsLock(f"{what} is not read by a plan")

    def insert_session(self, record: SessionRecord) -> None:
        self._needs_lock("insert_session")

    def lock_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        self._needs_lock("lock_for_events")

    def read_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        self._needs_lock("read_for_events")

    def events(self, session_id: str) -> list[EventRecord]:
        self._needs_lock("events")

    def claim_effects(self, now: int, limit: int, worker: str, lease_ms: int) -> list[EffectRecord]:
        self._needs_lock("claim_effects")

    def get_effect(self, key: str, *, for_update: bool = False) -> EffectRecord | None:
        self._needs_lock("get_effect")

    def update_effect(self, record: EffectRecord) -> None:
        self._needs_lock("update_effect")

    def record_attempt(self, attempt: EffectAttempt) -> None:
        self._needs_lock("record_attempt")

    def attempts(self, key: str) -> list[EffectAttempt]:
        self._needs_lock("attempts")

    def claim_due_timers(self, now: int, limit: int) -> list[TimerRecord]:
        self._needs_lock("claim_due_timers")

    def finish_timer(self, timer_id: int, status: TimerStatus) -> None:
        self._needs_lock("finish_timer")

    def timers(self, session_id: str) -> list[TimerRecord]:
        self._needs_lock("timers")

    def webhooks(self, session_id: str) -> list[WebhookRecord]:
        self._needs_lock("webhooks")

    def effects(self, session_id: str) -> list[EffectRecord]:
        self._needs_lock("effects (their status changes without the session's seq)")

    def parked_effects(self, limit: int) -> list[EffectRecord]:
        self._needs_lock("parked_effects")

    def failed_timers(self, limit: int) -> list[TimerRecord]:
        self._needs_lock("failed_timers")

    def flow_versions(self, name: str) -> list[FlowVersionRecord]:
        self._needs_lock("flow_versions")

    def flow_names(self) -> list[str]:
        self._needs_lock("flow_names")

    def mark_deployed(self, content_hash: str, at: int, note: str) -> None:
        self._needs_lock("mark_deployed")

    def sessions_of_flow(self, flow_name: str) -> list[SessionRecord]:
        self._needs_lock("sessions_of_flow")

    def events_of_flow(self, flow_name: str) -> list[EventRecord]:
        self._needs_lock("events_of_flow")


@dataclass(frozen=True)
class Plan:
    """One session's events applied to a :class:`Draft` outside the write lock, and
    their results (by the events' places in their batch)."""

    draft: Draft
    results: Mapping[int, SendResult | FlowEngineError]

    def holds_for(self, record: SessionRecord | None) -> bool:
        """Whether the session, as now read under the lock, is the one planned on."""
        return self.draft.base_seq == (record.seq if record else None)
