"""Token amounts: decimal strings at the edges, integer base units on chain.

The API speaks amounts as decimal strings in token units (``"25.00"`` USDC), as
Daimo's Sessions API does; the chain speaks integers in the token's base units
(``25000000`` for a 6-decimals token). This module is the only place that converts
between the two, and it never goes through a float: a JSON number such as ``0.1``
is already a binary approximation by the time it reaches us, which is why the
parser refuses anything but a string. Conversion is done on the digits themselves
(no ``Decimal`` context, so no rounding at 28 digits either).

Canonical form (what :func:`format_units` writes and what a stored session holds):
the shortest decimal that is exact, but with at least two fraction digits when the
token has two or more decimals, because people read money that way. So for a
6-decimals token: ``25000000 → "25.00"``, ``24500000 → "24.50"``,
``1 → "0.000001"``, ``25123400 → "25.1234"``; for an 18-decimals token the same
rule holds; for a 0-decimals token ``7 → "7"``.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ..errors import FieldError, ValidationError

#: ERC-20 balances are ``uint256``; an amount that does not fit can never be paid.
MAX_UNITS = 2**256 - 1
#: ``10**77 < 2**256 < 10**78``: a token with more decimals could not hold one whole token.
MAX_DECIMALS = 77
#: 78 digits cover ``MAX_UNITS``; the margin allows a point and trailing zeros. The cap
#: keeps a hostile request from making us convert a megabyte of digits.
MAX_AMOUNT_LENGTH = 100

_AMOUNT = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")
_EXAMPLE = 'a decimal string in token units such as "25.00"'


def parse_amount(amount: str, *, param: str = "amountUnits") -> Decimal:
    """Check that ``amount`` is a positive decimal string and return it as an exact ``Decimal``.

    This is the check that needs no token: use it when the token (hence its
    decimals) is unknown, and :func:`to_base_units` otherwise. Codes as there.
    """
    whole, fraction = _digits(amount, param)
    return Decimal(f"{whole}.{fraction}" if fraction else whole)


def to_base_units(amount: str, decimals: int, *, param: str = "amountUnits") -> int:
    """Convert a decimal string in token units to integer base units, exactly.

    Accepted: ASCII digits with an optional fractional part (``"25"``, ``"25.00"``,
    ``"0.000001"``). Rejected, each with a :class:`ValidationError` naming ``param``:
    anything but a string (``invalid_type``; JSON numbers included, see the module
    docstring), signs, exponents, spaces, a bare point (``invalid_amount``), zero
    and negatives (``amount_not_positive``), more significant fraction digits than
    the token has (``too_many_decimals``: ``"25.001"`` is fine for 6 decimals,
    ``"25.0000001"`` is not, while ``"25.0000000"`` is, being exactly 25), and more
    than a ``uint256`` holds (``amount_too_large``).
    """
    _check_decimals(decimals)
    whole, fraction = _digits(amount, param)
    if len(fraction) > decimals:
        raise _fail(
            param,
            "too_many_decimals",
            f"{amount!r} has more decimal places than the token's {decimals}; "
            f"the smallest amount of this token is {format_units(1, decimals)}",
        )
    scale: int = 10**decimals
    units = int(whole) * scale + int(fraction.ljust(decimals, "0") or "0")
    if units > MAX_UNITS:
        raise _fail(param, "amount_too_large", "is more than any token balance can hold (uint256)")
    return units


def format_units(units: int, decimals: int) -> str:
    """Write integer base units as a canonical decimal string (see the module docstring).

    ``format_units(0, 6)`` is ``"0.00"``: sessions report amounts received, delivered
    and refunded, which start at zero. Negative units are a bug in the caller, not
    user input, hence ``ValueError`` rather than :class:`ValidationError`.
    """
    _check_decimals(decimals)
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"units must be an int, not {type(units).__name__}")
    if units < 0:
        raise ValueError(f"units must not be negative, got {units}")
    if decimals == 0:
        return str(units)
    whole, fraction = divmod(units, 10**decimals)
    digits = str(fraction).rjust(decimals, "0").rstrip("0").ljust(min(2, decimals), "0")
    return f"{whole}.{digits}"


def canonical_amount(amount: str, decimals: int, *, param: str = "amountUnits") -> str:
    """Validate ``amount`` like :func:`to_base_units` and return its canonical form.

    ``"25"`` and ``"25.000"`` both become ``"25.00"``, so two sessions for the same
    amount store the same string.
    """
    return format_units(to_base_units(amount, decimals, param=param), decimals)


def _digits(amount: object, param: str) -> tuple[str, str]:
    """Split a well-formed positive amount into its whole digits and significant fraction digits."""
    if isinstance(amount, bool) or not isinstance(amount, str):
        if isinstance(amount, int | float | Decimal):
            raise _fail(
                param,
                "invalid_type",
                f"must be {_EXAMPLE}, not a JSON number: numbers are read as binary "
                "floats by most clients and lose cents",
            )
        raise _fail(param, "invalid_type", f"must be {_EXAMPLE}")
    if len(amount) > MAX_AMOUNT_LENGTH:
        raise _fail(param, "invalid_amount", f"is longer than {MAX_AMOUNT_LENGTH} characters")
    match = _AMOUNT.fullmatch(amount)
    if match is None:
        if amount.startswith("-") and _AMOUNT.fullmatch(amount[1:]):
            raise _fail(param, "amount_not_positive", "must be greater than zero")
        raise _fail(param, "invalid_amount", f"{amount!r} is not {_EXAMPLE}{_why_not(amount)}")
    whole, fraction = match["whole"].lstrip("0") or "0", (match["fraction"] or "").rstrip("0")
    if whole == "0" and not fraction:
        raise _fail(param, "amount_not_positive", "must be greater than zero")
    return whole, fraction


def _fail(param: str, code: str, message: str) -> ValidationError:
    return ValidationError([FieldError(param, code, message)])


def _check_decimals(decimals: int) -> None:
    if isinstance(decimals, bool) or not isinstance(decimals, int):
        raise TypeError(f"decimals must be an int, not {type(decimals).__name__}")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"decimals must be between 0 and {MAX_DECIMALS}, got {decimals}")


def _why_not(amount: str) -> str:
    """The likely reason a string is not an amount, to put in the error message."""
    if amount.strip() != amount:
        return " (remove the surrounding spaces)"
    if "e" in amount.lower():
        return " (exponents are not accepted; write the digits out)"
    if "," in amount:
        return " (use a point as the decimal separator and no thousands separator)"
    if amount.startswith("+"):
        return " (no sign)"
    if amount.startswith(".") or amount.endswith("."):
        return " (write a digit on both sides of the point, e.g. 0.50)"
    return ""
