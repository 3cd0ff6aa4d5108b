"""Amounts: decimal strings in token units at the API, integer base units on chain."""

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from flowengine.errors import ValidationError
from flowengine.sessions import canonical_amount, format_units, parse_amount, to_base_units
from flowengine.sessions.amounts import MAX_UNITS

USDC = 6


@pytest.mark.parametrize(
    ("amount", "decimals", "units"),
    [
        ("25", USDC, 25_000_000),
        ("25.00", USDC, 25_000_000),
        ("25.001", USDC, 25_001_000),
        ("0.000001", USDC, 1),
        ("25.0000000", USDC, 25_000_000),  # more digits than the token, but exact
        ("0025.5", USDC, 25_500_000),
        ("1", 18, 10**18),
        ("7", 0, 7),
        (f"{MAX_UNITS // 10**18}.{MAX_UNITS % 10**18:018d}", 18, MAX_UNITS),  # uint256 max
    ],
)
def test_to_base_units(amount: str, decimals: int, units: int) -> None:
    assert to_base_units(amount, decimals) == units


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("25.0000001", "too_many_decimals"),
        ("0", "amount_not_positive"),
        ("0.000000", "amount_not_positive"),
        ("-5", "amount_not_positive"),
        ("-5.00", "amount_not_positive"),
        ("1e3", "invalid_amount"),
        ("1E-2", "invalid_amount"),
        (" 25", "invalid_amount"),
        ("25.", "invalid_amount"),
        (".5", "invalid_amount"),
        ("+5", "invalid_amount"),
        ("1,000.00", "invalid_amount"),
        ("", "invalid_amount"),
        ("NaN", "invalid_amount"),
        ("Infinity", "invalid_amount"),
        ("٢٥", "invalid_amount"),  # Arabic-Indic digits: int() would take them, we do not
        ("1" * 101, "invalid_amount"),
        ("1" * 80, "amount_too_large"),
        (25.5, "invalid_type"),
        (25, "invalid_type"),
        (Decimal("25"), "invalid_type"),
        (True, "invalid_type"),
        (None, "invalid_type"),
        (["25"], "invalid_type"),
    ],
)
def test_to_base_units_rejects(amount: object, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        to_base_units(amount, USDC, param="destination.amountUnits")  # type: ignore[arg-type]
    (error,) = caught.value.errors
    assert (error.param, error.code) == ("destination.amountUnits", code)


def test_a_json_number_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="not a JSON number"):
        to_base_units(0.1, USDC)  # type: ignore[arg-type]


def test_too_many_decimals_names_the_smallest_amount() -> None:
    with pytest.raises(ValidationError, match=r"smallest amount of this token is 0\.000001"):
        to_base_units("0.0000001", USDC)


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (25_000_000, USDC, "25.00"),
        (24_500_000, USDC, "24.50"),
        (25_123_400, USDC, "25.1234"),
        (1, USDC, "0.000001"),
        (0, USDC, "0.00"),
        (10**18, 18, "1.00"),
        (7, 0, "7"),
        (75, 1, "7.5"),
        (70, 1, "7.0"),
    ],
)
def test_format_units(units: int, decimals: int, text: str) -> None:
    assert format_units(units, decimals) == text


def test_format_units_refuses_what_is_a_bug_in_the_caller() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_units(-1, USDC)
    with pytest.raises(TypeError):
        format_units(1.5, USDC)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decimals"):
        format_units(1, 78)


def test_canonical_amount_and_parse_amount() -> None:
    assert canonical_amount("25", USDC) == "25.00"
    assert canonical_amount("025.500000", USDC) == "25.50"
    assert parse_amount("25.50") == Decimal("25.5")
    with pytest.raises(ValidationError):
        parse_amount("25.5e1")


decimals_st = st.integers(min_value=0, max_value=30)


@given(decimals_st, st.integers(min_value=1, max_value=MAX_UNITS))
def test_units_survive_a_round_trip_through_text(decimals: int, units: int) -> None:
    assert to_base_units(format_units(units, decimals), decimals) == units


@st.composite
def amounts(draw: st.DrawFn) -> tuple[str, int]:
    """A well-formed positive amount and a token it fits, leading and trailing zeros allowed."""
    decimals = draw(decimals_st)
    whole = draw(st.text("0123456789", min_size=1, max_size=25))
    fraction = draw(st.text("0123456789", max_size=decimals))
    text = f"{whole}.{fraction}" if fraction else whole
    assume(Decimal(text) != 0)
    return text, decimals


@given(amounts())
def test_text_comes_back_canonical(case: tuple[str, int]) -> None:
    amount, decimals = case
    text = format_units(to_base_units(amount, decimals), decimals)
    assert Decimal(text) == Decimal(amount)  # same value
    whole, _, fraction = text.partition(".")
    assert whole == "0" or not whole.startswith("0")  # no leading zeros
    assert len(fraction) == decimals if decimals < 2 else len(fraction) >= 2
    assert len(fraction) <= 2 or not fraction.endswith("0")  # shortest beyond two digits
    assert canonical_amount(text, decimals) == text  # a fixed point
