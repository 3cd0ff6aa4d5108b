"""The SQL schema of the store, as SQLAlchemy Core tables (no ORM).

:mod:`flowengine.store.statements` builds its statements from these tables; the Alembic
migrations in ``migrations/versions`` create them, and a test checks that the two
agree. Column names match the fields of the records in :mod:`flowengine.store.base`,
so a row maps onto a record positionally and a record onto a row by name.

Tables carry no schema name: a PostgreSQL ``?schema=`` URL puts them in that schema
through the connection's ``search_path``. Times are BIGINT milliseconds since the
epoch; JSON is ``JSONB`` on PostgreSQL (integers of any size round-trip exactly) and
JSON text on SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

# A surrogate key: BIGSERIAL on PostgreSQL, the rowid alias (INTEGER PRIMARY KEY) on SQLite.
RowId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
Json: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
Millis = BigInteger

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String, primary_key=True),
    Column("flow_name", String, nullable=False),
    Column("flow_version", String, nullable=False),
    Column("flow_hash", String, nullable=False),
    Column("state", String, nullable=False),
    Column("status", String, nullable=False),
    Column("data", Json, nullable=False),
    Column("created_at", Millis, nullable=False),
    Column("updated_at", Millis, nullable=False),
    Column("expires_at", Millis, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("entered_seq", BigInteger, nullable=False),
    Index("ix_sessions_flow_name_created_at", "flow_name", "created_at"),
)

events = Table(
    "events",
    metadata,
    Column("session_id", String, ForeignKey("sessions.session_id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("event_id", String, nullable=False),
    Column("event", String, nullable=False),
    Column("source", String, nullable=False),
    Column("target", String, nullable=False),
    Column("payload", Json, nullable=False),
    Column("requests", Json, nullable=False),
    Column("created_at", Millis, nullable=False),
    Column("external_ref", String, nullable=True),
    Column("meta", Json, nullable=False),
    Index("ix_events_session_id_event_id", "session_id", "event_id", unique=True),
)
Index(
    "ix_events_session_id_external_ref",
    events.c.session_id,
    events.c.external_ref,
    unique=True,
    postgresql_where=events.c.external_ref.is_not(None),
    sqlite_where=events.c.external_ref.is_not(None),
)

effects = Table(
    "effects",
    metadata,
    # ``id`` keeps insertion order (``Transaction.effects`` lists effects as added).
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("key", String, nullable=False, unique=True),
    Column("session_id", String, ForeignKey("sessions.session_id"), nullable=False),
    Column("effect", String, nullable=False),
    Column("state", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", Millis, nullable=False),
    Column("created_at", Millis, nullable=False),
    Column("lease_until", Millis, nullable=True),
    Column("claimed_by", String, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("params", Json, nullable=True),
    Index("ix_effects_status_available_at", "status", "available_at"),
    Index("ix_effects_session_id", "session_id"),
)

effect_attempts = Table(
    "effect_attempts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("key", String, ForeignKey("effects.key"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Millis, nullable=False),
    Column("finished_at", Millis, nullable=False),
    Column("outcome", String, nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_effect_attempts_key", "key"),
)

timers = Table(
    "timers",
    metadata,
    Column("timer_id", RowId, primary_key=True, autoincrement=True),
    Column("session_id", String, ForeignKey("sessions.session_id"), nullable=False),
    Column("event", String, nullable=False),
    Column("state", String, nullable=False),
    Column("entered_seq", BigInteger, nullable=False),
    Column("due_at", Millis, nullable=False),
    Column("status", String, nullable=False),
    Index("ix_timers_status_due_at", "status", "due_at"),
    Index("ix_timers_session_id", "session_id"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", RowId, primary_key=True, autoincrement=True),
    Column("session_id", String, ForeignKey("sessions.session_id"), nullable=False),
    Column("type", String, nullable=False),
    Column("body", Json, nullable=False),
    Column("status", String, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("available_at", Millis, nullable=False),
    Column("created_at", Millis, nullable=False),
    Index("ix_webhooks_status_available_at", "status", "available_at"),
    Index("ix_webhooks_session_id", "session_id"),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("content_hash", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("version", String, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", Millis, nullable=False),
    Column("deployed_at", Millis, nullable=True),
    Column("deploy_note", Text, nullable=False, server_default=""),
    # One text per name and version, even when two deploys race (migration 0004).
    Index("uq_flow_versions_name_version", "name", "version", unique=True),
)
