"""A real in-process adapter: transfers written to a local SQLite ledger file.

It stands in for a chain or a bank wherever the engine's own guarantees are tested
(exactly-once delivery across crashes, retries, polling): it keeps an idempotency key
per transfer exactly as a chain adapter keeps a nonce per key, survives the process
(it is a file, so a SIGKILLed worker's transfer is still there for the next one), and
answers ``status_of`` from what it actually recorded. Outcomes other than ``ok`` can be
scripted per effect name to exercise a flow's failure arms.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import defaultdict, deque
from pathlib import Path

from ..amounts import effect_units
from .base import EffectCall, EffectResult, Outcome

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    key TEXT PRIMARY KEY,
    effect TEXT NOT NULL,
    session_id TEXT NOT NULL,
    units TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tx_hash TEXT NOT NULL
)
"""


class LedgerAdapter:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._script: dict[str, deque[Outcome]] = defaultdict(deque)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def script(self, effect: str, *outcomes: Outcome) -> None:
        """The next calls of ``effect`` end with these outcomes, in order (then ``ok``)."""
        self._script[effect].extend(outcomes)

    def perform(self, call: EffectCall) -> EffectResult:
        with self._lock:
            scripted = self._script[call.effect]
            outcome: Outcome = scripted.popleft() if scripted else "ok"
        if outcome in ("pending", "unknown"):
            return EffectResult(outcome, detail="scripted")
        units = _units_for(call)
        tx_hash = "0x" + hashlib.sha256(call.key.encode()).hexdigest()
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO transfers VALUES (?, ?, ?, ?, ?, ?)",
                (call.key, call.effect, call.session_id, str(units), outcome, tx_hash),
            )
        found = self.status_of(call.key)
        assert found is not None
        return found

    def status_of(self, key: str) -> EffectResult | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT units, outcome, tx_hash FROM transfers WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        units, outcome, tx_hash = row
        return EffectResult(outcome, {"units": int(units), "txHash": tx_hash})

    def transfers(self) -> list[tuple[str, str, int]]:
        """Every recorded transfer as (key, effect, units): what the outside world saw."""
        with self._connect() as db:
            rows = db.execute("SELECT key, effect, units FROM transfers ORDER BY rowid").fetchall()
        return [(key, effect, int(units)) for key, effect, units in rows]


def _units_for(call: EffectCall) -> int:
    """The amount the flow fixed (``params["units"]``) if it did; otherwise deliver and
    refund move what the session holds (Daimo delivers what arrived) and settle
    confirms what was delivered."""
    if "units" in call.params:
        return int(call.params["units"])
    moved = call.session.get("amounts", {})
    if call.effect.endswith(".settle"):
        return int(moved.get("delivered", 0))
    return effect_units("held", call.session)
