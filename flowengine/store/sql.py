"""The SQL store: SQLite (the embedded default) and PostgreSQL, one set of Core queries.

:class:`SqlStore` implements :class:`~flowengine.store.base.Store` over the tables in
:mod:`flowengine.store.tables` and behaves like the reference
:class:`~flowengine.store.memory.MemoryStore`: one test suite runs against all of them.
Opening a store brings its schema to the newest Alembic revision (``migrations/``),
so a fresh file or database needs no set-up step.

How the two databases keep the contract:

* **SQLite** — every transaction starts with ``BEGIN IMMEDIATE``: writers take the
  database's write lock up front and queue behind each other (``busy_timeout``), so a
  read-then-write never fails half way and ``get_session(for_update=True)`` needs no
  row lock. WAL journal, ``synchronous=FULL`` unless the URL says otherwise, foreign
  keys on.
* **PostgreSQL** — ``READ COMMITTED`` with row locks: ``get_session(for_update=True)``
  is ``SELECT … FOR UPDATE``; effect and timer claims are ``FOR UPDATE SKIP LOCKED``
  ordered by due time, so many worker processes share the outboxes without handing
  one row to two of them. ``?schema=NAME`` keeps every table in that schema.

Speed: the statements (:mod:`flowengine.store.statements`) are compiled once per
dialect into SQL text that runs on the connection's DBAPI cursor, not through
SQLAlchemy's per-``execute`` machinery; JSON columns are encoded and decoded in
:class:`SqlTransaction`; connections stay with the store between transactions.
URLs, dialects and migrations (:mod:`flowengine.store.migrate`) stay SQLAlchemy's and
Alembic's.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import msgspec
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool, PoolProxiedConnection

from ..errors import StoreConflict, StoreError
from ..forks import forget_in_children
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
from .migrate import upgrade
from .slots import FairSlots
from .statements import (
    PG_FIND_EVENTS,
    PG_LOCK_SESSIONS,
    PG_READ_SESSIONS,
    WRITES,
    Sql,
    compile_statements,
)
from .writer import WriterTurn

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
POOL_SIZE = 5
"""Connections a store keeps open between transactions (URL option ``pool_size``)."""
POOL_OVERFLOW = 10
"""More it opens while that many more transactions run at once, closed again after
(``max_overflow``)."""
POOL_TIMEOUT_S = 30
"""How long a transaction waits for a connection when all are in use (``pool_timeout``)."""

_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


# --------------------------------------------------------------------------- JSON


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON: store amounts as int or str")


# msgspec, not the standard library: encoding the JSON columns was ~5 % of a SQLite
# step (a webhook snapshot is ~1 KB) and msgspec does it ten times faster. Unlike
# orjson it keeps integers of any size exact both ways (orjson turns an integer above
# 64 bits into a float when loading: a token amount in base units can be 2**256 - 1).
# The engine refuses event values JSON cannot hold exactly (flowengine.jsonvalue), so
# msgspec never meets a NaN or a Decimal it would quietly turn into null or a string.
_encoder = msgspec.json.Encoder(enc_hook=_json_default)
_decode = msgspec.json.Decoder().decode


def _loads(text: str | bytes) -> Any:
    try:
        return _decode(text)
    except msgspec.DecodeError:
        # Earlier releases wrote with the json module, which writes NaN and Infinity
        # tokens msgspec does not read: such rows stay readable.
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StoreError(f"a JSON column of the store holds invalid JSON: {exc}") from exc


def _dumps(value: object) -> str:
    """JSON for the payload columns; read-only mappings (``MappingProxyType``) allowed."""
    return _encoder.encode(value).decode()


# --------------------------------------------------------------------------- transaction


class SqlTransaction:
    """The :class:`~flowengine.store.base.Transaction` of :class:`SqlStore`: one DBAPI
    cursor inside one database transaction.

    Every database error leaves a method as :class:`~flowengine.errors.StoreError`
    (:class:`StoreConflict` for a broken uniqueness or reference rule).
    """

    __slots__ = ("_backend", "_cur", "_dec", "_enc", "_locked", "_queued", "_sql")

    def __init__(self, cursor: Any, backend: _Backend) -> None:
        self._cur = cursor
        self._backend = backend
        self._sql = backend.sql
        self._enc = backend.encode
        self._dec = backend.decode
        self._queued: dict[str, list[Mapping[str, Any]]] = {}
        self._locked: set[str] = set()
        """Sessions read FOR UPDATE in this transaction: they exist until it ends."""

    # Writes whose result nobody reads in the transaction (the session row, the log row,
    # the outbox rows) are queued per statement and sent as one executemany each before
    # the next read and at commit: a batch of 50 events costs a handful of round trips,
    # not 50 × 5. Their errors surface there, still inside the transaction.
    def _queue(self, name: str, params: Mapping[str, Any]) -> None:
        rows = self._queued.get(name)
        if rows is None:
            self._queued[name] = [params]
        else:
            rows.append(params)

    def flush(self) -> None:
        """Send the queued writes: new sessions first (the other rows refer to them)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, {}
        names = sorted(queued, key=lambda name: name != "insert_session")
        for name in names:
            rows = queued[name]
            try:
                if name == "update_session":
                    self._update_sessions(rows)
                else:
                    self._send(getattr(self._sql, name), rows)
            except self._backend.error as exc:
                self._backend.raise_store_error(exc, WRITES[name])

    def _send(self, sql: str, rows: list[Mapping[str, Any]]) -> None:
        if len(rows) == 1:
            self._cur.execute(sql, rows[0])
        else:
            self._cur.executemany(sql, rows)

    def _update_sessions(self, rows: list[Mapping[str, Any]]) -> None:
        sql = self._sql.update_session
        if self._backend.name == "postgresql":
            # A session this transaction locked exists until it ends: its update needs no
            # row count, and so no extra round trip before the commit.
            held = [row for row in rows if row["_session_id"] in self._locked]
            if held:
                self._send(sql, held)
            rows = [row for row in rows if row["_session_id"] not in self._locked]
            if not rows:
                return
            conn = self._cur.connection
            with conn.cursor() as cursor:
                with conn.pipeline():  # nested: syncs on exit, so the row count is known
                    cursor.executemany(sql, rows)
                updated = cursor.rowcount
        else:
            self._cur.executemany(sql, rows)
            updated = self._cur.rowcount
        if updated != len(rows):
            missing = ", ".join(str(row["_session_id"]) for row in rows[:3])
            raise StoreConflict(
                f"{len(rows) - updated} of the sessions to update do not exist (among {missing})"
            )

    def _exec(self, sql: str, params: Mapping[str, Any], what: str = "") -> Any:
        if self._queued:
            self.flush()
        try:
            return self._cur.execute(sql, params)
        except self._backend.error as exc:
            self._backend.raise_store_error(exc, what)

    def _one(self, sql: str, params: Mapping[str, Any]) -> Any:
        self._exec(sql, params)
        try:
            return self._cur.fetchone()
        except self._backend.error as exc:  # in a pipeline, a queued write fails here
            self._backend.raise_store_error(exc, "a queued write or this read")

    def _all(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        self._exec(sql, params)
        try:
            rows: list[Any] = self._cur.fetchall()
        except self._backend.error as exc:
            self._backend.raise_store_error(exc, "a queued write or this read")
        return rows

    # rows -> records
    def _session(self, r: Any) -> SessionRecord:
        return SessionRecord(
            r[0], r[1], r[2], r[3], r[4], r[5], self._dec(r[6]), r[7], r[8], r[9], r[10], r[11]
        )

    def _event(self, r: Any) -> EventRecord:
        dec = self._dec
        return EventRecord(
            r[0], r[1], r[2], r[3], r[4], r[5], dec(r[6]), tuple(dec(r[7])), r[8], r[9], dec(r[10])
        )

    def _effect(self, r: Any) -> EffectRecord:
        params = None if r[12] is None else self._dec(r[12])
        return EffectRecord(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], params
        )

    def _webhook(self, r: Any) -> WebhookRecord:
        return WebhookRecord(r[0], r[1], r[2], self._dec(r[3]), r[4], r[5], r[6], r[7])

    # records -> parameters
    def _session_params(self, r: SessionRecord) -> dict[str, Any]:
        return {
            "session_id": r.session_id,
            "flow_name": r.flow_name,
            "flow_version": r.flow_version,
            "flow_hash": r.flow_hash,
            "state": r.state,
            "status": r.status,
            "data": self._enc(r.data),
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "expires_at": r.expires_at,
            "seq": r.seq,
            "entered_seq": r.entered_seq,
        }

    def _effect_params(self, r: EffectRecord) -> dict[str, Any]:
        enc = self._enc
        return {
            "key": r.key,
            "session_id": r.session_id,
            "effect": r.effect,
            "state": r.state,
            "seq": r.seq,
            "status": r.status,
            "attempts": r.attempts,
            "available_at": r.available_at,
            "created_at": r.created_at,
            "lease_until": r.lease_until,
            "claimed_by": r.claimed_by,
            "last_error": r.last_error,
            "params": None if r.params is None else enc(r.params),
        }

    # sessions and their log
    def get_session(self, session_id: str, *, for_update: bool = False) -> SessionRecord | None:
        sql = self._sql.get_session_locked if for_update else self._sql.get_session
        row = self._one(sql, {"session_id": session_id})
        if row is None:
            return None
        if for_update:
            self._locked.add(session_id)
        return self._session(row)

    def insert_session(self, record: SessionRecord) -> None:
        self._queue("insert_session", self._session_params(record))

    def update_session(self, record: SessionRecord) -> None:
        """Replace the stored session; a session that does not exist is a conflict (at
        the next read or at commit, when the queued update runs)."""
        params = self._session_params(record)
        params["_session_id"] = params.pop("session_id")
        del params["flow_name"], params["created_at"]  # never change (see the statement)
        self._queue("update_session", params)

    def lock_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        return self._for_events(keys, lock=True)

    def read_for_events(
        self, keys: Sequence[tuple[str, str | None]]
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        return self._for_events(keys, lock=False)

    def _for_events(
        self, keys: Sequence[tuple[str, str | None]], *, lock: bool
    ) -> tuple[dict[str, SessionRecord], dict[tuple[str, str], EventRecord]]:
        if not keys:
            return {}, {}
        ids = sorted({sid for sid, _ in keys})
        logged = [(sid, eid) for sid, eid in keys if eid is not None]
        if self._backend.name != "postgresql":  # a local file: row by row costs nothing
            found = (self.get_session(sid, for_update=lock) for sid in ids)
            events = ((key, self.find_event(*key)) for key in logged)
            return (
                {record.session_id: record for record in found if record is not None},
                {key: record for key, record in events if record is not None},
            )
        if self._queued:
            self.flush()
        # Both queries go out before either result is read: one round trip (pipeline).
        # One session (a plain send): the same statements as get_session / find_event,
        # cheaper for the server than the array forms a batch needs.
        single = len(ids) == 1 and len(logged) <= 1
        try:
            with self._cur.connection.cursor() as event_cursor:
                if single:
                    sql = self._sql.get_session_locked if lock else self._sql.get_session
                    self._cur.execute(sql, {"session_id": ids[0]})
                else:
                    self._cur.execute(PG_LOCK_SESSIONS if lock else PG_READ_SESSIONS, {"ids": ids})
                if single and logged:
                    sid, eid = logged[0]
                    event_cursor.execute(self._sql.find_event, {"session_id": sid, "event_id": eid})
                elif logged:
                    params = {"sessions": [k[0] for k in logged], "events": [k[1] for k in logged]}
                    event_cursor.execute(PG_FIND_EVENTS, params)
                session_rows = self._cur.fetchall()
                event_rows = event_cursor.fetchall() if logged else []
        except self._backend.error as exc:
            self._backend.raise_store_error(exc)
        if lock:
            self._locked.update(row[0] for row in session_rows)
        return (
            {row[0]: self._session(row) for row in session_rows},
            {(row[0], row[2]): self._event(row) for row in event_rows},
        )

    def find_event(self, session_id: str, event_id: str) -> EventRecord | None:
        row = self._one(self._sql.find_event, {"session_id": session_id, "event_id": event_id})
        return None if row is None else self._event(row)

    def find_event_by_ref(self, session_id: str, external_ref: str) -> EventRecord | None:
        row = self._one(
            self._sql.find_event_by_ref, {"session_id": session_id, "ref": external_ref}
        )
        return None if row is None else self._event(row)

    def append_event(self, event: EventRecord) -> None:
        enc = self._enc
        params = {
            "session_id": event.session_id,
            "seq": event.seq,
            "event_id": event.event_id,
            "event": event.event,
            "source": event.source,
            "target": event.target,
            "payload": enc(event.payload),
            "requests": enc(event.requests),
            "created_at": event.created_at,
            "external_ref": event.external_ref,
            "meta": enc(event.meta),
        }
        self._queue("insert_event", params)

    def events(self, session_id: str) -> list[EventRecord]:
        return [self._event(r) for r in self._all(self._sql.events, {"session_id": session_id})]

    # outboxes
    def add_effect(self, effect: EffectRecord) -> None:
        self._queue("insert_effect", self._effect_params(effect))

    def add_timer(
        self, session_id: str, event: str, state: str, entered_seq: int, due_at: int
    ) -> None:
        params = {
            "session_id": session_id,
            "event": event,
            "state": state,
            "entered_seq": entered_seq,
            "due_at": due_at,
            "status": "pending",
        }
        self._queue("insert_timer", params)

    def add_webhook(self, session_id: str, type: str, body: JSON, created_at: int) -> None:
        params = {
            "session_id": session_id,
            "type": type,
            "body": self._enc(body),
            "status": "pending",
            "attempts": 0,
            "available_at": created_at,
            "created_at": created_at,
        }
        self._queue("insert_webhook", params)

    # workers
    def claim_effects(self, now: int, limit: int, worker: str, lease_ms: int) -> list[EffectRecord]:
        params = {"now": now, "limit": limit, "p_lease_until": now + lease_ms, "p_worker": worker}
        rows = self._all(self._sql.claim_effects, params)
        rows.sort(key=lambda r: (r[7], r[13]))  # (available_at, id): the memory store's order
        return [self._effect(r) for r in rows]

    def get_effect(self, key: str, *, for_update: bool = False) -> EffectRecord | None:
        sql = self._sql.get_effect_locked if for_update else self._sql.get_effect
        row = self._one(sql, {"key": key})
        return None if row is None else self._effect(row)

    def update_effect(self, record: EffectRecord) -> None:
        params = self._effect_params(record)
        params["_key"] = params.pop("key")
        if self._one(self._sql.update_effect, params) is None:
            raise KeyError(record.key)

    def record_attempt(self, attempt: EffectAttempt) -> None:
        params = {
            "key": attempt.key,
            "attempt": attempt.attempt,
            "started_at": attempt.started_at,
            "finished_at": attempt.finished_at,
            "outcome": attempt.outcome,
            "detail": attempt.detail,
        }
        self._exec(self._sql.insert_attempt, params, f"attempt of effect {attempt.key} not saved")

    def attempts(self, key: str) -> list[EffectAttempt]:
        return [EffectAttempt(*r) for r in self._all(self._sql.attempts, {"key": key})]

    def claim_due_timers(self, now: int, limit: int) -> list[TimerRecord]:
        rows = self._all(self._sql.due_timers, {"now": now, "limit": limit})
        return [TimerRecord(*r) for r in rows]

    def finish_timer(self, timer_id: int, status: TimerStatus) -> None:
        params = {"_timer_id": timer_id, "status": status}
        if self._one(self._sql.finish_timer, params) is None:
            raise KeyError(timer_id)

    def timers(self, session_id: str) -> list[TimerRecord]:
        return [TimerRecord(*r) for r in self._all(self._sql.timers, {"session_id": session_id})]

    def webhooks(self, session_id: str) -> list[WebhookRecord]:
        rows = self._all(self._sql.webhooks, {"session_id": session_id})
        return [self._webhook(r) for r in rows]

    def effects(self, session_id: str) -> list[EffectRecord]:
        rows = self._all(self._sql.effects, {"session_id": session_id})
        return [self._effect(r) for r in rows]

    def parked_effects(self, limit: int) -> list[EffectRecord]:
        return [self._effect(r) for r in self._all(self._sql.parked_effects, {"limit": limit})]

    def failed_timers(self, limit: int) -> list[TimerRecord]:
        rows = self._all(self._sql.failed_timers, {"limit": limit})
        return [TimerRecord(*r) for r in rows]

    # flow versions
    def save_flow_version(self, record: FlowVersionRecord) -> None:
        params = {
            "name": record.name,
            "version": record.version,
            "content_hash": record.content_hash,
            "text": record.text,
            "created_at": record.created_at,
            "deployed_at": record.deployed_at,
            "deploy_note": record.deploy_note,
        }
        self._exec(self._sql.save_flow, params, f"flow {record.name} not saved")

    def get_flow_version(self, content_hash: str) -> FlowVersionRecord | None:
        row = self._one(self._sql.get_flow, {"content_hash": content_hash})
        return None if row is None else FlowVersionRecord(*row)

    def flow_names(self) -> list[str]:
        return [name for (name,) in self._all(self._sql.flow_names, {})]

    def flow_versions(self, name: str) -> list[FlowVersionRecord]:
        return [FlowVersionRecord(*r) for r in self._all(self._sql.flow_versions, {"name": name})]

    def mark_deployed(self, content_hash: str, at: int, note: str) -> None:
        params = {"_content_hash": content_hash, "deployed_at": at, "deploy_note": note}
        if self._one(self._sql.mark_deployed, params) is None:
            raise KeyError(content_hash)

    def sessions_of_flow(self, flow_name: str) -> list[SessionRecord]:
        rows = self._all(self._sql.sessions_of_flow, {"flow_name": flow_name})
        return [self._session(r) for r in rows]

    def events_of_flow(self, flow_name: str) -> list[EventRecord]:
        rows = self._all(self._sql.events_of_flow, {"flow_name": flow_name})
        return [self._event(r) for r in rows]


def _identity(value: Any) -> Any:
    return value


_UNSENDABLE = (OverflowError, UnicodeEncodeError)
"""What the drivers raise for a value they cannot send: an integer past 64 bits
(sqlite3), text that is not valid UTF-8 (both)."""


@dataclass(frozen=True)
class _Backend:
    """What differs between the databases once the statements are compiled: the SQL
    text, how JSON columns travel, and the DBAPI's exception classes."""

    name: str
    where: str
    error: tuple[type[Exception], ...]
    """What a statement can raise for its data or the database: the DBAPI's errors
    and ``_UNSENDABLE``."""
    conflict: type[Exception]
    sql: Sql
    encode: Callable[[object], object]
    decode: Callable[[Any], Any]

    @classmethod
    def of(cls, engine: Engine, where: str) -> _Backend:
        name = engine.dialect.name
        dbapi = engine.dialect.loaded_dbapi
        if name == "postgresql":
            from psycopg.types.json import Jsonb

            # psycopg sends Jsonb as JSON text and loads jsonb columns itself.
            def encode(value: object) -> object:
                return Jsonb(value, _dumps)

            return cls(
                name,
                where,
                (dbapi.Error, *_UNSENDABLE),
                dbapi.IntegrityError,
                compile_statements(name),
                encode,
                _identity,
            )
        return cls(
            name,
            where,
            (dbapi.Error, *_UNSENDABLE),
            dbapi.IntegrityError,
            compile_statements(name),
            _dumps,
            _loads,
        )

    def raise_store_error(self, exc: Exception, what: str = "") -> NoReturn:
        detail = _describe(exc)
        if isinstance(exc, self.conflict):
            raise StoreConflict(f"{what}: {detail}" if what else detail) from exc
        raise StoreError(f"store {self.where}: {detail}") from exc


def _describe(exc: BaseException) -> str:
    """The database's message, on one line (PostgreSQL's DETAIL names the key)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


# --------------------------------------------------------------------------- store


@dataclass(frozen=True)
class PoolLimits:
    """How many connections a store keeps and opens, and how long a transaction waits."""

    size: int = POOL_SIZE
    overflow: int = POOL_OVERFLOW
    timeout_s: int = POOL_TIMEOUT_S

    @classmethod
    def from_query(cls, query: dict[str, Any], where: str) -> PoolLimits:
        """Take ``pool_size``, ``max_overflow`` and ``pool_timeout`` out of a URL's query."""
        values: dict[str, int] = {}
        for option, name, lowest in (
            ("pool_size", "size", 1),
            ("max_overflow", "overflow", 0),
            ("pool_timeout", "timeout_s", 0),
        ):
            if option in query:
                text = str(query.pop(option))
                if not text.isdigit() or int(text) < lowest:
                    raise StoreError(
                        f"bad store URL {where}: {option}={text!r} must be a whole number "
                        f"of at least {lowest}"
                    )
                values[name] = int(text)
        return cls(**values)


class SqlStore:
    """A store in SQLite (``sqlite:///path.db``) or PostgreSQL (``postgresql://…``).

    SQLite URL options: ``synchronous`` (``FULL`` by default; ``NORMAL`` trades the
    last transactions before a power cut for speed), ``busy_timeout`` (ms a writer
    waits for the lock). PostgreSQL: ``schema`` (created if absent, holds every
    table); the other query parameters go to libpq (``sslmode``, ``connect_timeout``…).
    Both: ``pool_size`` (connections kept open, 5), ``max_overflow`` (more opened while
    that many more transactions run, 10), ``pool_timeout`` (seconds a transaction
    waits for a connection, 30).
    """

    def __init__(self, url: str, *, existing: bool = False) -> None:
        """``existing``: open only a store that is there already (commands that read a
        store: a mistyped URL must fail, not create an empty store that checks clean)."""
        self.url = url
        self.schema: str | None = None
        self._idle: list[PoolProxiedConnection] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        target = _normalize(url)
        self.display_url = target.render_as_string(hide_password=True)
        self.dialect = target.get_backend_name()
        self._turn: WriterTurn | None = None
        """SQLite: writers queue here for the database, not in SQLite's busy handler."""
        query = dict(target.query)
        self.pool = PoolLimits.from_query(query, self.display_url)
        target = target.set(query=query)
        try:
            if self.dialect == "sqlite":
                self.engine = self._sqlite_engine(target)
            else:
                self.engine = self._postgres_engine(target)
        except (ArgumentError, ValueError, TypeError) as exc:
            raise StoreError(f"bad store URL {self.display_url}: {exc}") from exc
        self._backend = _Backend.of(self.engine, self.display_url)
        self._slots = FairSlots(self.pool.size + self.pool.overflow)
        forget_in_children(self)
        try:
            if existing:
                self._require_existing(target)
            upgrade(self.engine, self.schema)
        except StoreError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open store {self.display_url}: {_describe(cause)}") from exc

    def _sqlite_engine(self, target: URL) -> Engine:
        query = dict(target.query)
        synchronous = str(query.pop("synchronous", "FULL")).upper()
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise StoreError(
                f"bad store URL {self.display_url}: synchronous={synchronous!r}; "
                f"use one of {', '.join(SQLITE_SYNCHRONOUS)}"
            )
        busy_timeout = query.pop("busy_timeout", str(SQLITE_BUSY_TIMEOUT_MS))
        if not str(busy_timeout).isdigit():
            raise StoreError(
                f"bad store URL {self.display_url}: busy_timeout={busy_timeout!r} "
                "is not a number of milliseconds"
            )
        if query:
            raise StoreError(
                f"bad store URL {self.display_url}: unknown option(s) {', '.join(sorted(query))}; "
                "SQLite takes synchronous, busy_timeout, pool_size, max_overflow and pool_timeout"
            )
        if target.database in (None, "", ":memory:"):
            raise StoreError(
                f"bad store URL {self.display_url}: name a file (sqlite:///path/to/store.db); "
                "for a store without a file use memory://"
            )
        engine = create_engine(target.set(query={}), json_serializer=_dumps, poolclass=NullPool)
        self._turn = WriterTurn(
            Path(str(target.database)).resolve(), int(str(busy_timeout)) / 1000, self.display_url
        )

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from pysqlite: the store emits BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(str(busy_timeout))}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        # A pool event: unlike an engine "begin" listener it adds nothing to each execute.
        event.listen(engine, "connect", on_connect)
        return engine

    def _require_existing(self, target: URL) -> None:
        missing = StoreError(
            f"no store at {self.display_url}: check the URL (this command reads a store "
            "and does not create one; the first engine to open a URL creates it)"
        )
        if self.dialect == "sqlite" and not Path(str(target.database)).is_file():
            raise missing
        with self.engine.connect() as conn:
            if not sa_inspect(conn).has_table("alembic_version", schema=self.schema):
                raise missing

    def _postgres_engine(self, target: URL) -> Engine:
        query = dict(target.query)
        schema = query.pop("schema", None)
        connect_args: dict[str, Any] = {}
        if schema is not None:
            schema = str(schema)
            if not _SCHEMA_NAME.fullmatch(schema):
                raise StoreError(
                    f"bad store URL {self.display_url}: schema {schema!r} must be letters, "
                    "digits and underscores, not starting with a digit"
                )
            self.schema = schema
            # Quoted, as the migrations create it: unquoted, PostgreSQL would fold
            # "Payments" to "payments" and look for the tables in another schema.
            search_path = f'-csearch_path="{schema}"'
            connect_args["options"] = f"{query.pop('options', '')} {search_path}".strip()
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        engine = create_engine(
            target.set(query=query),
            json_serializer=_dumps,
            connect_args=connect_args,
            poolclass=NullPool,
        )

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            from psycopg.types.json import set_json_loads

            set_json_loads(_loads, dbapi_conn)  # jsonb columns come back through msgspec

        event.listen(engine, "connect", on_connect)
        return engine

    def _connection(self) -> PoolProxiedConnection:
        """A connection for one transaction: an idle one of this store's, or a new one.

        The store is its own connection pool (SQLAlchemy's engine runs with
        ``NullPool``): a QueuePool checkout and check-in, with its reset-on-return
        rollback, cost about 25 µs a transaction, as much as the statements of a small
        one. At most ``pool.size + pool.overflow`` transactions hold a connection at
        once (``_slots``); the others wait for one to end, first come first served, up
        to ``pool.timeout_s``. At most
        ``pool.size`` connections stay open between transactions.
        """
        limits = self.pool
        if not self._slots.acquire(timeout=limits.timeout_s):
            raise StoreError(
                f"store {self.display_url}: no connection free after {limits.timeout_s} s "
                f"({limits.size + limits.overflow} transactions already running; raise "
                "pool_size / max_overflow in the store URL)"
            )
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self.engine.raw_connection()
        except BaseException as exc:
            # The slot goes back whatever happened (a server refusing connections while
            # it restarts must not use the pool up for good), and a driver's own error
            # (raw_connection does not wrap it) leaves as a StoreError.
            self._slots.release()
            if isinstance(exc, (SQLAlchemyError, *self._backend.error)):
                cause = getattr(exc, "orig", None) or exc
                raise StoreError(f"store {self.display_url}: {_describe(cause)}") from exc
            raise

    def _release(self, raw: PoolProxiedConnection) -> None:
        """Keep a healthy connection for the next transaction (up to ``pool.size``).

        A broken one is closed, and so are the idle ones: a server that dropped one
        connection (a restart, a failover) has most likely dropped them all. So is one
        still inside a transaction (it never should be: a safety net, not a path).
        """
        to_close: list[PoolProxiedConnection] = []
        with self._idle_lock:
            if not raw.is_valid:
                to_close, self._idle = [raw, *self._idle], []
            elif self._closed or len(self._idle) >= self.pool.size or _in_transaction(raw):
                to_close = [raw]
            else:
                self._idle.append(raw)
        self._slots.release()
        for connection in to_close:
            connection.close()

    @contextmanager
    def _checked_out(self) -> Iterator[PoolProxiedConnection]:
        """A connection for one transaction, given back when the block ends; database
        failures (including at commit) leave the block as ``StoreError``."""
        raw = self._connection()
        try:
            yield raw
        except self._backend.error as exc:
            self._backend.raise_store_error(exc)
        finally:
            self._release(raw)

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        """One database transaction: committed when the block ends, rolled back if it
        raises. Database failures (including at commit) leave as ``StoreError``."""
        with self._checked_out() as raw, self._write_turn():
            conn: Any = raw.driver_connection
            cursor = conn.cursor()
            try:
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                    tx = SqlTransaction(cursor, self._backend)
                    yield tx
                    tx.flush()
                    conn.commit()
                else:
                    # Pipeline mode: the queued writes go out together with the commit,
                    # one round trip, instead of one each; a failed write still fails
                    # the commit, and everything is rolled back.
                    with conn.pipeline():
                        tx = SqlTransaction(cursor, self._backend)
                        yield tx
                        tx.flush()
                        conn.commit()
            except BaseException:
                _rollback(raw)
                raise
            finally:
                cursor.close()

    @property
    def plan_sends(self) -> bool:
        """SQLite's write lock covers the whole database, and WAL readers never wait
        for it: while this store's writers often find it taken, the engine plans sends
        before taking it (:mod:`flowengine.planning`). PostgreSQL locks rows: sends to
        different sessions run at once already."""
        return self._turn is not None and self._turn.contended

    def _write_turn(self) -> AbstractContextManager[None]:
        """On SQLite, the turn to write the file (:mod:`.writer`); PostgreSQL's writers
        wait for the rows they lock, not for each other."""
        return nullcontext() if self._turn is None else self._turn.held()

    @contextmanager
    def reading(self) -> Iterator[SqlTransaction]:
        """A transaction for reads: on SQLite a deferred one (a WAL snapshot: it takes
        no write lock and no writer waits for it), on PostgreSQL plain ``READ
        COMMITTED`` reads without row locks. Rolled back when the block ends."""
        with self._checked_out() as raw:
            conn: Any = raw.driver_connection
            cursor = conn.cursor()
            try:
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN")
                    yield SqlTransaction(cursor, self._backend)
                else:
                    with conn.pipeline():
                        yield SqlTransaction(cursor, self._backend)
            finally:
                cursor.close()
                _rollback(raw)

    def close(self) -> None:
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for raw in idle:
            raw.close()
        if self._turn is not None:
            self._turn.close()
        self.engine.dispose()

    def forget_parent(self) -> None:
        """In a forked child: the parent's connections are the parent's (SQLite says a
        connection must not cross a fork; closing a PostgreSQL one here would end the
        parent's session), and a slot or lock held by a parent's thread is never
        given back here. Start afresh, keeping the old connections from being closed."""
        _ABANDONED.extend(self._idle)
        self._idle = []
        self._idle_lock = threading.Lock()
        self._slots = FairSlots(self.pool.size + self.pool.overflow)

    def __repr__(self) -> str:
        return f"SqlStore({self.display_url!r})"


_ABANDONED: list[PoolProxiedConnection] = []
"""A forked child's copies of its parent's connections: never used, never closed."""


def _in_transaction(raw: PoolProxiedConnection) -> bool:
    conn: Any = raw.driver_connection
    if isinstance(conn, sqlite3.Connection):
        return conn.in_transaction
    return bool(conn.info.transaction_status != 0)  # psycopg: 0 is IDLE


def _rollback(raw: PoolProxiedConnection) -> None:
    try:
        conn: Any = raw.driver_connection
        conn.rollback()
    except Exception:
        raw.invalidate()  # the connection is broken: the pool opens a new one


def _normalize(url: str) -> URL:
    scheme, sep, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        raise StoreError(
            f"unknown store URL {url!r}: use sqlite:///path.db or "
            "postgresql://user@host/dbname (postgres:// and postgresql+psycopg:// work too)"
        )
    try:
        return make_url(f"{driver}://{rest}")
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"bad store URL {url!r}: {exc}") from exc
