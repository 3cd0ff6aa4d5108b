"""Peak memory while 100,000 sessions pile up in a store: it must stay flat.

The engine keeps no session in memory between events (each step loads, applies and
writes back), so the process's resident size should not grow with the number of stored
sessions. This creates sessions on SQLite (group-committed sends) and prints the
resident set size every 10,000 sessions, next to the size before the first one.

Run: .venv/bin/python bench/memory.py [--sessions 100000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import REQUEST, STEPS  # noqa: E402
from flowengine import Engine, EventInput, FlowRegistry  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="fe-mem-")) / "sessions.db"
    engine = Engine(
        FlowRegistry.from_directory(ROOT / "flows"), f"sqlite:///{path}?synchronous=OFF"
    )
    event, payload = STEPS[0]
    engine.send_many(  # warm up: imports, pools, compiled classes
        [EventInput(engine.create_session(REQUEST).session_id, event, payload) for _ in range(200)]
    )
    baseline = rss_mib()
    print(f"{'sessions':>9} {'RSS MiB':>9} {'vs start':>9} {'peak MiB':>9} {'elapsed s':>10}")
    print(f"{0:>9,} {baseline:>9.1f} {0:>+9.1f} {_peak():>9.1f} {0:>10.1f}")
    start = time.perf_counter()
    created = 0
    while created < args.sessions:
        batch = [engine.create_session(REQUEST).session_id for _ in range(100)]
        engine.send_many([EventInput(sid, event, payload) for sid in batch])
        created += len(batch)
        if created % 10_000 == 0:
            now = rss_mib()
            print(
                f"{created:>9,} {now:>9.1f} {now - baseline:>+9.1f} {_peak():>9.1f} "
                f"{time.perf_counter() - start:>10.1f}"
            )
    size = path.stat().st_size / 2**20
    print(f"store file: {size:,.0f} MiB for {created:,} sessions; memory must not follow it")


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
