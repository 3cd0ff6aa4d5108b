"""The store's schema: Alembic migrations shipped in the package, applied on open.

Opening a store that is already up to date is the common case, and Alembic is the
dearest import of the package (≈ 0.6 s of a CLI command's start): the revision is
checked with one query against :data:`HEAD_REVISION`, and Alembic is imported only
when there is something to migrate. tests/store/test_sql.py holds the constant equal
to the script directory's head.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from ..errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
"""The Alembic script directory, shipped inside the package."""

HEAD_REVISION = "0004"
"""The newest revision in :data:`MIGRATIONS` (bump it with every new migration)."""

VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic Config for the store's migrations (no ``alembic.ini`` involved)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["version_table_schema"] = schema
    return config


def _lock_key(schema: str | None) -> int:
    """The advisory-lock key that serializes migrations of one schema."""
    digest = hashlib.blake2b(f"flowengine.store:{schema or ''}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def current_revisions(conn: Connection, schema: str | None = None) -> list[str]:
    """The revisions the database's version table records: none for a new database."""
    if not inspect(conn).has_table(VERSION_TABLE, schema=schema):
        return []
    table = VERSION_TABLE if schema is None else f'"{schema}".{VERSION_TABLE}'
    return [row[0] for row in conn.execute(text(f"SELECT version_num FROM {table}"))]


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
        current = current_revisions(conn, schema)
        if current != [HEAD_REVISION]:
            _run_migrations(conn, schema, current)
        conn.commit()


def _run_migrations(conn: Connection, schema: str | None, current: list[str]) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(conn, schema), "head")
    except CommandError as exc:
        found = ", ".join(current) or "none"
        raise StoreError(
            f"cannot migrate the store's schema from revision {found} to {HEAD_REVISION}: "
            f"{exc} (was the database created by a newer flowengine?)"
        ) from exc
