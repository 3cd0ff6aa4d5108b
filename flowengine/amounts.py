"""Amounts received, delivered and refunded: a fold over a session's events.

Events that move money carry ``units`` (an integer in the destination token's base
units) and usually ``txHash`` in their payload. Which events count as what is decided
by the event's name, so any flow that uses the standard events gets the accounting:

* ``payment_detected`` — the payer's funds arrived (received)
* ``<chain>.deliver.done`` / ``<chain>.call.done`` — funds reached the merchant (delivered)
* ``<chain>.refund.done`` — funds went back to ``refundAddress`` (refunded)

The session keeps the fold as a projection, updated in the same transaction as the
event, so reading a session never replays its log; ``reconcile`` recomputes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FieldError, ValidationError
from .sessions.amounts import MAX_UNITS

KINDS = ("received", "delivered", "refunded")
EFFECT_AMOUNTS = ("held", "due", "excess")


@dataclass(frozen=True)
class Movement:
    kind: str
    units: int
    tx_hash: str | None


def movement(event: str, payload: Mapping[str, Any]) -> Movement | None:
    """What money ``event`` moved, if any."""
    if event == "payment_detected":
        kind = "received"
    elif event.endswith((".deliver.done", ".call.done")):
        kind = "delivered"
    elif event.endswith(".refund.done"):
        kind = "refunded"
    else:
        return None
    units = payload.get("units", 0)
    problem = None
    if not isinstance(units, int) or isinstance(units, bool) or not 0 <= units <= MAX_UNITS:
        problem = f"must be an integer in base units from 0 to 2**256 - 1, not {units!r}"
    elif kind == "received" and units == 0:
        # A session that accepts underpayment would deliver nothing and complete:
        # the merchant told it was paid. Zero-value token transfers cost a spoofer
        # only gas, so they are not payments.
        problem = (
            "must be at least 1: a payment of nothing is not a payment "
            "(send the base units that arrived)"
        )
    if problem is not None:
        raise ValidationError(
            [FieldError("payload.units", "invalid_units", f"'units' of {event} {problem}")]
        )
    tx_hash = payload.get("txHash")
    return Movement(kind, units, tx_hash if isinstance(tx_hash, str) else None)


def empty() -> dict[str, Any]:
    return {"received": 0, "delivered": 0, "refunded": 0, "txHashes": []}


def apply(projection: Mapping[str, Any], event: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``projection`` updated by one event (a new dict; the old one is not touched)."""
    moved = movement(event, payload)
    if moved is None:
        return dict(projection)
    updated = dict(projection)
    updated[moved.kind] = int(projection.get(moved.kind, 0)) + moved.units
    if moved.tx_hash:
        updated["txHashes"] = [*projection.get("txHashes", []), moved.tx_hash]
    return updated


def fold(events: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    projection = empty()
    for event, payload in events:
        projection = apply(projection, event, payload)
    return projection


def totals(projection: Mapping[str, Any]) -> dict[str, int]:
    """received, delivered, refunded and held (what is left) in base units."""
    received, delivered, refunded = (int(projection.get(kind, 0)) for kind in KINDS)
    return {
        "received": received,
        "delivered": delivered,
        "refunded": refunded,
        "held": received - delivered - refunded,
    }


def expected_units(session: Mapping[str, Any]) -> int | None:
    """``destination.amountUnits`` in base units, or None when the payer chooses."""
    from .sessions import to_base_units

    destination = session.get("destination")
    if not isinstance(destination, Mapping) or destination.get("amountUnits") is None:
        return None
    return to_base_units(str(destination["amountUnits"]), int(destination.get("decimals", 0)))


def effect_units(amount: str, session: Mapping[str, Any]) -> int:
    """The base units a state's ``amount:`` names, from the session as it is now.

    ``held`` is what the session holds (received − delivered − refunded); ``due`` the
    part of it still owed to the merchant (at most amountUnits − delivered; all of it
    when the payer chose the amount); ``excess`` the rest. held = due + excess always.
    """
    moved = totals(session.get("amounts", {}))
    held, delivered = moved["held"], moved["delivered"]
    expected = expected_units(session)
    due = held if expected is None else max(0, min(held, expected - delivered))
    units = {"held": held, "due": due, "excess": held - due}
    if amount not in units:
        raise ValueError(f"unknown amount '{amount}': expected one of {', '.join(units)}")
    return units[amount]
