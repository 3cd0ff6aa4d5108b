"""What the SQL store adds to the contract: a file that lasts, a schema that migrates
itself, locks that hold across connections, and clear errors for bad URLs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from flowengine.errors import StoreConflict, StoreError
from flowengine.store import EffectAttempt, EffectRecord, SessionRecord, open_store
from flowengine.store.migrate import HEAD_REVISION, alembic_config
from flowengine.store.sql import SqlStore
from flowengine.store.tables import metadata
from tests.conftest import ROOT

MakeStoreUrl = Callable[..., str]
SQL_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def session(session_id: str = "s1", state: str = "created") -> SessionRecord:
    return SessionRecord(session_id, "deposit", "1", "h1", state, "open", {"n": 1}, 1, 1, 9)


@pytest.fixture
def sql_store(request: pytest.FixtureRequest, make_store_url: MakeStoreUrl) -> Iterator[SqlStore]:
    store = SqlStore(make_store_url(request.param))
    yield store
    store.close()


def open_twice(url: str) -> tuple[SqlStore, SqlStore]:
    return SqlStore(url), SqlStore(url)


def pragma(store: SqlStore, name: str) -> Any:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


# --------------------------------------------------------------------------- SQLite


def test_a_sqlite_file_keeps_its_data_across_reopening(make_store_url: MakeStoreUrl) -> None:
    url = make_store_url("sqlite")
    first = SqlStore(url)
    with first.transaction() as tx:
        tx.insert_session(session())
    first.close()

    again = SqlStore(url)
    with again.transaction() as tx:
        assert tx.get_session("s1") == session()
    with again.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [("0004",)]
    again.close()


def test_sqlite_runs_in_wal_mode_with_full_sync_and_foreign_keys(
    make_store_url: MakeStoreUrl,
) -> None:
    store = SqlStore(make_store_url("sqlite"))
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == 2  # FULL
    assert pragma(store, "foreign_keys") == 1
    assert pragma(store, "busy_timeout") == 30_000
    store.close()


def test_sqlite_options_come_from_the_url(make_store_url: MakeStoreUrl) -> None:
    store = SqlStore(make_store_url("sqlite", synchronous="normal", busy_timeout="1500"))
    assert pragma(store, "synchronous") == 1  # NORMAL
    assert pragma(store, "busy_timeout") == 1_500
    store.close()


def test_a_row_for_an_unknown_session_is_refused(make_store_url: MakeStoreUrl) -> None:
    store = SqlStore(make_store_url("sqlite"))
    with pytest.raises(StoreConflict, match="FOREIGN KEY"), store.transaction() as tx:
        tx.add_timer("ghost", "expire", "created", 0, 10)
    store.close()


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("sql_store", SQL_KINDS, indirect=True)
def test_the_migrations_build_exactly_the_tables_module(sql_store: SqlStore) -> None:
    with sql_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


@pytest.mark.postgres
def test_a_schema_url_keeps_every_table_in_that_schema(
    make_store_url: MakeStoreUrl, postgres_server_url: str
) -> None:
    url = make_store_url("postgres")
    schema = url.rsplit("=", 1)[1]
    store = SqlStore(url.replace("postgresql://", "postgres://", 1))
    store.close()
    with psycopg.connect(postgres_server_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
    assert {name for (name,) in rows} == {*metadata.tables, "alembic_version"}


@pytest.mark.postgres
def test_processes_opening_a_fresh_database_at_once_both_succeed(
    make_store_url: MakeStoreUrl,
) -> None:
    url = make_store_url("postgres")
    start = threading.Barrier(4)

    def open_and_write(n: int) -> None:
        start.wait()
        store = SqlStore(url)
        with store.transaction() as tx:
            tx.insert_session(session(f"s{n}"))
        store.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(open_and_write, range(4)))
    store = SqlStore(url)
    with store.transaction() as tx:
        assert all(tx.get_session(f"s{n}") for n in range(4))
    store.close()


# --------------------------------------------------------------------------- locking


def hold_then_release(
    url: str, body: Callable[[Any], None]
) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """Run ``body`` in a transaction on its own store and thread; keep the transaction
    open after it until ``release`` is set. Returns (thread, holding, release)."""
    holding, release = threading.Event(), threading.Event()

    def run() -> None:
        store = SqlStore(url)
        try:
            with store.transaction() as tx:
                body(tx)
                holding.set()
                assert release.wait(10)
        finally:
            store.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert holding.wait(10)
    return thread, holding, release


def test_writers_of_one_store_take_turns_and_give_up_after_busy_timeout(
    make_store_url: MakeStoreUrl,
) -> None:
    """Threads of one process queue for SQLite's write lock in the store (not in
    SQLite's busy handler, which sleeps in steps of up to 100 ms), waiting as long."""
    store = SqlStore(make_store_url("sqlite", busy_timeout="50"))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction() as tx:
            tx.insert_session(session())
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    with pytest.raises(StoreError, match="busy_timeout"), store.transaction():
        pass
    release.set()
    holder.join(10)
    with store.transaction() as tx:  # the turn is free again
        assert tx.get_session("s1") == session()
    store.close()


