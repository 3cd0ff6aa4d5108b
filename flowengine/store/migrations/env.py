"""Alembic environment for the store's schema, run in-process by :class:`SqlStore`.

There is no ``alembic.ini``: :func:`flowengine.store.migrate.upgrade` builds the Config in
code and hands over an open connection (already inside a transaction and holding the
migration lock) in ``config.attributes["connection"]``. Offline (``--sql``) mode is
supported for reviewing the DDL a release will run.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from flowengine.store.tables import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=config.attributes.get("version_table_schema"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "the flowengine store runs its migrations itself (SqlStore(url) on open); "
            "pass an open connection in config.attributes['connection']"
        )
    run_online(connection)
