"""Walking a flow through the real engine, one checked step at a time.

:mod:`flowengine.testgen` writes a test module per flow whose cases are walks: each
step feeds one session what production would (an event, an effect's outcome, a timer
coming due) and checks the state it reached and the effects it asked for, on a fresh
:class:`~flowengine.engine.Engine` with a memory store and a manual clock. The walk
lives here, once, so the generated files hold only their cases; a hand-written test
can use it the same way::

    walk = FlowWalk(load_flow("flows/deposit.yaml"), amount_fixed=True, has_calldata=False)
    walk.send("payment_detected", to="paid", effects=["evm.deliver"], pay="exact")
    walk.outcome("evm.deliver.done", to="delivered", effects=["evm.settle"])

It depends on nothing but flowengine (no pytest), so it can be imported anywhere.
"""

from __future__ import annotations

from typing import Any

from .amounts import effect_units
from .clock import ManualClock
from .durations import parse_duration
from .engine import Engine
from .errors import TransitionNotAllowed
from .flows import FlowRegistry
from .spec import FlowSpec
from .workers import TimerWorker

EXPIRES_IN = 3600  # seconds: when the `at: expires_at` timers come due
MERCHANT = "0x1111111111111111111111111111111111111111"
PAYER_REFUND = "0x2222222222222222222222222222222222222222"
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
#: What the events that move money carry (25.00 USDC in base units, a transaction hash).
PAYLOADS: dict[str, dict[str, Any]] = {
    "payment_detected": {"units": 25_000_000, "txHash": "0x" + "aa" * 32},
}
DONE_TX_HASH = "0x" + "bb" * 32  # the transaction an effect's adapter reports
#: destination.amountUnits when the amount is fixed ("25.00" USDC), in base units.
AMOUNT_UNITS = 25_000_000


def create_request(flow: str, *, amount_fixed: bool, has_calldata: bool) -> dict[str, Any]:
    """A valid create-session body that makes the built-in guards come out as asked:
    `amount_fixed` holds when destination.amountUnits is set, `has_calldata` when
    destination.calldata is."""
    destination: dict[str, Any] = {
        "type": "evm",
        "address": MERCHANT,
        "chainId": 8453,
        "tokenAddress": BASE_USDC,
    }
    if amount_fixed:
        destination["amountUnits"] = "25.00"
    if has_calldata:
        destination["calldata"] = "0xd09de08a"
    return {
        "destination": destination,
        "display": {"title": "Generated test", "verb": "Pay"},
        "refundAddress": PAYER_REFUND,
        "flow": flow,
        "expiresIn": EXPIRES_IN,
    }


