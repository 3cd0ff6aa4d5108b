"""The replay check at scale: 10,000 live sessions of 5 events each, on SQLite.

Target (issue "Flow versions"): replayed through a new version in under 10 s on 2 cores.
Sessions are created with group commits (setup, not timed); then ``replay_check`` of
an unchanged and of a changed version is timed, next to the baseline of merely reading
the same sessions and logs from the store (the I/O floor of any replay).

Run: .venv/bin/python bench/replay.py [--sessions 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import TX, session_request  # noqa: E402

from flowengine import Engine, EventInput, FlowRegistry  # noqa: E402
from flowengine.replay import replay_check  # noqa: E402
from flowengine.spec import load_flow  # noqa: E402

REQUEST = session_request(amount=None)
# created + 4 events, ending live in 'review' (a settlement that failed)
STEPS = [
    ("select_amount", {}),
    ("payment_detected", {"units": 25_000_000, "txHash": TX}),
    ("evm.deliver.done", {"units": 25_000_000, "txHash": TX}),
    ("evm.settle.failed", {}),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="fe-replay-")) / "sessions.db"
    url = f"sqlite:///{path}?synchronous=OFF"
    engine = Engine(FlowRegistry.from_directory(ROOT / "flows"), url)
    start = time.perf_counter()
    ids = [engine.create_session(REQUEST).session_id for _ in range(args.sessions)]
    for event, payload in STEPS:
        items = [EventInput(sid, event, payload) for sid in ids]
        for at in range(0, len(items), 500):
            engine.send_many(items[at : at + 500])
    setup = time.perf_counter() - start
    v1 = (ROOT / "flows" / "deposit.yaml").read_text()
    unchanged = load_flow("flows/deposit.yaml", text=v1)
    changed = load_flow(
        "flows/deposit.yaml",
        text=v1.replace("version: 1\n", "version: 2\n", 1).replace(
            "outcomes: {done: completed, failed: review}",
            "outcomes: {done: completed, failed: bounced}",
        ),
    )

    def timed(label: str, run: object) -> float:
        began = time.perf_counter()
        result = run()  # type: ignore[operator]
        took = time.perf_counter() - began
        print(f"  {label:<52} {took:6.2f} s   {result}")
        return took

    def read_only() -> str:
        with engine.store.transaction() as tx:
            sessions = tx.sessions_of_flow("deposit")
            events = tx.events_of_flow("deposit")
        return f"{len(sessions)} sessions, {len(events)} events read"

    def replay(spec: object) -> str:
        report = replay_check(engine.store, spec)  # type: ignore[arg-type]
        return (
            f"{report.sessions} sessions, {report.events} events, {len(report.divergences)} diverge"
        )

    print(f"{args.sessions:,} sessions × {1 + len(STEPS)} events on SQLite (setup {setup:.1f} s)")
    timed("baseline: read sessions + logs from the store", read_only)
    timed("replay_check, unchanged version", lambda: replay(unchanged))
    timed("replay_check, version bouncing a failed settlement", lambda: replay(changed))
    print("target: replay under 10 s")


if __name__ == "__main__":
    main()
