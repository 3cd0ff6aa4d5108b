"""One event as the engine takes it, and what applying it gave.

Kept apart from :mod:`flowengine.engine` so that the modules that build or read events
(workers, the decisions a person makes, tests) need not import the whole engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .sessions import Session
from .sessions.view import session_view
from .store import EventRecord, SessionRecord

ENGINE_META = frozenset(
    {"effect", "attempt", "timer", "deferred", "deferred_from", "late", "applied", "override"}
)
"""Keys of a log row's ``meta`` that say which part of the engine produced the row: an
effect's outcome, a fired timer, a deferred or re-offered event, a late or unapplied
one, a person's override. The engine reads some of them back to decide (a late
refund's outcome is not refunded again; reconciliation skips deferred rows), so an
event sent with one of them set by its caller is refused, naming the key."""


@dataclass(frozen=True)
class EventInput:
    """One event to apply: what happened, to which session, and how to recognise it again.

    ``event_id`` makes a retry of the same send a no-op that returns the first result.
    ``external_ref`` names the outside fact the event reports (e.g. ``8453:0xabc…:3``,
    chain id + tx hash + log index), so the same fact reported twice counts once.
    ``meta``: notes logged with the event; keys the engine writes there itself
    (:data:`ENGINE_META`) are refused from callers.
    """

    session_id: str
    event: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    external_ref: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    record: SessionRecord
    event: EventRecord
    duplicate: bool = False
    """True when this event had been applied before (same event id or external ref)."""

    @cached_property
    def session(self) -> Session:
        return session_view(self.record)

    @property
    def state(self) -> str:
        return self.record.state