def test_a_sqlite_store_asks_for_plans_while_its_writers_keep_waiting(
    make_store_url: MakeStoreUrl,
) -> None:
    """What the engine's default reads (Store.plan_sends): alone, a store's writers
    never wait and sends are not planned; once they wait for another process, they
    are, until turns come without waiting again."""
    url = make_store_url("sqlite")
    store, other = open_twice(url)
    assert not store.plan_sends
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.transaction():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    threading.Timer(0.05, release.set).start()
    with store.transaction():  # waits for the other store's turn to end
        pass
    holder.join(10)
    assert store.plan_sends
    for _ in range(10):  # turns taken at once: the waiting fades
        with store.transaction():
            pass
    assert not store.plan_sends
    store.close()
    other.close()


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_a_locked_session_makes_the_next_writer_wait(
    kind: str, make_store_url: MakeStoreUrl
) -> None:
    url = make_store_url(kind)
    setup = SqlStore(url)
    with setup.transaction() as tx:
        tx.insert_session(session())

    def first_writer(tx: Any) -> None:
        locked = tx.get_session("s1", for_update=True)
        tx.update_session(SessionRecord(**{**locked.__dict__, "state": "paid", "seq": 1}))

    seen: list[SessionRecord | None] = []

    def second_writer() -> None:
        with setup.transaction() as tx:
            seen.append(tx.get_session("s1", for_update=True))

    thread, _, release = hold_then_release(url, first_writer)
    waiter = threading.Thread(target=second_writer)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # blocked behind the first writer
    assert seen == []
    release.set()
    thread.join(10)
    waiter.join(10)
    assert not waiter.is_alive()
    (after,) = seen
    assert after is not None
    assert (after.state, after.seq) == ("paid", 1)
    setup.close()


@pytest.mark.postgres
def test_concurrent_effect_claims_never_share_a_row(make_store_url: MakeStoreUrl) -> None:
    url = make_store_url("postgres")
    first, second = open_twice(url)
    with first.transaction() as tx:
        tx.insert_session(session())
        for n in range(20):
            tx.add_effect(effect_record(f"k{n:02}", n))

    held: list[str] = []
    thread, _, release = hold_then_release(
        url, lambda tx: held.extend(r.key for r in tx.claim_effects(100, 5, "w1", 1_000))
    )
    # The first worker's five rows are locked, not yet committed: skipped, not waited for.
    with second.transaction() as tx:
        other = [r.key for r in tx.claim_effects(100, 5, "w2", 1_000)]
    release.set()
    thread.join(10)
    assert held == [f"k{n:02}" for n in range(5)]
    assert other == [f"k{n:02}" for n in range(5, 10)]

    # Many workers draining the outbox at once: every row exactly once.
    def drain(store: SqlStore) -> list[str]:
        taken: list[str] = []
        while True:
            with store.transaction() as tx:
                batch = tx.claim_effects(100, 2, "w", 1_000)
            if not batch:
                return taken
            taken += [r.key for r in batch]

    stores = [first, second, *open_twice(url)]
    with ThreadPoolExecutor(len(stores)) as pool:
        taken = [key for keys in pool.map(drain, stores) for key in keys]
    assert sorted(taken) == [f"k{n:02}" for n in range(10, 20)]
    for store in stores:
        store.close()


