"""EVM addresses, checked and checksummed once, at the edge.

Every address that enters through the API or a deployment file goes through
:func:`checksum_address`; inside the engine an address is always the EIP-55
checksummed string, so two spellings of one address compare equal.

What is accepted follows ethers' ``getAddress``: ``0x`` and 40 hex digits, either
in one case (all lower or all upper: no checksum to check) or in mixed case, in
which case it must be the correct EIP-55 checksum. A mixed-case address with a wrong
checksum almost always carries a typo, and money sent to a typo is gone, so it is
rejected rather than normalised.
"""

from __future__ import annotations

import re
from functools import lru_cache

from eth_hash.auto import keccak

from ..errors import FieldError, ValidationError

#: Funds sent here are burnt; never a valid destination or refund address.
ZERO_ADDRESS = "0x" + "0" * 40

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX = re.compile(r"[0-9a-fA-F]*")


def checksum_address(value: object, *, param: str) -> str:
    """Return ``value`` as an EIP-55 checksummed address, or raise a :class:`ValidationError`.

    Codes: ``invalid_type`` (not a string), ``invalid_address`` (no ``0x``, wrong
    length, not hex), ``invalid_checksum`` (mixed case that fails EIP-55).
    """

    def fail(code: str, message: str) -> ValidationError:
        return ValidationError([FieldError(param, code, message)])

    if not isinstance(value, str):
        raise fail("invalid_type", "must be a string: 0x followed by 40 hex characters")
    if _ADDRESS.fullmatch(value) is None:
        raise fail("invalid_address", _what_is_wrong(value))
    checksummed = _checksum(value[2:].lower())
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and value != checksummed:
        raise fail(
            "invalid_checksum",
            f"{value} is in mixed case but its EIP-55 checksum does not match, which "
            "usually means a mistyped character; copy the address again from its source",
        )
    return checksummed


@lru_cache(maxsize=4096)
def _checksum(lower_hex: str) -> str:
    """EIP-55 form of an address: a hex letter is upper case where the same nibble of
    keccak-256 of the lower-case hex is 8 or more. Cached: a keccak per call, and
    addresses recur. (eth-utils does the same, at 0.4 s of import.)"""
    digest = keccak(lower_hex.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if int(nibble, 16) >= 8 else char
        for char, nibble in zip(lower_hex, digest, strict=False)
    )


def is_zero_address(address: str) -> bool:
    return address.lower() == ZERO_ADDRESS


def _what_is_wrong(value: str) -> str:
    if not value.startswith("0x"):
        return "must start with 0x (lowercase x) followed by 40 hex characters"
    digits = value[2:]
    if _HEX.fullmatch(digits) is None:
        return "must be 0x followed by hex characters (0-9, a-f) only"
    return f"must be 0x followed by 40 hex characters, this has {len(digits)}"
