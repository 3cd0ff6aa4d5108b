"""Fixtures for the real parts the whole suite shares.

* ``make_store_url(kind)`` — a factory: ``"memory"``, ``"sqlite"`` (a new file in
  ``tmp_path``) or ``"postgres"`` (a new schema ``fe_<hex>`` in the server at
  127.0.0.1:5432, dropped with ``CASCADE`` after the test). Open the URL it returns
  twice to get two stores on the same database (two processes, in effect).
* ``store_url`` — parametrized over the three kinds; the ``postgres`` one carries the
  ``postgres`` marker, so ``-m "not postgres"`` runs without a server.
* ``engine`` — an :class:`Engine` on ``store_url`` with the shipped flows and a
  :class:`ManualClock` (``clock``), so tests move time instead of sleeping.
* ``postgres_server_url`` — the server itself, to inspect what a store did.

``FLOWENGINE_TEST_PG`` overrides the server URL (``postgresql://root@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
PG_URL = os.environ.get("FLOWENGINE_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

MakeStoreUrl = Callable[..., str]


def postgres_url(schema: str | None = None) -> str:
    """The test server's URL, with every table in ``schema`` when given."""
    return PG_URL if schema is None else f"{PG_URL}?schema={schema}"


def sqlite_url(path: Path, **options: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"sqlite:///{path}" + (f"?{query}" if query else "")


def drop_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        # A store a test forgot to close would make DROP wait forever; fail instead.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_server_url() -> str:
    """The test server itself (its default schema): for looking at what a store did."""
    return PG_URL


@pytest.fixture
def make_store_url(tmp_path: Path) -> Iterator[MakeStoreUrl]:
    schemas: list[str] = []
    count = 0

    def make(kind: str, **sqlite_options: str) -> str:
        nonlocal count
        count += 1
        if kind == "memory":
            return "memory://"
        if kind == "sqlite":
            return sqlite_url(tmp_path / f"store{count}.db", **sqlite_options)
        if kind == "postgres":
            schema = f"fe_{uuid.uuid4().hex}"
            schemas.append(schema)
            return postgres_url(schema)
        raise ValueError(f"unknown store kind {kind!r}")

    yield make
    for schema in schemas:
        drop_schema(schema)


@pytest.fixture(params=KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def store_url(store_kind: str, make_store_url: MakeStoreUrl) -> str:
    return make_store_url(store_kind)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def flows() -> FlowRegistry:
    return FlowRegistry.from_directory(FLOWS)


@pytest.fixture
def engine(store_url: str, flows: FlowRegistry, clock: ManualClock) -> Iterator[Engine]:
    """An engine on each store backend, with a manual clock and the shipped flows."""
    engine = Engine(flows, store_url, clock)
    yield engine
    engine.store.close()
