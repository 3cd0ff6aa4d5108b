"""Timers at scale: fire rate, cost per fired timer and lateness with up to 1M pending.

Each case is one store (memory, SQLite FULL, PostgreSQL) holding a backlog of N pending
timers due weeks from now (N = 0, 10,000, 100,000, 1,000,000) plus a "due window":
``--due`` real sessions made with ``Engine.create_session`` whose expiry timers come
due one after the other at ``--rate`` per second of simulated time (per store, about a
fifth to a third of what one worker fires there, so the worker keeps up). A
``TimerWorker(engine, batch)`` then fires them the way ``TimerWorker.run`` does: it
calls ``run_once`` again at once after firing something and idles ``--idle-ms`` when
it found nothing. The clock is a ``ManualClock`` that this script moves forward by the
wall time each ``run_once`` took, and by the idle time when the worker idles, so
simulated time passes as it would for a real worker on this machine. Each case fires
``--rounds`` windows on the same backlog; figures are medians over rounds.

* fired/s and µs per fired timer: wall time inside the ``run_once`` calls that fired
  something, per timer fired. Each firing is a real engine step (``expire``: the
  session's new state, a log row, a ``session.expired`` webhook row, the timer row
  marked fired), one transaction per ``run_once``;
* empty poll: wall time of a ``run_once`` that found nothing due (what an idle worker
  pays every ``--idle-ms``);
* lateness: simulated time at which the transaction that fired a timer committed,
  minus the timer's due time; p50 / p99 in ms.

The backlog is written in bulk, not through the engine: through the memory store's
``Transaction.insert_session`` / ``add_timer`` in transactions of 100,000, and for SQL
straight into the ``sessions`` and ``timers`` tables (``executemany`` on SQLite, COPY
on PostgreSQL), one small session row per timer as the foreign key requires. The
baseline of each store is the same measurement with 0 timers pending; growth is shown
as a ratio to it. The plan of the timer claim query is printed with the window due
(SQLite ``EXPLAIN QUERY PLAN``; PostgreSQL ``EXPLAIN`` after ``ANALYZE`` — autovacuum is
off on the test server, so the script analyzes where autovacuum would — and again as a
forced generic plan, the one a prepared statement may switch to).

Last, a probe of the claim alone when a backlog is *overdue* (a worker that was down):
claiming ``--batch`` timers with 1,000 and 100,000 past due, and on PostgreSQL with
fresh statistics and with statistics taken while the table was empty.

Run: .venv/bin/python bench/timers.py [--pending 0,10000,100000,1000000]
     [--stores memory,sqlite,postgresql] [--due 5000] [--rounds 3] [--batch 100]
     (≈ 5 min; the PostgreSQL server at 127.0.0.1 gets a throw-away schema per case)
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import PG_DSN, session_request  # noqa: E402

from flowengine import Engine, FlowRegistry  # noqa: E402
from flowengine.clock import ManualClock  # noqa: E402
from flowengine.store import SessionRecord  # noqa: E402
from flowengine.store.memory import MemoryStore  # noqa: E402
from flowengine.store.statements import compile_statements  # noqa: E402
from flowengine.workers import TimerWorker  # noqa: E402

PG_URL = PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
REQUEST = session_request()
EXPIRES_IN_S = 3600
DAY_MS = 86_400_000
FILL_CHUNK = 100_000


@dataclass
class Round:
    """One due window fired: wall-clock cost and simulated lateness."""

    fired: int = 0
    busy_s: float = 0.0
    batches: int = 0
    empty_polls: int = 0
    empty_s: float = 0.0
    lateness_ms: list[float] = field(default_factory=list)

    @property
    def us_per_fired(self) -> float:
        return self.busy_s / self.fired * 1e6

    @property
    def empty_us(self) -> float:
        return self.empty_s / self.empty_polls * 1e6 if self.empty_polls else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.lateness_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Case:
    """One store with ``pending`` backlog timers; its figures are medians over rounds."""

    store: str
    pending: int
    fill_s: float = 0.0
    create_s: float = 0.0
    rounds: list[Round] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)

    def median(self, figure: Callable[[Round], float]) -> float:
        return statistics.median(figure(r) for r in self.rounds)

    @property
    def us_per_fired(self) -> float:
        return self.median(lambda r: r.us_per_fired)

    @property
    def batch(self) -> float:
        return self.median(lambda r: r.fired / r.batches)


# -- the backlog: far-future timers, one cheap session row each --------------------------


@dataclass(frozen=True)
class Flow:
    name: str
    version: str
    content_hash: str
    status: str


def backlog(n: int, start_ms: int) -> Iterator[tuple[str, int]]:
    """(session id, due time) of ``n`` timers due 7 to 27 days after ``start_ms``."""
    rng = random.Random(n)
    far = start_ms + 7 * DAY_MS
    for i in range(n):
        yield f"bk{i:07d}", far + rng.randrange(20 * DAY_MS)


def fill_memory(store: MemoryStore, n: int, start_ms: int, now: int, flow: Flow) -> None:
    rows = backlog(n, start_ms)
    for start in range(0, n, FILL_CHUNK):
        with store.transaction() as tx:
            for sid, due in (next(rows) for _ in range(min(FILL_CHUNK, n - start))):
                tx.insert_session(
                    SessionRecord(
                        sid,
                        flow.name,
                        flow.version,
                        flow.content_hash,
                        "created",
                        flow.status,
                        {},
                        now,
                        now,
                        due,
                        1,
                        1,
                    )
                )
                tx.add_timer(sid, "expire", "created", 1, due)


def _session_row(sid: str, due: int, now: int, flow: Flow) -> tuple[object, ...]:
    return (
        sid,
        flow.name,
        flow.version,
        flow.content_hash,
        "created",
        flow.status,
        "{}",
        now,
        now,
        due,
        1,
        1,
    )


SESSION_COLS = (
    "session_id, flow_name, flow_version, flow_hash, state, status, data, "
    "created_at, updated_at, expires_at, seq, entered_seq"
)
TIMER_COLS = "session_id, event, state, entered_seq, due_at, status"


def fill_sqlite(path: Path, n: int, start_ms: int, now: int, flow: Flow) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")  # the fill only; the store runs FULL
    db.execute("BEGIN IMMEDIATE")
    rows = list(backlog(n, start_ms))
    db.executemany(
        f"INSERT INTO sessions ({SESSION_COLS}) VALUES ({', '.join('?' * 12)})",
        (_session_row(sid, due, now, flow) for sid, due in rows),
    )
    db.executemany(
        f"INSERT INTO timers ({TIMER_COLS}) VALUES (?, 'expire', 'created', 1, ?, 'pending')",
        rows,
    )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def fill_postgres(schema: str, n: int, start_ms: int, now: int, flow: Flow) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        rows = list(backlog(n, start_ms))
        with conn.transaction():
            with conn.cursor().copy(f"COPY sessions ({SESSION_COLS}) FROM STDIN") as copy:
                for sid, due in rows:
                    copy.write_row(_session_row(sid, due, now, flow))
            with conn.cursor().copy(f"COPY timers ({TIMER_COLS}) FROM STDIN") as copy:
                for sid, due in rows:
                    copy.write_row((sid, "expire", "created", 1, due, "pending"))


# -- the claim query's plan --------------------------------------------------------------


def plan_sqlite(path: Path, now: int, batch: int) -> list[str]:
    db = sqlite3.connect(path)
    rows = db.execute(
        "EXPLAIN QUERY PLAN " + compile_statements("sqlite").due_timers,
        {"now": now, "limit": batch},
    ).fetchall()
    db.close()
    return [" | ".join(str(r[-1]) for r in rows)]


def plan_postgres(schema: str, now: int, batch: int) -> list[str]:
    sql = compile_statements("postgresql").due_timers
    lines = []
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        custom = conn.execute(
            "EXPLAIN " + sql,
            {"now": now, "limit": batch},
        ).fetchall()
        lines.append("custom: " + _pg_scan(custom))
        prepared = sql.replace("%(now)s", "$1").replace("%(limit)s", "$2")
        conn.execute(f"PREPARE due_timers(bigint, bigint) AS {prepared}")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        generic = conn.execute(f"EXPLAIN EXECUTE due_timers({now}, {batch})").fetchall()
        lines.append("generic: " + _pg_scan(generic))
    return lines


def _pg_scan(rows: list[tuple[str]]) -> str:
    """The plan's nodes, innermost (the scan) last, on one line."""
    nodes = [r[0].strip().lstrip("-> ").split("  (")[0] for r in rows if "(cost=" in r[0]]
    return " < ".join(nodes)


