"""The raw-driver baseline of bench/engine.py: the engine's own write set, by hand.

What the engine writes for one deposit lifecycle is captured once, from the write
queue of a SQL transaction on a scratch SQLite store: every row, column for column,
JSON already encoded, per transaction. The baseline then writes the same rows through
sqlite3 or psycopg with hand-written SQL, on tables made by the engine's own migrations
(same columns, indexes and foreign keys): per event, lock-read the session, look up the
event id, insert the same log/outbox rows, update the session's changing columns, commit
(on psycopg in pipeline mode, as the engine: the reads in one round trip, the writes and
the commit in another). The only Python work left is what any hand-written program
has: putting the session's id into the values. So "engine ÷ raw" is everything the
engine adds to the database's own work: the state chart, validation, amounts, the
webhook snapshot, the store layer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from flowengine import Engine, FlowRegistry
from flowengine.store.sql import SqlTransaction

Writes = list[tuple[str, dict[str, Any]]]
"""One transaction's writes: (statement name, its parameters), in the order sent."""
Chart = Callable[[int], object]
"""The state chart's step for a lifecycle's ``index``-th transaction (0: the start)."""

_TABLES = {
    "insert_session": "sessions",
    "insert_event": "events",
    "insert_effect": "effects",
    "insert_timer": "timers",
    "insert_webhook": "webhooks",
}
_CHANGING = ("state", "status", "data", "updated_at", "seq", "entered_seq")
"""The session columns an event changes (a flow migration, absent here, adds two)."""


def capture(
    flows: Path, request: dict[str, Any], steps: list[tuple[str, Any]]
) -> tuple[str, list[Writes]]:
    """The session id and, per transaction, the rows one lifecycle writes (create, then
    one transaction per step), exactly as the engine queued them."""
    transactions: list[Writes] = []
    original = SqlTransaction._queue

    def record(self: SqlTransaction, name: str, params: Any) -> None:
        transactions[-1].append((name, dict(params)))
        original(self, name, params)

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(FlowRegistry.from_directory(flows), f"sqlite:///{tmp}/capture.db")
        SqlTransaction._queue = record  # type: ignore[method-assign]
        try:
            transactions.append([])
            session_id = engine.create_session(request).session_id
            for index, (event, payload) in enumerate(steps):
                transactions.append([])
                engine.send(session_id, event, payload, event_id=f"e{index}")
        finally:
            SqlTransaction._queue = original  # type: ignore[method-assign]
            engine.store.close()
    # The order the store sends them in: new sessions first (the other rows refer to them).
    return session_id, [
        sorted(w, key=lambda write: write[0] != "insert_session") for w in transactions
    ]


class RawWrites:
    """Hand-written SQL for the captured rows, in one driver's parameter style."""

    def __init__(self, session_id: str, transactions: list[Writes], postgres: bool) -> None:
        self.template_id = session_id
        self.transactions = transactions
        self.postgres = postgres
        self.begin = "BEGIN" if postgres else "BEGIN IMMEDIATE"
        self.sql: dict[str, str] = {}
        for writes in transactions:
            for name, params in writes:
                if name in _TABLES:
                    columns = ", ".join(f'"{c}"' if c == "key" else c for c in params)
                    values = ", ".join(self._mark(c) for c in params)
                    self.sql[name] = f"INSERT INTO {_TABLES[name]} ({columns}) VALUES ({values})"
        sets = ", ".join(f"{c} = {self._mark(c)}" for c in _CHANGING)
        self.sql["update_session"] = (
            f"UPDATE sessions SET {sets} WHERE session_id = {self._mark('_session_id')}"
        )
        lock = " FOR UPDATE" if postgres else ""
        self.lock = f"SELECT * FROM sessions WHERE session_id = {self._mark('sid')}{lock}"
        self.find_event = (
            f"SELECT seq FROM events WHERE session_id = {self._mark('sid')} "
            f"AND event_id = {self._mark('eid')}"
        )

    def _mark(self, name: str) -> str:
        return f"%({name})s" if self.postgres else f":{name}"

    def rows_for(self, session_id: str, writes: Writes) -> Writes:
        old = self.template_id
        return [
            (name, {k: v.replace(old, session_id) if type(v) is str else v for k, v in p.items()})
            for name, p in writes
        ]

    @staticmethod
    def event_id(writes: Writes) -> str:
        return next(p["event_id"] for name, p in writes if name == "insert_event")

    def lifecycle(self, db: Any, session_id: str, chart: Chart | None = None) -> None:
        """One session, one transaction per event, as the engine's ``send`` does (on
        psycopg in pipeline mode, as the engine: one round trip for the two reads, one
        for the writes and the commit). ``chart``: run for each event before its
        transaction (the floor: the chart's step and the writes, no engine)."""
        for index, writes in enumerate(self.transactions):
            if chart is not None:
                chart(index)
            with db.pipeline() if self.postgres else nullcontext():
                db.execute(self.begin)
                if index:
                    lock = db.execute(self.lock, {"sid": session_id})
                    found = db.execute(
                        self.find_event, {"sid": session_id, "eid": self.event_id(writes)}
                    )
                    lock.fetchall()
                    found.fetchall()
                for name, params in self.rows_for(session_id, writes):
                    db.execute(self.sql[name], params)
                db.execute("COMMIT")

    def create_all(self, db: Any, ids: list[str]) -> None:
        """Create ``ids`` (the lifecycle's first transaction, for each), untimed."""
        self._grouped(db, ids, self.transactions[0], reads=False)

    def send_grouped(
        self, db: Any, ids: list[str], batch: int = 50, chart: Chart | None = None
    ) -> None:
        """Every later step for every session, ``batch`` sessions per transaction: one
        locked read and one event-id lookup per batch, one executemany per statement
        (on psycopg in pipeline mode: the reads in one round trip, the writes and the
        commit in another). ``chart``: run for each event of a batch before its
        transaction."""
        for index, writes in enumerate(self.transactions[1:], start=1):
            for first in range(0, len(ids), batch):
                part = ids[first : first + batch]
                if chart is not None:
                    for _ in part:
                        chart(index)
                self._grouped(db, part, writes, reads=True)

    def _grouped(self, db: Any, ids: list[str], writes: Writes, reads: bool) -> None:
        mark = "%s" if self.postgres else "?"
        with db.pipeline() if self.postgres else nullcontext():
            db.execute(self.begin)
            if reads:
                marks = ", ".join(mark for _ in ids)
                lock = " ORDER BY session_id FOR UPDATE" if self.postgres else ""
                sessions, events = db.cursor(), db.cursor()
                sessions.execute(f"SELECT * FROM sessions WHERE session_id IN ({marks}){lock}", ids)
                events.execute(
                    f"SELECT seq FROM events WHERE event_id = {mark} AND session_id IN ({marks})",
                    [self.event_id(writes), *ids],
                )
                sessions.fetchall()
                events.fetchall()
            cursor = db.cursor()
            per_session = [self.rows_for(sid, writes) for sid in ids]
            for position, (name, _) in enumerate(writes):
                cursor.executemany(self.sql[name], [rows[position][1] for rows in per_session])
            db.execute("COMMIT")
