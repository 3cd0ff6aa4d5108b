"""Addresses are checksummed once, at the edge; a mistyped checksum is refused."""

import pytest

from flowengine.errors import ValidationError
from flowengine.sessions import checksum_address, is_zero_address

USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


def test_lowercase_is_accepted_and_checksummed() -> None:
    assert checksum_address(USDC_BASE.lower(), param="tokenAddress") == USDC_BASE


def test_uppercase_is_accepted_like_lowercase() -> None:
    assert checksum_address("0x" + USDC_BASE[2:].upper(), param="tokenAddress") == USDC_BASE


def test_a_good_checksum_is_kept() -> None:
    assert checksum_address(USDC_BASE, param="tokenAddress") == USDC_BASE


def test_a_bad_checksum_is_refused() -> None:
    mistyped = USDC_BASE.replace("fCD6", "fcD6")  # one letter in the wrong case
    with pytest.raises(ValidationError) as caught:
        checksum_address(mistyped, param="destination.address")
    (error,) = caught.value.errors
    assert (error.param, error.code) == ("destination.address", "invalid_checksum")


@pytest.mark.parametrize(
    ("value", "code", "says"),
    [
        ("0x" + "ab" * 19, "invalid_address", "this has 38"),
        ("0x" + "ab" * 21, "invalid_address", "this has 42"),
        ("0x", "invalid_address", "this has 0"),
        ("ab" * 20, "invalid_address", "must start with 0x"),
        ("0X" + "ab" * 20, "invalid_address", "must start with 0x"),
        ("0x" + "zz" * 20, "invalid_address", "hex characters"),
        (" 0x" + "ab" * 20, "invalid_address", "must start with 0x"),
        ("0x" + "ab" * 20 + "\n", "invalid_address", "hex characters"),
        (None, "invalid_type", "must be a string"),
        (0x1234, "invalid_type", "must be a string"),
    ],
)
def test_malformed_addresses_are_refused(value: object, code: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says) as caught:
        checksum_address(value, param="refundAddress")
    (error,) = caught.value.errors
    assert (error.param, error.code) == ("refundAddress", code)


def test_zero_address() -> None:
    assert is_zero_address("0x" + "0" * 40)
    assert not is_zero_address(USDC_BASE)