# -- one case ----------------------------------------------------------------------------


def flow_of(engine: Engine) -> Flow:
    flow = engine.flows.current("deposit")
    spec = flow.spec
    return Flow(spec.name, spec.version, spec.content_hash, flow.status_of("created"))


def create_due(engine: Engine, clock: ManualClock, n: int, window_ms: int) -> list[int]:
    """``n`` sessions created so their expiry timers come due evenly over ``window_ms``;
    returns the due times, in order."""
    start = clock.now_ms()
    dues = []
    request = {**REQUEST, "expiresIn": EXPIRES_IN_S}
    for i in range(n):
        created = start + i * window_ms // n
        clock.advance(ms=created - clock.now_ms())
        engine.create_session(request)
        dues.append(created + EXPIRES_IN_S * 1000)
    return dues


def drive(engine: Engine, clock: ManualClock, dues: list[int], batch: int, idle_ms: int) -> Round:
    """Fire every due timer as ``TimerWorker.run`` would, time passing with wall time."""
    worker = TimerWorker(engine, batch=batch)
    clock.advance(ms=dues[0] - clock.now_ms())
    sim_us = clock.now_ms() * 1000
    done = Round()
    while done.fired < len(dues):
        started = time.perf_counter()
        fired = worker.run_once()
        took = time.perf_counter() - started
        sim_us += int(took * 1e6)
        if fired:
            done.busy_s += took
            done.batches += 1
            # Claims go in due order and nothing else is due, so these are the next
            # ``fired`` timers of the window; they became visible at this commit.
            for due in dues[done.fired : done.fired + fired]:
                done.lateness_ms.append(sim_us / 1000 - due)
            done.fired += fired
        else:
            done.empty_polls += 1
            done.empty_s += took
            sim_us += idle_ms * 1000  # TimerWorker.run waits idle_seconds
        clock.advance(ms=sim_us // 1000 - clock.now_ms())
    assert min(done.lateness_ms) >= 0, "a timer fired before it was due"
    return done


class _Rollback(Exception):
    pass


def check(engine: Engine, pending: int) -> None:
    """No due timer left, the backlog still pending (claims lock rows: rolled back)."""
    now = engine.clock.now_ms()
    try:
        with engine.store.transaction() as tx:
            assert not tx.claim_due_timers(now, 1), "a due timer was left"
            later = tx.claim_due_timers(now + 30 * DAY_MS, 1)
            assert len(later) == min(1, pending), "the backlog fired"
            raise _Rollback
    except _Rollback:
        pass


def pg_analyze(schema: str) -> None:
    """What autovacuum's ANALYZE does on a normal server (it is off on the test one)."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.execute("ANALYZE sessions")
        conn.execute("ANALYZE timers")


class Target:
    """A fresh store of one kind (memory, SQLite file, PostgreSQL schema) and its cleanup."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.schema = f"fe_timers_{uuid.uuid4().hex[:10]}"
        self.path = tmp / f"{self.schema}.db"
        self.url: str | MemoryStore
        if kind == "memory":
            self.url = MemoryStore()
        elif kind == "sqlite":
            self.url = f"sqlite:///{self.path}"
        else:
            self.url = f"{PG_URL}?schema={self.schema}"

    def fill(self, engine: Engine, n: int, start_ms: int) -> float:
        """Write ``n`` backlog timers (due 7 to 27 days after ``start_ms``); seconds taken."""
        flow = flow_of(engine)
        now = engine.clock.now_ms()
        started = time.perf_counter()
        gc.disable()  # a bulk load of millions of objects: collections would dominate it
        try:
            if isinstance(self.url, MemoryStore):
                fill_memory(self.url, n, start_ms, now, flow)
            elif self.kind == "sqlite":
                fill_sqlite(self.path, n, start_ms, now, flow)
            else:
                fill_postgres(self.schema, n, start_ms, now, flow)
        finally:
            gc.enable()
        return time.perf_counter() - started

    def plan(self, now: int, batch: int) -> list[str]:
        if self.kind == "sqlite":
            return plan_sqlite(self.path, now, batch)
        if self.kind == "postgresql":
            return plan_postgres(self.schema, now, batch)
        return []

    def drop(self) -> None:
        if self.kind == "postgresql":
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        for path in self.path.parent.glob(f"{self.path.name}*"):
            path.unlink()


def run_store(
    kind: str, pendings: list[int], rate: int, args: argparse.Namespace, tmp: Path
) -> list[Case]:
    """Every backlog size of one store, filled first, then fired round-robin.

    The rounds interleave the cases (round 1 of each, then round 2 of each, in rotated
    order), so whatever else the two cores are doing in the meantime lands on every
    backlog size alike instead of on one of them.
    """
    cases = [Case(kind, pending) for pending in pendings]
    targets = [Target(kind, tmp) for _ in pendings]
    clocks = [ManualClock() for _ in pendings]
    flows = FlowRegistry.from_directory(ROOT / "flows")
    engines: list[Engine] = []
    try:
        for target, clock in zip(targets, clocks, strict=True):
            engines.append(Engine(flows, target.url, clock=clock))
        for case, target, engine in zip(cases, targets, engines, strict=True):
            case.fill_s = target.fill(engine, case.pending, engine.clock.now_ms())
        for index in range(args.rounds):
            order = list(range(len(cases)))
            order = order[index % len(order) :] + order[: index % len(order)]
            for i in order:
                case, target, engine, clock = cases[i], targets[i], engines[i], clocks[i]
                started = time.perf_counter()
                dues = create_due(engine, clock, args.due, args.due * 1000 // rate)
                case.create_s += time.perf_counter() - started
                if kind == "postgresql":
                    pg_analyze(target.schema)
                if index == 0:
                    case.plan = target.plan(dues[-1], args.batch)
                gc.collect()
                case.rounds.append(drive(engine, clock, dues, args.batch, args.idle_ms))
                check(engine, case.pending)
    finally:
        for engine in engines:
            engine.store.close()
        for target in targets:
            target.drop()
    return cases


# -- a backlog that is overdue: the claim alone ------------------------------------------


def claim_ms(engine: Engine, now: int, batch: int, repeat: int = 15) -> float:
    """Median ms of claiming ``batch`` due timers (in a transaction then rolled back)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            with engine.store.transaction() as tx:
                assert len(tx.claim_due_timers(now, batch)) == batch
                raise _Rollback
        except _Rollback:
            pass
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def overdue_probe(kind: str, overdue: int, stats: str, batch: int, tmp: Path) -> tuple[float, str]:
    """Claim cost when ``overdue`` timers are all past due (a worker that was down).

    ``stats`` (PostgreSQL): ``fresh`` = ANALYZE after the load; ``stale`` = ANALYZE
    while the table was empty and not since (autovacuum off, or not caught up yet).
    """
    target = Target(kind, tmp)
    clock = ManualClock()
    engine = Engine(FlowRegistry.from_directory(ROOT / "flows"), target.url, clock=clock)
    try:
        now = clock.now_ms()
        if kind == "postgresql" and stats == "stale":
            pg_analyze(target.schema)
        target.fill(engine, overdue, now - 30 * DAY_MS)  # due 3 to 23 days ago
        if kind == "postgresql" and stats == "fresh":
            pg_analyze(target.schema)
        plan = target.plan(now, batch)
        return claim_ms(engine, now, batch), plan[0] if plan else ""
    finally:
        engine.store.close()
        target.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", default="0,10000,100000,1000000")
    parser.add_argument("--stores", default="memory,sqlite,postgresql")
    parser.add_argument("--due", type=int, default=5_000, help="timers in the due window")
    parser.add_argument(
        "--rate",
        default="memory=1000,sqlite=500,postgresql=200",
        help="timers coming due per second of simulated time, per store (about a fifth to "
        "a third of what one worker fires there: a worker that keeps up)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="due windows fired per case")
    parser.add_argument("--batch", type=int, default=100, help="TimerWorker batch")
    parser.add_argument("--idle-ms", type=int, default=100, help="worker's pause when idle")
    parser.add_argument("--overdue", default="1000,100000", help="'' to skip that probe")
    args = parser.parse_args()
    pendings = [int(p) for p in args.pending.split(",")]
    stores = args.stores.split(",")
    rates = {k: int(v) for k, v in (item.split("=") for item in args.rate.split(","))}
    tmp = Path(tempfile.mkdtemp(prefix="fe-timers-"))
    cases: list[Case] = []
    probes: list[tuple[str, int, float, str]] = []
    try:
        for kind in stores:
            warm_up = argparse.Namespace(**{**vars(args), "due": 200, "rounds": 1})
            run_store(kind, [0], rates[kind], warm_up, tmp)
            for case in run_store(kind, pendings, rates[kind], args, tmp):
                cases.append(case)
                pending = case.pending
                print(
                    f"  {kind:<10} {pending:>9,} pending: fill {case.fill_s:5.1f} s, "
                    f"{args.rounds} × {args.due:,} sessions created in {case.create_s:5.1f} s, "
                    f"fired in {sum(r.busy_s + r.empty_s for r in case.rounds):5.2f} s",
                    flush=True,
                )
        for overdue in [int(n) for n in args.overdue.split(",") if n]:
            for kind in stores:
                for stats in ("fresh", "stale") if kind == "postgresql" else ("",):
                    ms, plan = overdue_probe(kind, overdue, stats, args.batch, tmp)
                    label = f"{kind} ({stats} stats)" if stats else kind
                    probes.append((label, overdue, ms, plan))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"{args.rounds} rounds × {args.due:,} session expiry timers coming due evenly at "
        f"{args.rate} per s; TimerWorker batch {args.batch}, idle {args.idle_ms} ms; "
        "medians over rounds; ratio = row ÷ same store with 0 pending"
    )
    print(
        f"{'store':<11} {'pending':>9} {'fill s':>7} {'fired/s':>8} {'µs/fired':>9} "
        f"{'ratio':>6} {'batch':>6} {'empty poll µs':>14} {'ratio':>6} "
        f"{'p50 late ms':>12} {'p99 late ms':>12} {'ratio':>6}"
    )

    def ratio(value: float, base: float) -> str:
        return f"{value / base:>5.2f}×" if base else f"{'-':>6}"

    for case in cases:
        base = next(c for c in cases if c.store == case.store and c.pending == min(pendings))
        empty = case.median(lambda r: r.empty_us)
        base_empty = base.median(lambda r: r.empty_us)
        p99 = case.median(lambda r: r.pct(0.99))
        print(
            f"{case.store:<11} {case.pending:>9,} {case.fill_s:>7.1f} "
            f"{1e6 / case.us_per_fired:>8,.0f} {case.us_per_fired:>9.0f} "
            f"{ratio(case.us_per_fired, base.us_per_fired)} {case.batch:>6.1f} "
            f"{empty:>14.0f} {ratio(empty, base_empty)} "
            f"{case.median(lambda r: r.pct(0.5)):>12.1f} {p99:>12.1f} "
            f"{ratio(p99, base.median(lambda r: r.pct(0.99)))}"
        )
    print()
    print("plan of the claim query (first round, all of the window due):")
    for case in cases:
        for line in case.plan:
            print(f"  {case.store:<11} {case.pending:>9,}  {line}")
    if probes:
        print()
        print(f"claim of {args.batch} when a backlog is overdue (median ms; rolled back):")
        for label, overdue, ms, plan in probes:
            print(f"  {label:<28} {overdue:>9,} overdue {ms:>8.2f} ms   {plan}")


if __name__ == "__main__":
    main()
