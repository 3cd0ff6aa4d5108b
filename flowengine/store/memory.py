"""An in-process store (``memory://``): the same contract as the SQL stores, no disk.

For tests, demos and the CLI's dry runs. One lock serializes transactions (so
concurrent senders behave as on a database with row locks), and an undo log rolls back
every write of a transaction that raises, so "nothing is written" holds here too.
"""

from __future__ import annotations

import heapq
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial

from ..errors import StoreConflict
from .base import (
    JSON,
    EffectAttempt,
    EffectRecord,
    EventRecord,
    FlowVersionRecord,
    SessionRecord,
    TimerRecord,
    TimerStatus,
    WebhookRecord,
)


class MemoryStore:
    plan_sends = False
    """One lock serializes readers too: planning a send before taking it gains nothing."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self.sessions: dict[str, SessionRecord] = {}
        self.log: dict[str, list[EventRecord]] = defaultdict(list)
        self.event_ids: dict[tuple[str, str], EventRecord] = {}
        self.event_refs: dict[tuple[str, str], EventRecord] = {}
        self.effect_rows: dict[str, EffectRecord] = {}
        self.effect_keys: dict[str, list[str]] = defaultdict(list)
        self.attempt_rows: dict[str, list[EffectAttempt]] = defaultdict(list)
        self.timer_rows: dict[int, TimerRecord] = {}
        self.timer_heap: list[tuple[int, int]] = []
        # Claimed in the SQL stores' order: available_at, then insertion (their id).
        # ``effect_ready``: (available_at, insertion, key) of pending rows, and of running
        # rows whose lease ran out; ``effect_leases``: (lease_until, insertion, key) of
        # running rows, moved to ``effect_ready`` when the lease runs out. Entries are
        # checked against the row when they come up: a stale one is just dropped.
        self.effect_ready: list[tuple[int, int, str]] = []
        self.effect_leases: list[tuple[int, int, str]] = []
        self.effect_order: dict[str, int] = {}
        self.webhook_rows: dict[str, list[WebhookRecord]] = defaultdict(list)
        self.flow_versions: dict[str, FlowVersionRecord] = {}
        self._next_id = 1

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        with self._lock:
            tx = MemoryTransaction(self)
            try:
                yield tx
            except BaseException:
                tx.rollback()
                raise
            tx.requeue_unfinished_timers()

    @contextmanager
    def reading(self) -> Iterator[MemoryTransaction]:
        """Reads under the store's lock (a consistent view, as a database snapshot
        gives), undone when the block ends."""
        with self._lock:
            tx = MemoryTransaction(self)
            try:
                yield tx
            finally:
                tx.rollback()

    def close(self) -> None:
        pass

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


class MemoryTransaction:
    def __init__(self, store: MemoryStore) -> None:
        self.s = store
        self._undo: list[Callable[[], object]] = []
        self._claimed_timers: dict[int, tuple[int, int]] = {}

    def requeue_unfinished_timers(self) -> None:
        """A claimed timer the transaction did not finish stays due, as on SQL stores."""
        for item in self._claimed_timers.values():
            heapq.heappush(self.s.timer_heap, item)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _set(self, table: dict[str, SessionRecord], key: str, value: SessionRecord) -> None:
        old = table.get(key)
        table[key] = value
        if old is None:
            self._undo.append(lambda: table.pop(key, None))
        else:
            self._undo.append(lambda: table.__setitem__(key, old))

    # sessions and their log
    def get_session(self, session_id: str, *, for_update: bool = False) -> SessionRecord | None:
        return self.s.sessions.get(session_id)

    def insert_session(self, record: SessionRecord) -> None:
        if record.session_id in self.s.sessions:
            raise StoreConflict(f"session {record.session_id} exists")
        self._set(self.s.sessions, record.session_id, record)

    def update_session(self, record: SessionRecord) -> None:
        self._require_session(record.session_id)
        stored = self.s.sessions[record.session_id]
        if (record.flow_name, record.created_at) != (stored.flow_name, stored.created_at):
            record = replace(record, flow_name=stored.flow_name, created_at=stored.created_at)
        self._set(self.s.sessions, record.session_id, record)

    def _require_session(self, session_id: str) -> None:
        if session_id not in self.s.sessions:
            raise StoreConflict(f"no session {session_id}")

    def lock_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        return self.read_for_events(keys)  # the store's lock is held already

    def read_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        found = (self.s.sessions.get(sid) for sid in sorted({sid for sid, _ in keys}))
        sessions = {record.session_id: record for record in found if record is not None}
        logged = ((sid, eid) for sid, eid in keys if eid is not None)
        events = {key: self.s.event_ids[key] for key in logged if key in self.s.event_ids}
        return sessions, events

    def find_event(self, session_id: str, event_id: str) -> EventRecord | None:
        return self.s.event_ids.get((session_id, event_id))

    def find_event_by_ref(self, session_id: str, external_ref: str) -> EventRecord | None:
        return self.s.event_refs.get((session_id, external_ref))

    def append_event(self, event: EventRecord) -> None:
        self._require_session(event.session_id)
        id_key = (event.session_id, event.event_id)
        if id_key in self.s.event_ids:
            raise StoreConflict(f"event {event.event_id} already logged")
        ref_key = (event.session_id, event.external_ref or "")
        if event.external_ref is not None and ref_key in self.s.event_refs:
            raise StoreConflict(f"external ref {event.external_ref} already logged")
        log = self.s.log[event.session_id]
        if log and log[-1].seq >= event.seq:
            raise StoreConflict(f"event seq {event.seq} of {event.session_id} is not new")
        log.append(event)
        self.s.event_ids[id_key] = event
        self._undo.append(log.pop)
        self._undo.append(lambda: self.s.event_ids.pop(id_key, None))
        if event.external_ref is not None:
            self.s.event_refs[ref_key] = event
            self._undo.append(lambda: self.s.event_refs.pop(ref_key, None))

    def events(self, session_id: str) -> list[EventRecord]:
        return list(self.s.log.get(session_id, ()))

    # outboxes
    def add_effect(self, effect: EffectRecord) -> None:
        self._require_session(effect.session_id)
        if effect.key in self.s.effect_rows:
            raise StoreConflict(f"effect {effect.key} exists")
        self.s.effect_rows[effect.key] = effect
        self.s.effect_order[effect.key] = self.s.next_id()
        self._schedule_effect(effect)
        keys = self.s.effect_keys[effect.session_id]
        keys.append(effect.key)
        self._undo.append(lambda: self.s.effect_rows.pop(effect.key, None))
        self._undo.append(keys.pop)

    def add_timer(
        self, session_id: str, event: str, state: str, entered_seq: int, due_at: int
    ) -> None:
        self._require_session(session_id)
        timer = TimerRecord(self.s.next_id(), session_id, event, state, entered_seq, due_at)
        self.s.timer_rows[timer.timer_id] = timer
        heapq.heappush(self.s.timer_heap, (due_at, timer.timer_id))
        self._undo.append(lambda: self.s.timer_rows.pop(timer.timer_id, None))

    def add_webhook(self, session_id: str, type: str, body: JSON, created_at: int) -> None:
        self._require_session(session_id)
        row = WebhookRecord(
            self.s.next_id(), session_id, type, body, "pending", 0, created_at, created_at
        )
        rows = self.s.webhook_rows[session_id]
        rows.append(row)
        self._undo.append(rows.pop)

    # workers
    def claim_effects(self, now: int, limit: int, worker: str, lease_ms: int) -> list[EffectRecord]:
        ready, leases, rows = self.s.effect_ready, self.s.effect_leases, self.s.effect_rows
        while leases and leases[0][0] <= now:  # leases run out: claimable again
            item = self._pop(leases)
            record = rows.get(item[2])
            if record is not None and record.status == "running" and record.lease_until == item[0]:
                heapq.heappush(ready, (record.available_at, item[1], item[2]))
        claimed: list[EffectRecord] = []
        seen: set[str] = set()
        while ready and ready[0][0] <= now and len(claimed) < limit:
            item = self._pop(ready)
            record = rows.get(item[2])
            if record is None or item[2] in seen or not _claimable(record, item[0], now):
                continue  # stale: the row changed after this entry was pushed
            seen.add(item[2])
            taken = replace(
                record,
                status="running",
                attempts=record.attempts + 1,
                lease_until=now + lease_ms,
                claimed_by=worker,
            )
            self.update_effect(taken)
            claimed.append(taken)
        return claimed

    def _pop(self, heap: list[tuple[int, int, str]]) -> tuple[int, int, str]:
        item = heapq.heappop(heap)
        self._undo.append(partial(heapq.heappush, heap, item))
        return item

    def _schedule_effect(self, record: EffectRecord) -> None:
        """Index the row by when it becomes claimable (due, or its lease expires)."""
        order = self.s.effect_order[record.key]
        if record.status == "pending":
            heapq.heappush(self.s.effect_ready, (record.available_at, order, record.key))
        elif record.status == "running" and record.lease_until is not None:
            heapq.heappush(self.s.effect_leases, (record.lease_until, order, record.key))

    def get_effect(self, key: str, *, for_update: bool = False) -> EffectRecord | None:
        return self.s.effect_rows.get(key)  # transactions run one at a time

    def update_effect(self, record: EffectRecord) -> None:
        old = self.s.effect_rows[record.key]
        self.s.effect_rows[record.key] = record
        self._undo.append(lambda: self.s.effect_rows.__setitem__(record.key, old))
        self._schedule_effect(record)

    def record_attempt(self, attempt: EffectAttempt) -> None:
        rows = self.s.attempt_rows[attempt.key]
        rows.append(attempt)
        self._undo.append(rows.pop)

    def attempts(self, key: str) -> list[EffectAttempt]:
        return list(self.s.attempt_rows.get(key, ()))

    def claim_due_timers(self, now: int, limit: int) -> list[TimerRecord]:
        heap = self.s.timer_heap
        claimed: list[TimerRecord] = []
        while heap and heap[0][0] <= now and len(claimed) < limit:
            item = heapq.heappop(heap)
            self._undo.append(partial(heapq.heappush, heap, item))
            timer = self.s.timer_rows.get(item[1])
            # The heap may hold a timer twice (requeued by a rolled-back claim, then
            # pushed again when a person retried it after it failed): claimed once.
            if (
                timer is not None
                and timer.status == "pending"
                and timer.timer_id not in self._claimed_timers
            ):
                claimed.append(timer)
                self._claimed_timers[timer.timer_id] = item
        return claimed

    def finish_timer(self, timer_id: int, status: TimerStatus) -> None:
        item = self._claimed_timers.pop(timer_id, None)
        if item is not None:
            self._undo.append(partial(self._claimed_timers.__setitem__, timer_id, item))
        old = self.s.timer_rows[timer_id]
        self.s.timer_rows[timer_id] = replace(old, status=status)
        self._undo.append(lambda: self.s.timer_rows.__setitem__(timer_id, old))
        if status == "pending" and old.status != "pending":  # a failed timer retried
            heapq.heappush(self.s.timer_heap, (old.due_at, timer_id))

    def timers(self, session_id: str) -> list[TimerRecord]:
        return [t for t in self.s.timer_rows.values() if t.session_id == session_id]

    def webhooks(self, session_id: str) -> list[WebhookRecord]:
        return list(self.s.webhook_rows.get(session_id, ()))

    def effects(self, session_id: str) -> list[EffectRecord]:
        return [self.s.effect_rows[key] for key in self.s.effect_keys.get(session_id, ())]

    def parked_effects(self, limit: int) -> list[EffectRecord]:
        parked = [r for r in self.s.effect_rows.values() if r.status == "review"]
        order = self.s.effect_order  # the SQL stores' id: insertion order
        return sorted(parked, key=lambda r: (r.available_at, order[r.key]))[:limit]

    def failed_timers(self, limit: int) -> list[TimerRecord]:
        failed = [t for t in self.s.timer_rows.values() if t.status == "failed"]
        return sorted(failed, key=lambda t: (t.due_at, t.timer_id))[:limit]

    # flow versions
    def save_flow_version(self, record: FlowVersionRecord) -> None:
        if any(
            (v.name, v.version) == (record.name, record.version)
            and v.content_hash != record.content_hash
            for v in self.s.flow_versions.values()
        ):
            raise StoreConflict(
                f"flow {record.name} version {record.version} is stored with another text"
            )
        if record.content_hash not in self.s.flow_versions:
            self.s.flow_versions[record.content_hash] = record
            self._undo.append(lambda: self.s.flow_versions.pop(record.content_hash, None))

    def get_flow_version(self, content_hash: str) -> FlowVersionRecord | None:
        return self.s.flow_versions.get(content_hash)

    def flow_names(self) -> list[str]:
        return sorted({r.name for r in self.s.flow_versions.values()})

    def flow_versions(self, name: str) -> list[FlowVersionRecord]:
        found = [r for r in self.s.flow_versions.values() if r.name == name]
        return sorted(found, key=lambda r: (r.created_at, r.content_hash))  # as SQL

    def mark_deployed(self, content_hash: str, at: int, note: str) -> None:
        old = self.s.flow_versions[content_hash]
        self.s.flow_versions[content_hash] = replace(old, deployed_at=at, deploy_note=note)
        self._undo.append(partial(self.s.flow_versions.__setitem__, content_hash, old))

    def sessions_of_flow(self, flow_name: str) -> list[SessionRecord]:
        found = [r for r in self.s.sessions.values() if r.flow_name == flow_name]
        return sorted(found, key=lambda r: (r.created_at, r.session_id))

    def events_of_flow(self, flow_name: str) -> list[EventRecord]:
        ids = sorted(r.session_id for r in self.s.sessions.values() if r.flow_name == flow_name)
        return [event for sid in ids for event in self.s.log.get(sid, ())]


def _claimable(record: EffectRecord, available_at: int, now: int) -> bool:
    """Whether a ready entry still describes the row: pending and due, or running with
    its lease over (either way with the available_at the entry was pushed with)."""
    if record.available_at != available_at or available_at > now:
        return False
    if record.status == "pending":
        return True
    return record.status == "running" and (record.lease_until or 0) <= now