@pytest.mark.postgres
def test_an_effect_read_for_update_is_not_claimed_by_another_runner(
    make_store_url: MakeStoreUrl,
) -> None:
    # A runner re-checking its claim (its lease ran out meanwhile) reads the row for
    # update: another runner's claim skips it rather than taking it from under it.
    url = make_store_url("postgres")
    first, second = open_twice(url)
    with first.transaction() as tx:
        tx.insert_session(session())
        tx.add_effect(effect_record("k0", 0))
        (claim,) = tx.claim_effects(100, 1, "w1", 1_000)

    seen: list[EffectRecord | None] = []
    thread, _, release = hold_then_release(
        url, lambda tx: seen.append(tx.get_effect("k0", for_update=True))
    )
    with second.transaction() as tx:
        taken = tx.claim_effects(5_000, 1, "w2", 1_000)  # w1's lease has run out
    release.set()
    thread.join(10)
    assert seen == [claim]
    assert taken == []
    first.close()
    second.close()


@pytest.mark.postgres
def test_concurrent_timer_claims_never_share_a_timer(make_store_url: MakeStoreUrl) -> None:
    url = make_store_url("postgres")
    store = SqlStore(url)
    with store.transaction() as tx:
        tx.insert_session(session())
        for n in range(6):
            tx.add_timer("s1", f"t{n}", "created", 0, n)

    held: list[str] = []

    def claim_and_fire(tx: Any) -> None:
        for timer in tx.claim_due_timers(100, 3):
            held.append(timer.event)
            tx.finish_timer(timer.timer_id, "fired")

    thread, _, release = hold_then_release(url, claim_and_fire)
    with store.transaction() as tx:
        other = tx.claim_due_timers(100, 10)
        for timer in other:
            tx.finish_timer(timer.timer_id, "fired")
    release.set()
    thread.join(10)
    assert held == ["t0", "t1", "t2"]
    assert [t.event for t in other] == ["t3", "t4", "t5"]
    with store.transaction() as tx:
        assert tx.claim_due_timers(100, 10) == []
        assert {t.status for t in tx.timers("s1")} == {"fired"}
    store.close()


def effect_record(key: str, available_at: int) -> EffectRecord:
    return EffectRecord(key, "s1", "deliver", "paid", 1, "pending", 0, available_at, 0)


# --------------------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root@localhost/db", "unknown store URL"),
        ("sqlite://", "name a file"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:///{tmp}/no/such/dir/store.db", "unable to open database file"),
        ("sqlite:///{tmp}/s.db?synchronous=SOMETIMES", "synchronous"),
        ("sqlite:///{tmp}/s.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite:///{tmp}/s.db?journal=delete", "unknown option"),
        ("postgresql://root@127.0.0.1/test?schema=no-dashes", "schema"),
        ("postgresql://root:secret@127.0.0.1:1/test", "127.0.0.1"),
    ],
)
def test_a_bad_url_is_a_store_error_that_says_why(url: str, says: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=says) as caught:
        open_store(url.format(tmp=tmp_path))
    message = str(caught.value)
    assert "Traceback" not in message
    assert "secret" not in message


@pytest.mark.postgres
def test_an_unknown_database_role_is_a_store_error(postgres_server_url: str) -> None:
    _, _, host = postgres_server_url.partition("://")[2].rpartition("@")
    with pytest.raises(StoreError, match="nobody_here"):
        SqlStore(f"postgresql://nobody_here@{host}")


