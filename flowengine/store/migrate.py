"""The store's schema: Alembic migrations shipped in the package, applied on open."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from ..errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
"""The Alembic script directory, shipped inside the package."""


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic Config for the store's migrations (no ``alembic.ini`` involved)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["version_table_schema"] = schema
    return config


def _lock_key(schema: str | None) -> int:
    """The advisory-lock key that serializes migrations of one schema."""
    digest = hashlib.blake2b(f"flowengine.store:{schema or ''}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def upgrade(engine: Engine, schema: str | None = None) -> None:
    """Bring the schema to the newest revision, creating it on first use.

    Runs in one transaction that first takes the migration lock — the write lock on
    SQLite (``BEGIN IMMEDIATE``), an advisory lock on PostgreSQL — so processes that
    open a fresh database at the same moment migrate it once, one after the other.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(schema)})
            if schema is not None:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        config = alembic_config(conn, schema)
        head = ScriptDirectory.from_config(config).get_current_head()
        context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        current = context.get_current_revision()
        if current != head:
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StoreError(
                    f"cannot migrate the store's schema from revision {current} to {head}: "
                    f"{exc} (was the database created by a newer flowengine?)"
                ) from exc
        conn.commit()
