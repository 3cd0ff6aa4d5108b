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


@pytest.mark.parametrize(
    "address",
    [  # the test vectors of EIP-55 itself
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_checksums_follow_eip_55(address: str) -> None:
    assert checksum_address(address.lower(), param="refundAddress") == address


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