def test_json_written_by_an_earlier_release_stays_readable(make_store_url: MakeStoreUrl) -> None:
    # Releases before msgspec wrote the json module's NaN / Infinity tokens.
    store = SqlStore(make_store_url("sqlite"))
    with store.transaction() as tx:
        tx.insert_session(session())
    with store.engine.connect() as conn:
        conn.exec_driver_sql(
            """UPDATE sessions SET data = '{"rate": NaN, "cap": Infinity, "n": 1}'"""
        )
        conn.commit()
    with store.transaction() as tx:
        found = tx.get_session("s1")
    assert found is not None
    assert found.data["cap"] == float("inf")
    assert found.data["rate"] != found.data["rate"]  # NaN
    with store.engine.connect() as conn:
        conn.exec_driver_sql("UPDATE sessions SET data = '{not json'")
        conn.commit()
    with pytest.raises(StoreError, match="invalid JSON"), store.transaction() as tx:
        tx.get_session("s1")
    store.close()


def test_a_database_failure_inside_a_transaction_is_a_store_error(
    make_store_url: MakeStoreUrl,
) -> None:
    store = SqlStore(make_store_url("sqlite", busy_timeout="50"))
    thread, _, release = hold_then_release(store.url, lambda tx: tx.insert_session(session()))
    start = time.monotonic()
    with pytest.raises(StoreError, match="locked"), store.transaction():
        pass
    assert time.monotonic() - start < 5
    release.set()
    thread.join(10)
    store.close()


@pytest.mark.parametrize("sql_store", SQL_KINDS, indirect=True)
def test_a_store_keeps_its_connection_between_transactions(sql_store: SqlStore) -> None:
    def connection() -> int:
        with sql_store.transaction() as tx:
            return id(tx._cur.connection)

    assert connection() == connection()


