"""The amounts fold and the amounts a state's ``amount:`` names (held, due, excess)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowengine import amounts


def session(amount_units: str | None, received: int, delivered: int = 0, refunded: int = 0) -> dict:
    destination = {"amountUnits": amount_units, "decimals": 6}
    moved = {"received": received, "delivered": delivered, "refunded": refunded}
    return {"destination": destination, "amounts": moved}


def test_an_overpayment_splits_into_what_is_due_and_the_excess() -> None:
    paid = session("25.00", received=30_000_123)
    assert amounts.effect_units("held", paid) == 30_000_123
    assert amounts.effect_units("due", paid) == 25_000_000
    assert amounts.effect_units("excess", paid) == 5_000_123


def test_when_the_payer_chose_the_amount_everything_held_is_due() -> None:
    chosen = session(None, received=7_000_000)
    assert amounts.effect_units("due", chosen) == 7_000_000
    assert amounts.effect_units("excess", chosen) == 0


def test_a_late_payment_after_delivery_is_all_excess() -> None:
    late = session("25.00", received=32_000_000, delivered=25_000_000)
    assert amounts.effect_units("excess", late) == 7_000_000
    assert amounts.totals(late["amounts"])["held"] == 7_000_000


def test_an_unknown_amount_name_is_refused() -> None:
    with pytest.raises(ValueError, match="held, due, excess"):
        amounts.effect_units("all", session("1", 1))


@given(
    expected=st.integers(1, 10**12),
    received=st.integers(0, 10**12),
    delivered_share=st.floats(0, 1),
    refunded_share=st.floats(0, 1),
)
def test_held_is_always_due_plus_excess_and_never_more_is_due_than_owed(
    expected: int, received: int, delivered_share: float, refunded_share: float
) -> None:
    delivered = int(received * delivered_share)  # shares only pick test points, not money
    refunded = int((received - delivered) * refunded_share)
    facts = session(str(expected), received, delivered, refunded)  # decimals 6: base units
    facts["destination"]["decimals"] = 0
    held, due, excess = (amounts.effect_units(a, facts) for a in amounts.EFFECT_AMOUNTS)
    assert held == received - delivered - refunded == due + excess
    assert 0 <= due <= max(0, expected - delivered)
    assert excess >= 0