class FlowWalk:
    """One session of the flow on a fresh engine (memory store, manual clock).

    Each step feeds the session one thing the way production does (an event, an
    effect's outcome, a timer coming due) and then checks, from the session's event
    log, the state it reached and the effects that step requested.
    """

    def __init__(self, spec: FlowSpec, *, amount_fixed: bool, has_calldata: bool) -> None:
        self.clock = ManualClock()
        self.engine = Engine(FlowRegistry([spec]), "memory://", self.clock)
        request = create_request(spec.name, amount_fixed=amount_fixed, has_calldata=has_calldata)
        self.session_id = self.engine.create_session(request).session_id
        self.entered_ms = self.clock.now_ms()

    def starts_in(self, state: str, *, effects: list[str]) -> None:
        self._check("session.created", state, effects)

    def send(self, event: str, *, to: str, effects: list[str], pay: str = "") -> None:
        self.engine.send(self.session_id, event, self._payload(event, pay))
        self._check(event, to, effects)

    def outcome(self, event: str, *, to: str, effects: list[str]) -> None:
        """An effect's outcome, as the effect runner feeds it back: `<effect>.<arm>`."""
        payload = self._moved(event.removesuffix(".done")) if event.endswith(".done") else {}
        self.engine.send(self.session_id, event, payload)
        self._check(event, to, effects)

    def timer(self, event: str, *, due: str, to: str, effects: list[str]) -> None:
        """Move the clock to the timer's due time; the timer worker fires it."""
        self._advance(due)
        assert TimerWorker(self.engine).run_once() == 1, f"the timer {event} ({due}) did not fire"
        self._check(event, to, effects)

    def refused(self, event: str, *, pay: str = "") -> None:
        """The event is refused (TransitionNotAllowed) and nothing is written."""
        before = self.engine.history(self.session_id)
        try:
            self.engine.send(self.session_id, event, self._payload(event, pay))
        except TransitionNotAllowed:
            pass
        else:
            raise AssertionError(f"{event} was accepted; the flow should refuse it here")
        assert self.engine.history(self.session_id) == before

    def timer_refused(self, event: str, *, due: str) -> None:
        """The timer comes due, but its event is refused: it fires nothing."""
        before = self.engine.history(self.session_id)
        self._advance(due)
        assert TimerWorker(self.engine).run_once() == 0, f"the timer {event} ({due}) fired"
        assert self.engine.history(self.session_id) == before

    def visited(self, states: list[str]) -> None:
        assert [row.target for row in self.engine.history(self.session_id)] == states

    def _moved(self, effect: str) -> dict[str, Any]:
        """What an adapter reports when `effect` is done: the units the flow fixed for
        it (a state's `amount:`), else what the session holds (settle: what was
        delivered), as the ledger adapter does."""
        with self.engine.store.transaction() as tx:
            requested = [e for e in tx.effects(self.session_id) if e.effect == effect]
        params = (requested[-1].params or {}) if requested else {}
        data = self.engine.record(self.session_id).data
        if "units" in params:
            units = params["units"]
        elif effect.endswith(".settle"):
            units = data["amounts"]["delivered"]
        else:
            units = effect_units("held", data)
        return {"units": units, "txHash": DONE_TX_HASH}

    def _payload(self, event: str, pay: str) -> dict[str, Any]:
        """The event's payload. A payment with `pay` brings the total received to exactly
        the amount ("exact"), leaves it short ("short": 1 base unit) or goes over it
        ("over": to twice the amount): what the payment guards look at."""
        if not pay:
            return PAYLOADS.get(event, {})
        received = self.engine.record(self.session_id).data["amounts"]["received"]
        units = {
            "exact": AMOUNT_UNITS - received,
            "short": 1,
            "over": max(1, 2 * AMOUNT_UNITS - received),
        }[pay]
        return {"units": units, "txHash": "0x" + "cc" * 32}

    def _advance(self, due: str) -> None:
        if due == "expires_at":
            at = self.engine.record(self.session_id).expires_at
        else:
            at = self.entered_ms + parse_duration(due) * 1000
        self.clock.advance(ms=max(0, at - self.clock.now_ms()))

    def _check(self, event: str, state: str, effects: list[str]) -> None:
        row = self.engine.history(self.session_id)[-1]
        assert (row.event, row.target) == (event, state), (
            f"{event} should lead to {state!r}; the log says {row.event} → {row.target!r}"
        )
        assert self.engine.record(self.session_id).state == state
        requested = [r["effect"] for r in row.requests if r["kind"] == "effect"]
        assert requested == effects, f"{event} → {state}: requested effects {requested}"
        self.entered_ms = self.clock.now_ms()

    def deferred(self, event: str) -> None:
        """The flow defers the event (`defer:`): logged, but the state stays, nothing requested."""
        state = self.engine.record(self.session_id).state
        self.engine.send(self.session_id, event, PAYLOADS.get(event, {}))
        row = self.engine.history(self.session_id)[-1]
        assert (row.event, row.target) == (event, state)
        assert self.engine.record(self.session_id).state == state
        assert [r for r in row.requests if r["kind"] == "effect"] == []
