"""Stores: where sessions, their logs and the outboxes live, chosen by a URL.

``memory://`` (tests, demos), ``sqlite:///path.db`` (the embedded default) and
``postgresql://user@host/db`` (many workers on many machines) all implement
:class:`~flowengine.store.base.Store`, and one test suite runs against all three.
"""

from __future__ import annotations

from .base import (
    EffectAttempt,
    EffectRecord,
    EventRecord,
    FlowVersionRecord,
    SessionRecord,
    Store,
    TimerRecord,
    Transaction,
    WebhookRecord,
)
from .memory import MemoryStore


def open_store(url: str, *, existing: bool = False) -> Store:
    """Open (creating its schema if needed) the store that ``url`` names; with
    ``existing``, only a store that is there already (a memory store never is)."""
    from ..errors import StoreError

    if url.startswith("memory:"):
        if existing:
            raise StoreError(f"{url} holds nothing to read: name a SQLite file or a database")
        return MemoryStore(url)
    if url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        from .sql import SqlStore

        return SqlStore(url, existing=existing)
    raise StoreError(
        f"unknown store URL {url!r}; use memory://, sqlite:///path.db or "
        "postgresql://user@host/dbname"
    )


__all__ = [
    "EffectAttempt",
    "EffectRecord",
    "EventRecord",
    "FlowVersionRecord",
    "MemoryStore",
    "SessionRecord",
    "Store",
    "TimerRecord",
    "Transaction",
    "WebhookRecord",
    "open_store",
]
