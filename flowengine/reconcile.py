"""Reconcile: recompute every session's amounts from its log and compare.

A session's received / delivered / refunded amounts are kept as a projection updated
in the same transaction as each event (so reads are cheap); the log is the truth. This
folds each session's log again (:func:`flowengine.amounts.fold`) and lists every
session whose projection differs. The expected count is 0: anything else means a bug
or a hand edit of the database, and names the sessions to look at.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import amounts
from .store import EventRecord, Store

FIELDS = ("received", "delivered", "refunded", "txHashes")


@dataclass(frozen=True)
class Mismatch:
    session_id: str
    projection: Mapping[str, Any]
    fold: Mapping[str, Any]

    def __str__(self) -> str:
        differs = [f for f in FIELDS if self.projection.get(f) != self.fold.get(f)]
        parts = [
            f"{f}: stored {self.projection.get(f)!r}, log says {self.fold.get(f)!r}"
            for f in differs
        ]
        return f"session {self.session_id}: " + "; ".join(parts)


@dataclass(frozen=True)
class Reconciliation:
    sessions: int
    mismatches: list[Mismatch]


def reconcile(store: Store, flow_names: Iterable[str]) -> Reconciliation:
    checked = 0
    mismatches: list[Mismatch] = []
    for name in flow_names:
        with store.transaction() as tx:
            sessions = tx.sessions_of_flow(name)
            logs: dict[str, list[EventRecord]] = defaultdict(list)
            for event in tx.events_of_flow(name):
                logs[event.session_id].append(event)
        for record in sessions:
            checked += 1
            folded = amounts.fold(
                (e.event, e.payload)
                for e in logs[record.session_id]
                if not e.meta.get("deferred")  # counted when it is applied, not twice
            )
            stored = record.data.get("amounts", amounts.empty())
            if any(stored.get(f) != folded.get(f) for f in FIELDS):
                mismatches.append(Mismatch(record.session_id, stored, folded))
    return Reconciliation(checked, mismatches)
