"""The effect-adapter protocol: perform an operation by key, and say what became of a key.

An effect (``evm.deliver``, ``evm.refund``, …) is performed by an adapter, outside any
transaction, by the effect runner. Two methods are enough for safety:

* ``perform(call)`` does the operation **idempotently by** ``call.key``: a second
  call with the same key must not pay twice (an adapter keys its transaction by it).
* ``status_of(key)`` reports what the outside world knows of ``key`` — ``None`` when
  it has never seen it. The runner asks this first whenever an earlier attempt may
  have run (a crash, a timeout), and only performs again when the answer is ``None``.

The outcome is one of four, and success or failure only on explicit evidence (DESIGN):
``ok`` and ``failed`` are final; ``pending`` (accepted, not final) and ``unknown`` (no
answer) are resolved by asking ``status_of`` later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Outcome = Literal["ok", "failed", "pending", "unknown"]


@dataclass(frozen=True)
class EffectCall:
    """What an adapter gets: the effect, its idempotency key and the session's data.

    ``params`` were fixed when the flow requested the effect; ``params["units"]``, when
    present, is the exact amount to move (a state's ``amount:``) and takes precedence
    over anything the adapter would work out from ``session``.
    """

    key: str
    effect: str
    session_id: str
    session: Mapping[str, Any]
    attempt: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EffectResult:
    outcome: Outcome
    payload: Mapping[str, Any] = field(default_factory=dict)
    """Facts for the outcome event, e.g. ``{"units": 25_000_000, "txHash": "0x…"}``."""
    detail: str = ""


class EffectAdapter(Protocol):
    def perform(self, call: EffectCall) -> EffectResult: ...

    def status_of(self, key: str) -> EffectResult | None: ...
