"""Fixtures for real parts shared by the whole suite.

``store_url`` gives each test a fresh store of each kind: ``memory://``, a SQLite file in
``tmp_path``, and a fresh schema in the PostgreSQL server at 127.0.0.1:5432 (dropped
afterwards). Tests that take it run once per backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from flowengine.clock import ManualClock
from flowengine.engine import Engine
from flowengine.flows import FlowRegistry

PG_DSN = os.environ.get("FLOWENGINE_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"


def pg_schema_url(schema: str) -> str:
    return PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1) + f"?schema={schema}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped with everything in it after the test."""
    schema = f"fe_{uuid.uuid4().hex[:16]}"
    yield schema
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flowengine.db'}"
    schema: str = request.getfixturevalue("pg_schema")
    return pg_schema_url(schema)


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
