"""The storage contract every backend implements: records and a unit of work.

The engine never talks SQL. It opens a :class:`Transaction`, reads and locks the
session, and writes everything one event causes (the new state, a log row, effect and
timer and webhook outbox rows) before the transaction commits, so a crash leaves
either all of it or none of it. Several events, for several sessions, may share one
transaction (group commit). Workers claim outbox rows through the same interface;
SQL backends use ``FOR UPDATE SKIP LOCKED`` so many processes can share the work.

Times are integer milliseconds since the epoch; amounts never pass through here as
anything but integers inside JSON payloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

JSON = Mapping[str, Any]

EffectStatus = Literal["pending", "running", "done", "failed", "cancelled", "review"]
"""``cancelled``: the session left the state that asked for it before it ran (not
performed). ``review``: its outcome could not be applied; a person must look."""
TimerStatus = Literal["pending", "fired", "cancelled", "failed"]
WebhookStatus = Literal["pending", "sent", "failed"]


@dataclass(frozen=True)
class SessionRecord:
    """A session as stored: where it is in its flow, and the data it was created with."""

    session_id: str
    flow_name: str
    flow_version: str
    flow_hash: str
    state: str
    status: str
    data: JSON
    created_at: int
    updated_at: int
    expires_at: int
    seq: int = 0
    """Sequence number of the last event in the session's log."""
    entered_seq: int = 0
    """Sequence number of the event that entered the current state (timers check it)."""


@dataclass(frozen=True)
class EventRecord:
    """One row of a session's append-only log."""

    session_id: str
    seq: int
    event_id: str
    event: str
    source: str
    target: str
    payload: JSON = field(default_factory=dict)
    requests: Sequence[JSON] = ()
    created_at: int = 0
    external_ref: str | None = None
    meta: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class EffectRecord:
    """An effect to perform, in the outbox until an outcome is fed back as an event."""

    key: str
    session_id: str
    effect: str
    state: str
    seq: int
    status: EffectStatus
    attempts: int
    available_at: int
    created_at: int
    lease_until: int | None = None
    claimed_by: str | None = None
    last_error: str | None = None
    params: Mapping[str, Any] | None = None
    """Fixed when the effect was requested, e.g. ``{"units": 5_000_000}`` for a state
    with ``amount: excess``: a retry moves the same amount whatever happened since."""


@dataclass(frozen=True)
class EffectAttempt:
    key: str
    attempt: int
    started_at: int
    finished_at: int
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class TimerRecord:
    """An event to send later; valid only while the session stays in ``state``."""

    timer_id: int
    session_id: str
    event: str
    state: str
    entered_seq: int
    due_at: int
    status: TimerStatus = "pending"


@dataclass(frozen=True)
class WebhookRecord:
    """A webhook to send, with the body as it was when the event happened."""

    webhook_id: int
    session_id: str
    type: str
    body: JSON
    status: WebhookStatus
    attempts: int
    available_at: int
    created_at: int


@dataclass(frozen=True)
class FlowVersionRecord:
    """A flow version a store has run sessions on (or had deployed), with its text."""

    name: str
    version: str
    content_hash: str
    text: str
    created_at: int
    deployed_at: int | None = None
    """When ``flowengine flows deploy`` registered it (after its replay check passed)."""
    deploy_note: str = ""
    """Why it was deployed with ``--force`` despite a failed check, if it was."""


