"""Store throughput: the engine's per-event write set, and outbox claims, per backend.

One "event" is what the engine writes for one step: ``get_session(for_update=True)``,
``find_event`` (idempotency), ``append_event``, ``update_session`` and one
``add_effect``. Measured on SQLite (synchronous FULL and NORMAL) and PostgreSQL (when
the server at 127.0.0.1:5432 answers), one transaction per event and with group
commit (several events per transaction). Then workers claiming effects in batches.
No engine code runs here: this is the ceiling the store puts on the engine.

Run: .venv/bin/python bench/store.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowengine.errors import StoreError  # noqa: E402
from flowengine.store import (  # noqa: E402
    EffectRecord,
    EventRecord,
    SessionRecord,
    Store,
    open_store,
)

PG_URL = os.environ.get("FLOWENGINE_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
SESSIONS = 100
DATA = {
    "amountUnits": 25_000_000,
    "destination": {"chainId": 8453, "address": "0x" + "11" * 20, "token": "0x" + "83" * 20},
    "refundAddress": "0x" + "22" * 20,
}


def seed(store: Store) -> None:
    with store.transaction() as tx:
        for n in range(SESSIONS):
            tx.insert_session(
                SessionRecord(f"s{n}", "deposit", "1", "h", "created", "open", DATA, 1, 1, 9)
            )


def write_events(store: Store, events: int, group: int) -> float:
    """Events per second for ``events`` engine steps, ``group`` per transaction."""
    run = uuid.uuid4().hex[:8]
    start = time.perf_counter()
    done = 0
    while done < events:
        with store.transaction() as tx:
            for _ in range(min(group, events - done)):
                sid = f"s{done % SESSIONS}"
                current = tx.get_session(sid, for_update=True)
                assert current is not None
                event_id = f"{run}-{done}"
                assert tx.find_event(sid, event_id) is None
                seq = current.seq + 1
                tx.append_event(
                    EventRecord(sid, seq, event_id, "tick", "a", "a", {"units": 10**24}, (), 5)
                )
                tx.update_session(replace(current, seq=seq, updated_at=5))
                tx.add_effect(
                    EffectRecord(f"{sid}:{run}:{seq}", sid, "deliver", "a", seq, "pending", 0, 5, 5)
                )
                done += 1
    return events / (time.perf_counter() - start)


def claim_all(store: Store, batch: int) -> float:
    """Effects claimed and marked done per second, ``batch`` per transaction."""
    start = time.perf_counter()
    taken = 0
    while True:
        with store.transaction() as tx:
            claimed = tx.claim_effects(now=10, limit=batch, worker="bench", lease_ms=60_000)
            for record in claimed:
                tx.update_effect(replace(record, status="done"))
        if not claimed:
            break
        taken += len(claimed)
    return taken / (time.perf_counter() - start)


def bench(label: str, url: str, events: int) -> None:
    store = open_store(url)
    try:
        seed(store)
        for group in (1, 10, 100):
            rate = write_events(store, events, group)
            print(f"{label:<22} write set, {group:>3} events/tx  {rate:>9,.0f} events/s")
        print(f"{label:<22} claim + done, 50/tx      {claim_all(store, 50):>9,.0f} effects/s")
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite FULL", f"sqlite:///{tmp}/full.db", args.events)
        bench("sqlite NORMAL", f"sqlite:///{tmp}/normal.db?synchronous=NORMAL", args.events)
    schema = f"fe_bench_{uuid.uuid4().hex[:12]}"
    try:
        bench("postgresql", f"{PG_URL}?schema={schema}", args.events)
    except StoreError as exc:
        print(f"postgresql: skipped ({exc})")
    finally:
        try:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.OperationalError:
            pass


if __name__ == "__main__":
    main()
