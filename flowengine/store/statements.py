"""The SQL store's statements: SQLAlchemy Core constructs, compiled once per dialect.

Every statement the store runs is written here once, as a Core construct over the
tables in :mod:`flowengine.store.tables`, and :func:`compile_statements` turns them into
SQL text for one dialect (named parameters). :mod:`flowengine.store.sql` runs that
text on the DBAPI cursor: SQLAlchemy's per-``execute`` machinery (cache lookup,
parameter and result processing, events) cost about 25 µs a statement, five times the
statement itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnClause

from . import tables as t
from .base import (
    EffectAttempt,
    EffectRecord,
    EventRecord,
    FlowVersionRecord,
    SessionRecord,
    TimerRecord,
    WebhookRecord,
)

# Selected columns follow the record's field order, so a row maps onto the record
# positionally. Constants are literal columns, so every bound parameter is one the
# caller passes (``compile_statements`` checks it).

_S, _EV, _EF, _AT, _TI, _WH, _FV = (
    t.sessions,
    t.events,
    t.effects,
    t.effect_attempts,
    t.timers,
    t.webhooks,
    t.flow_versions,
)
_PENDING: ColumnClause[str] = literal_column("'pending'", String())
_RUNNING: ColumnClause[str] = literal_column("'running'", String())
_ZERO: ColumnClause[int] = literal_column(
    "0", Integer()
)  # SQLite's compiler adds OFFSET to LIMIT; keep it inline.


def _names(record: type) -> list[str]:
    return [f.name for f in fields(record)]


_SESSION_FIELDS = _names(SessionRecord)
_EVENT_FIELDS = _names(EventRecord)
_EFFECT_FIELDS = _names(EffectRecord)
_ATTEMPT_FIELDS = _names(EffectAttempt)
_TIMER_FIELDS = _names(TimerRecord)
_WEBHOOK_FIELDS = _names(WebhookRecord)
_FLOW_FIELDS = _names(FlowVersionRecord)

_SESSION_FIXED = ("session_id", "flow_name", "created_at")
_SESSION_UPDATED = [n for n in _SESSION_FIELDS if n not in _SESSION_FIXED]
_session_cols = [_S.c[n] for n in _SESSION_FIELDS]
_event_cols = [_EV.c[n] for n in _EVENT_FIELDS]
_effect_cols = [_EF.c[n] for n in _EFFECT_FIELDS]

_get_session = select(*_session_cols).where(_S.c.session_id == bindparam("session_id"))
_get_effect = select(*_effect_cols).where(_EF.c.key == bindparam("key"))
_find_event = select(*_event_cols).where(_EV.c.session_id == bindparam("session_id"))
_claimable_effects = (
    select(_EF.c.key)
    .where(
        or_(
            and_(_EF.c.status == _PENDING, _EF.c.available_at <= bindparam("now")),
            and_(_EF.c.status == _RUNNING, _EF.c.lease_until <= bindparam("now")),
        )
    )
    .order_by(_EF.c.available_at, _EF.c.id)
    .limit(bindparam("limit"))
    .offset(_ZERO)
    .with_for_update(skip_locked=True)
)


def _by_session(table: Table, order: ColumnElement[Any], names: list[str]) -> ClauseElement:
    cols = [table.c[n] for n in names]
    return select(*cols).where(table.c.session_id == bindparam("session_id")).order_by(order)


# name -> (statement, the columns an INSERT/UPDATE sets from its parameters)
_STATEMENTS: dict[str, tuple[ClauseElement, list[str] | None]] = {
    "get_session": (_get_session, None),
    "get_session_locked": (_get_session.with_for_update(), None),
    "insert_session": (insert(_S).inline(), _SESSION_FIELDS),
    # A session's id, flow name and creation time never change: leaving them out of the
    # SET list spares SQLite rewriting the (flow_name, created_at) index entry on every
    # event (a dirty index page each commit; ~30 % of a commit measured).
    "update_session": (
        update(_S).where(_S.c.session_id == bindparam("_session_id")),
        _SESSION_UPDATED,
    ),
    "find_event": (_find_event.where(_EV.c.event_id == bindparam("event_id")), None),
    "find_event_by_ref": (_find_event.where(_EV.c.external_ref == bindparam("ref")), None),
    "insert_event": (insert(_EV).inline(), _EVENT_FIELDS),
    "events": (_by_session(_EV, _EV.c.seq, _EVENT_FIELDS), None),
    "insert_effect": (insert(_EF).inline(), _EFFECT_FIELDS),
    "get_effect": (_get_effect, None),
    "get_effect_locked": (_get_effect.with_for_update(), None),
    "update_effect": (
        update(_EF).where(_EF.c.key == bindparam("_key")).returning(_EF.c.key),
        _EFFECT_FIELDS[1:],
    ),
    "effects": (_by_session(_EF, _EF.c.id, _EFFECT_FIELDS), None),
    # One round trip: lock the runnable rows (skipping rows other workers hold) and
    # take them. RETURNING comes back in no particular order; ``id`` breaks ties.
    "claim_effects": (
        update(_EF)
        .where(_EF.c.key.in_(_claimable_effects.scalar_subquery()))
        .values(
            status=_RUNNING,
            attempts=_EF.c.attempts + literal_column("1"),
            lease_until=bindparam("p_lease_until"),
            claimed_by=bindparam("p_worker"),
        )
        .returning(*_effect_cols, _EF.c.id),
        None,
    ),
    "insert_attempt": (insert(_AT).inline(), _ATTEMPT_FIELDS),
    "attempts": (
        select(*[_AT.c[n] for n in _ATTEMPT_FIELDS])
        .where(_AT.c.key == bindparam("key"))
        .order_by(_AT.c.id),
        None,
    ),
    "insert_timer": (insert(_TI).inline(), _TIMER_FIELDS[1:]),
    "due_timers": (
        select(*[_TI.c[n] for n in _TIMER_FIELDS])
        .where(_TI.c.status == _PENDING, _TI.c.due_at <= bindparam("now"))
        .order_by(_TI.c.due_at, _TI.c.timer_id)
        .limit(bindparam("limit"))
        .offset(_ZERO)
        .with_for_update(skip_locked=True),
        None,
    ),
    "finish_timer": (
        update(_TI).where(_TI.c.timer_id == bindparam("_timer_id")).returning(_TI.c.timer_id),
        ["status"],
    ),
    "timers": (_by_session(_TI, _TI.c.timer_id, _TIMER_FIELDS), None),
    "insert_webhook": (insert(_WH).inline(), _WEBHOOK_FIELDS[1:]),
    "webhooks": (_by_session(_WH, _WH.c.webhook_id, _WEBHOOK_FIELDS), None),
    "get_flow": (
        select(*[_FV.c[n] for n in _FLOW_FIELDS]).where(
            _FV.c.content_hash == bindparam("content_hash")
        ),
        None,
    ),
    "flow_names": (select(_FV.c.name).distinct().order_by(_FV.c.name), None),
    "flow_versions": (
        select(*[_FV.c[n] for n in _FLOW_FIELDS])
        .where(_FV.c.name == bindparam("name"))
        .order_by(_FV.c.created_at, _FV.c.content_hash),
        None,
    ),
    "mark_deployed": (
        update(_FV)
        .where(_FV.c.content_hash == bindparam("_content_hash"))
        .returning(_FV.c.content_hash),
        ["deployed_at", "deploy_note"],
    ),
    # Both read through the (status, due) indexes the workers' claims use.
    "parked_effects": (
        select(*_effect_cols)
        .where(_EF.c.status == literal_column("'review'", String()))
        .order_by(_EF.c.available_at, _EF.c.id)
        .limit(bindparam("limit"))
        .offset(_ZERO),
        None,
    ),
    "failed_timers": (
        select(*[_TI.c[n] for n in _TIMER_FIELDS])
        .where(_TI.c.status == literal_column("'failed'", String()))
        .order_by(_TI.c.due_at, _TI.c.timer_id)
        .limit(bindparam("limit"))
        .offset(_ZERO),
        None,
    ),
    "sessions_of_flow": (
        select(*[_S.c[n] for n in _SESSION_FIELDS])
        .where(_S.c.flow_name == bindparam("flow_name"))
        .order_by(_S.c.created_at, _S.c.session_id),
        None,
    ),
    "events_of_flow": (
        select(*[_EV.c[n] for n in _EVENT_FIELDS])
        .join(_S, _S.c.session_id == _EV.c.session_id)
        .where(_S.c.flow_name == bindparam("flow_name"))
        .order_by(_EV.c.session_id, _EV.c.seq),
        None,
    ),
}
# Batch reads for group commit, PostgreSQL only (arrays; SQLite reads row by row at no
# network cost). Locks are taken in ORDER BY order, as send_many expects.
PG_READ_SESSIONS = (
    f"SELECT {', '.join(_SESSION_FIELDS)} FROM sessions "
    "WHERE session_id = ANY(%(ids)s::text[]) ORDER BY session_id"
)
PG_LOCK_SESSIONS = f"{PG_READ_SESSIONS} FOR UPDATE"
# (A join on unnest: "session_id = ANY(..) AND event_id = ANY(..)" was planned as a
# read of every event of the batch's sessions, 6x slower at 2,000 events.)
PG_FIND_EVENTS = (
    f"SELECT {', '.join('e.' + name for name in _EVENT_FIELDS)} FROM events AS e "
    "JOIN unnest(%(sessions)s::text[], %(events)s::text[]) AS k(session_id, event_id) "
    "ON e.session_id = k.session_id AND e.event_id = k.event_id"
)
# What a queued write was, for the error when it fails.
WRITES = {
    "insert_session": "new sessions not inserted",
    "update_session": "sessions not updated",
    "insert_event": "log rows not written",
    "insert_effect": "effects not added",
    "insert_timer": "timers not added",
    "insert_webhook": "webhooks not queued",
}

# Insert-if-absent must not fail when two processes save the same version at once:
# the one statement spelled per dialect (both spell it ON CONFLICT DO NOTHING).
_SAVE_FLOW = {
    "sqlite": sqlite.insert(_FV).on_conflict_do_nothing(index_elements=["content_hash"]),
    "postgresql": postgresql.insert(_FV).on_conflict_do_nothing(index_elements=["content_hash"]),
}


@dataclass(frozen=True, slots=True)
class Sql:
    """The statements above as SQL text for one dialect, with named parameters."""

    get_session: str
    get_session_locked: str
    insert_session: str
    update_session: str
    find_event: str
    find_event_by_ref: str
    insert_event: str
    events: str
    insert_effect: str
    get_effect: str
    get_effect_locked: str
    update_effect: str
    effects: str
    claim_effects: str
    insert_attempt: str
    attempts: str
    insert_timer: str
    due_timers: str
    finish_timer: str
    timers: str
    insert_webhook: str
    webhooks: str
    get_flow: str
    flow_names: str
    flow_versions: str
    mark_deployed: str
    parked_effects: str
    failed_timers: str
    sessions_of_flow: str
    events_of_flow: str
    save_flow: str


@cache
def compile_statements(dialect_name: str) -> Sql:
    dialect: Dialect
    if dialect_name == "sqlite":
        # pysqlite takes ``:name`` parameters from a dict, as psycopg takes ``%(name)s``.
        dialect = sqlite.pysqlite.dialect(paramstyle="named")
    else:
        dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    statements = {**_STATEMENTS, "save_flow": (_SAVE_FLOW[dialect_name], _FLOW_FIELDS)}
    sql: dict[str, str] = {}
    for name, (statement, column_keys) in statements.items():
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=column_keys))
        constants = [
            key
            for key, bind in compiled.binds.items()
            if not bind.required and bind.value is not None
        ]
        assert not constants, f"{name}: bound constants {constants}; use literal_column"
        sql[name] = compiled.string
    return Sql(**sql)