class Transaction(Protocol):
    """One atomic unit of work; committed when the ``with`` block ends without error."""

    # sessions and their log
    def get_session(self, session_id: str, *, for_update: bool = False) -> SessionRecord | None:
        """The session, locked until commit when ``for_update`` (concurrent senders wait)."""

    def insert_session(self, record: SessionRecord) -> None: ...

    def update_session(self, record: SessionRecord) -> None:
        """Store the session's new state and data. Its id, flow name and creation time
        are fixed when it is inserted; an update does not change them."""

    def lock_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        """What applying a batch of events needs first, for (session id, event id or
        None) pairs: the sessions, read and locked as ``get_session(for_update=True)``
        does, in session-id order so concurrent batches cannot deadlock (missing ones
        left out); and the events among those ids already logged, by pair. One round
        trip on PostgreSQL, whatever the batch size."""

    def read_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        """What :meth:`lock_for_events` returns, read without locking anything: the
        engine plans a batch with it before taking the write lock (see
        :mod:`flowengine.planning`)."""

    def find_event(self, session_id: str, event_id: str) -> EventRecord | None: ...

    def find_event_by_ref(self, session_id: str, external_ref: str) -> EventRecord | None: ...

    def append_event(self, event: EventRecord) -> None: ...

    def events(self, session_id: str) -> list[EventRecord]:
        """The session's whole log, oldest first."""

    # outboxes, written with the event that caused them
    def add_effect(self, effect: EffectRecord) -> None: ...

    def add_timer(
        self, session_id: str, event: str, state: str, entered_seq: int, due_at: int
    ) -> None: ...

    def add_webhook(self, session_id: str, type: str, body: JSON, created_at: int) -> None: ...

    # workers
    def claim_effects(self, now: int, limit: int, worker: str, lease_ms: int) -> list[EffectRecord]:
        """Mark up to ``limit`` runnable effects as running for ``worker`` and return them.

        Runnable: pending and due, or running with an expired lease (its worker died).
        """

    def get_effect(self, key: str, *, for_update: bool = False) -> EffectRecord | None:
        """The outbox row, locked until commit when ``for_update`` (a runner checking its
        claim must not write back a row another runner changed meanwhile). Lock the
        effect's session first, as the engine does, so the two never wait on each other
        in opposite orders."""

    def update_effect(self, record: EffectRecord) -> None: ...

    def record_attempt(self, attempt: EffectAttempt) -> None: ...

    def attempts(self, key: str) -> list[EffectAttempt]: ...

    def claim_due_timers(self, now: int, limit: int) -> list[TimerRecord]:
        """Lock up to ``limit`` pending timers due by ``now``, earliest first.

        The caller fires them in this same transaction, so a timer fires exactly once
        even with several workers.
        """

    def finish_timer(self, timer_id: int, status: TimerStatus) -> None: ...

    def timers(self, session_id: str) -> list[TimerRecord]: ...

    def webhooks(self, session_id: str) -> list[WebhookRecord]: ...

    def effects(self, session_id: str) -> list[EffectRecord]: ...

    def parked_effects(self, limit: int) -> list[EffectRecord]:
        """Effects parked for a person (status ``review``), oldest first: the runner gave
        up on them (an adapter that kept raising, a poll schedule that ran out)."""

    def failed_timers(self, limit: int) -> list[TimerRecord]:
        """Timers parked as ``failed`` (firing them raised), earliest due first."""

    # flow versions
    def save_flow_version(self, record: FlowVersionRecord) -> None:
        """Insert if absent (by content hash)."""

    def get_flow_version(self, content_hash: str) -> FlowVersionRecord | None: ...

    def flow_versions(self, name: str) -> list[FlowVersionRecord]:
        """Every stored version of the flow ``name``, oldest first."""

    def flow_names(self) -> list[str]:
        """The names of the flows the store has run sessions on, sorted: what a check of
        the whole store covers, whatever flows/ holds now."""

    def mark_deployed(self, content_hash: str, at: int, note: str) -> None: ...

    # reading across sessions (diff, replay, diagrams with traffic)
    def sessions_of_flow(self, flow_name: str) -> list[SessionRecord]:
        """Every session of the flow ``name`` (any version), oldest first."""

    def events_of_flow(self, flow_name: str) -> list[EventRecord]:
        """The logs of every session of ``flow_name``, by session then sequence."""


class Store(Protocol):
    """A durable (or, for tests and demos, in-memory) home for sessions and outboxes."""

    url: str

    @property
    def plan_sends(self) -> bool:
        """Whether the engine should, unless told otherwise, plan its next sends before
        taking the write lock (:mod:`flowengine.planning`): where one write transaction
        at a time runs on the whole database and reads do not wait for it (SQLite in
        WAL mode), while its writers keep finding the lock taken. Read per batch."""

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def reading(self) -> AbstractContextManager[Transaction]:
        """A transaction for reads, rolled back when it ends (nothing written in it is
        kept). On SQLite and PostgreSQL it takes no write lock and waits for none, so
        other transactions commit meanwhile; the memory store runs it under its one
        lock, like every transaction."""

    def close(self) -> None: ...