def run_together(count: int, body: Callable[[], Any]) -> list[Any]:
    """``body`` in ``count`` threads at once; what each returned or raised."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(body) for _ in range(count)]
        return [f.exception() or f.result() for f in futures]


@pytest.mark.postgres
def test_a_server_that_dropped_every_connection_fails_one_transaction(
    make_store_url: MakeStoreUrl, postgres_server_url: str
) -> None:
    store = SqlStore(make_store_url("postgres") + "&application_name=fe_dropped")
    with store.transaction() as tx:
        tx.insert_session(session())
    held = threading.Barrier(8)

    def busy() -> None:  # eight at once: the store and its pool keep several open
        with store.transaction() as tx:
            tx.get_session("s1")
            held.wait(10)

    assert run_together(8, busy) == [None] * 8
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:  # a restart
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'fe_dropped'"
        )

    with pytest.raises(StoreError), store.transaction() as tx:
        tx.get_session("s1")
    with store.transaction() as tx:  # the next one connects afresh: no stale one is kept
        found = tx.get_session("s1")
    assert found is not None
    assert found.state == "created"
    store.close()


@pytest.mark.postgres
def test_transactions_beyond_the_pool_get_a_connection_when_one_ends(
    make_store_url: MakeStoreUrl, postgres_server_url: str
) -> None:
    # A starved waiter would fail after pool_timeout (5 s) instead of getting a turn.
    url = make_store_url("postgres") + "&pool_size=2&max_overflow=2&pool_timeout=5"
    store = SqlStore(url + "&application_name=fe_burst")
    full = 4
    started = threading.Barrier(full + 1)
    release = threading.Event()

    def hold() -> None:
        with store.transaction() as tx:
            tx.get_session("s1")
            started.wait(10)
            release.wait(10)

    def late() -> None:
        with store.transaction() as tx:
            tx.get_session("s1")

    with ThreadPoolExecutor(full + 5) as pool:
        holders = [pool.submit(hold) for _ in range(full)]
        started.wait(10)  # every connection is in use
        waiters = [pool.submit(late) for _ in range(5)]
        time.sleep(0.2)
        release.set()
        assert [f.exception(15) for f in holders + waiters] == [None] * (full + 5)
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        (open_connections,) = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fe_burst'"
        ).fetchone() or (0,)
    assert open_connections == 2  # pool_size: the burst's extra connections are closed
    store.close()


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ("pool_size=0", "pool_size='0'"),
        ("max_overflow=-1", "max_overflow"),
        ("pool_timeout=x", "x"),
    ],
)
def test_bad_pool_options_are_refused_naming_them(
    make_store_url: MakeStoreUrl, option: str, hint: str
) -> None:
    with pytest.raises(StoreError, match=hint):
        SqlStore(f"{make_store_url('sqlite')}?{option}")


def test_a_transaction_that_waits_too_long_for_a_connection_says_how_to_allow_more(
    make_store_url: MakeStoreUrl,
) -> None:
    store = SqlStore(make_store_url("sqlite") + "?pool_size=1&max_overflow=0&pool_timeout=0")
    with store.transaction(), pytest.raises(StoreError, match="pool_size"), store.transaction():
        pass
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_store_made_by_an_older_release_is_migrated_on_open(
    kind: str, make_store_url: MakeStoreUrl
) -> None:
    url = make_store_url(kind)
    base, _, query = url.partition("?")
    schema = query.removeprefix("schema=") or None
    raw = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with raw.connect() as conn:  # build the database as release 0001 left it
        if schema:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            conn.exec_driver_sql(f'SET search_path TO "{schema}"')
        command.upgrade(alembic_config(conn, schema), "0001")
        conn.execute(
            text(
                "INSERT INTO flow_versions (content_hash, name, version, text, created_at) "
                "VALUES ('h1', 'deposit', '1', 'flowengine: 1', 5)"
            )
        )
        conn.commit()
    raw.dispose()

    store = SqlStore(url)  # opening migrates to the newest revision
    try:
        with store.transaction() as tx:
            (version,) = tx.flow_versions("deposit")
            assert (version.content_hash, version.deployed_at, version.deploy_note) == (
                "h1",
                None,
                "",
            )
            tx.mark_deployed("h1", 7, "")
        with store.transaction() as tx:
            assert tx.flow_versions("deposit")[0].deployed_at == 7
    finally:
        store.close()


def test_the_head_revision_constant_names_the_newest_migration() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_store_written_by_a_newer_release_is_refused_and_left_as_it_is(
    kind: str, make_store_url: MakeStoreUrl
) -> None:
    url = make_store_url(kind)
    SqlStore(url).close()
    schema = url.partition("?schema=")[2]
    table = f'"{schema}".alembic_version' if schema else "alembic_version"
    raw = create_engine(url.partition("?")[0].replace("postgresql://", "postgresql+psycopg://"))
    with raw.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET version_num = '9999'"))

    with pytest.raises(StoreError, match=r"from revision 9999 to .*newer flowengine"):
        SqlStore(url)

    with raw.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {table}")).scalar() == "9999"
    raw.dispose()


def test_opening_an_up_to_date_store_does_not_import_alembic(
    make_store_url: MakeStoreUrl,
) -> None:
    # Alembic is the package's dearest import; a CLI command on an existing store
    # should not pay for it.
    url = make_store_url("sqlite")
    SqlStore(url).close()
    script = (
        "import sys; from flowengine.store.sql import SqlStore; "
        f"SqlStore({url!r}).close(); print('alembic' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"


@pytest.mark.postgres
def test_a_schema_name_in_mixed_case_is_the_schema_used(postgres_server_url: str) -> None:
    schema = f"Payments_{os.getpid()}"
    store = SqlStore(f"{postgres_server_url}?schema={schema}")
    try:
        with store.transaction() as tx:
            tx.insert_session(session())
        with psycopg.connect(postgres_server_url) as conn:
            found = conn.execute(f'SELECT session_id FROM "{schema}".sessions').fetchall()
        assert found == [("s1",)]
    finally:
        store.close()
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]


@pytest.mark.postgres
def test_opening_an_existing_store_refuses_a_schema_that_is_not_there(
    make_store_url: MakeStoreUrl, postgres_server_url: str
) -> None:
    url = make_store_url("postgres")
    with pytest.raises(StoreError, match="no store at"):
        SqlStore(url, existing=True)
    SqlStore(url).close()  # the first engine to open it creates it
    SqlStore(url, existing=True).close()


def test_a_refused_connection_gives_its_slot_back_and_is_a_store_error(
    tmp_path: Path,
) -> None:
    # While a server restarts (here: the database's folder is briefly gone) every new
    # connection is refused. Each attempt must fail as a StoreError and give its slot
    # back, or the pool is used up for good by the time the database is back.
    home = tmp_path / "db"
    home.mkdir()
    store = SqlStore(f"sqlite:///{home / 's.db'}?pool_size=1&max_overflow=0&pool_timeout=1")
    away = tmp_path / "away"
    home.rename(away)
    for _ in range(3):
        with pytest.raises(StoreError, match="unable to open"), store.transaction() as tx:
            tx.get_session("s1")
    away.rename(home)
    with store.transaction() as tx:
        assert tx.get_session("s1") is None
    store.close()


@pytest.mark.postgres
def test_a_failed_queued_write_surfaces_as_a_store_error_at_the_next_read(
    make_store_url: MakeStoreUrl,
) -> None:
    # In a PostgreSQL pipeline a queued write's failure is reported by the next read:
    # it must come out mapped (a conflict), not as the driver's own exception.
    store = SqlStore(make_store_url("postgres"))
    with store.transaction() as tx:
        tx.insert_session(session())
    raised: list[type[BaseException]] = []

    def read_after_a_bad_write() -> None:
        with store.transaction() as tx:
            tx.record_attempt(EffectAttempt("no-such-effect", 1, 0, 0, "ok"))  # no such key
            try:
                tx.get_session("s1")
            except BaseException as exc:
                raised.append(type(exc))
                raise

    for _ in range(5):
        with pytest.raises(StoreError):
            read_after_a_bad_write()
    assert set(raised) <= {StoreConflict}
    store.close()


# --------------------------------------------------------------------------- fork


@pytest.mark.parametrize("sql_store", SQL_KINDS, indirect=True)
def test_a_forked_child_writes_through_connections_of_its_own(sql_store: SqlStore) -> None:
    """A child forked after the store was used (gunicorn's preload, multiprocessing's
    fork) must not talk through its parent's connections: both would speak on one."""
    with sql_store.transaction() as tx:
        tx.insert_session(session("parent"))  # leaves an idle connection behind
    pid = os.fork()
    if pid == 0:  # the child: exit at once whatever happens, never back into pytest
        code = 1
        try:
            with sql_store.transaction() as tx:
                tx.insert_session(session("child"))
            sql_store.close()  # closes the child's connections, never the parent's
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with sql_store.transaction() as tx:  # the parent's connection still works
        tx.insert_session(session("parent-again"))
        assert tx.get_session("child") == session("child")


KILLED_MID_WRITE = textwrap.dedent(
    """
    import os, sys, time
    from flowengine.store.sql import SqlStore

    store = SqlStore(sys.argv[1])
    with store.transaction() as tx:
        tx.get_session("s1")              # opens the writers' lock file
    child = os.fork()
    if child == 0:
        time.sleep(30)                    # a helper that never writes, outliving its parent
        os._exit(0)
    with store.transaction() as tx:       # holds the turn ...
        print(child, flush=True)
        time.sleep(60)                    # ... and is killed here (kill -9, the OOM killer)
    """
)


def test_a_writer_killed_mid_write_does_not_lock_others_out_through_its_child(
    make_store_url: MakeStoreUrl,
) -> None:
    url = make_store_url("sqlite", busy_timeout="2000")
    SqlStore(url).close()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_WRITE, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    child = int(writer.stdout.readline())
    writer.kill()
    writer.wait(10)
    store = SqlStore(url)
    try:
        with store.transaction() as tx:  # the child lives on; the turn is free
            tx.insert_session(session())
    finally:
        os.kill(child, signal.SIGKILL)
        store.close()
