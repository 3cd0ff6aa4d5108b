"""The chains and tokens a deployment accepts as session destinations.

A create-session request names its destination token by chain id and contract
address; the catalog says whether that pair is one this deployment supports, and
supplies what the request does not carry: the chain's name (``base``) and the
token's symbol and decimals, which decide how amounts are parsed and written.

:meth:`Catalog.default` holds native USDC on five mainnets plus a local ``anvil``
chain with no tokens; tests and deployments add theirs with :meth:`Catalog.extend`,
or describe a whole catalog in the deploy YAML (:meth:`Catalog.from_mapping`).
The catalog is immutable, so one instance can be shared by every request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..errors import FieldError, ValidationError
from .addresses import checksum_address
from .amounts import MAX_DECIMALS

_CHAIN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_SYMBOL = re.compile(r"[A-Za-z0-9.$_-]{1,16}")


@dataclass(frozen=True)
class Chain:
    chain_id: int
    name: str

    def __post_init__(self) -> None:
        if not _positive_int(self.chain_id):
            raise ValueError(f"chain_id must be a positive integer, got {self.chain_id!r}")
        if not isinstance(self.name, str) or _CHAIN_NAME.fullmatch(self.name) is None:
            raise ValueError(
                f"chain name must be 1-32 lowercase letters, digits, '_' or '-', got {self.name!r}"
            )


@dataclass(frozen=True)
class Token:
    """A token contract on one chain; ``address`` is kept checksummed, whatever its given case."""

    chain_id: int
    address: str
    symbol: str
    decimals: int

    def __post_init__(self) -> None:
        if not _positive_int(self.chain_id):
            raise ValueError(f"chain_id must be a positive integer, got {self.chain_id!r}")
        try:
            address = checksum_address(self.address, param="address")
        except ValidationError as exc:
            raise ValueError(f"token address {self.address!r}: {exc.errors[0].message}") from None
        object.__setattr__(self, "address", address)
        if not isinstance(self.symbol, str) or _SYMBOL.fullmatch(self.symbol) is None:
            raise ValueError(f"token symbol must be 1-16 characters, got {self.symbol!r}")
        if not (_int(self.decimals) and 0 <= self.decimals <= MAX_DECIMALS):
            raise ValueError(
                f"token decimals must be an integer from 0 to {MAX_DECIMALS}, got {self.decimals!r}"
            )


class Catalog:
    """The supported chains and, on each, the supported destination tokens."""

    def __init__(self, chains: Iterable[Chain], tokens: Iterable[Token]) -> None:
        self._chains: dict[int, Chain] = {}
        for chain in chains:
            if chain.chain_id in self._chains:
                raise ValueError(f"chain {chain.chain_id} is listed twice")
            self._chains[chain.chain_id] = chain
        self._tokens: dict[tuple[int, str], Token] = {}
        for token in tokens:
            if token.chain_id not in self._chains:
                raise ValueError(
                    f"token {token.symbol} {token.address} is on chain {token.chain_id}, "
                    "which the catalog does not list"
                )
            key = (token.chain_id, token.address.lower())
            if key in self._tokens:
                raise ValueError(f"token {token.address} on chain {token.chain_id} is listed twice")
            self._tokens[key] = token

    def chain(self, chain_id: int) -> Chain | None:
        return self._chains.get(chain_id)

    def token(self, chain_id: int, address: str) -> Token | None:
        """The token at ``address`` (any letter case) on ``chain_id``, or ``None``."""
        if not isinstance(address, str):
            return None
        return self._tokens.get((chain_id, address.lower()))

    @property
    def chains(self) -> tuple[Chain, ...]:
        return tuple(sorted(self._chains.values(), key=lambda c: c.chain_id))

    def tokens(self, chain_id: int | None = None) -> tuple[Token, ...]:
        """Every token, or those on ``chain_id``, ordered by chain then symbol."""
        found = (t for t in self._tokens.values() if chain_id is None or t.chain_id == chain_id)
        return tuple(sorted(found, key=lambda t: (t.chain_id, t.symbol, t.address)))

    def extend(self, *, chains: Iterable[Chain] = (), tokens: Iterable[Token] = ()) -> Catalog:
        """A new catalog with these chains and tokens added (e.g. a test token on anvil)."""
        return Catalog([*self._chains.values(), *chains], [*self._tokens.values(), *tokens])

    def __repr__(self) -> str:
        return f"Catalog(chains={len(self._chains)}, tokens={len(self._tokens)})"

    @classmethod
    def default(cls) -> Catalog:
        """Circle's native USDC on five mainnets, and an empty local ``anvil`` chain.

        Built once and shared (a catalog is immutable): every request without a
        catalog of its own validates against it.
        """
        return _default_catalog()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Catalog:
        """Build a catalog from plain data, e.g. the ``catalog:`` section of a deploy YAML.

        Shape: ``{"chains": [{"chainId", "name"}], "tokens": [{"chainId", "address",
        "symbol", "decimals"}]}`` (``tokens`` optional). Every mistake is reported at
        once in one :class:`ValidationError`, with params such as ``tokens.2.address``.
        """
        errors: list[FieldError] = []
        if not isinstance(data, Mapping):
            raise ValidationError([FieldError("", "invalid_type", "must be a mapping")])
        errors += _unknown_keys(data, {"chains", "tokens"}, "")

        chains: list[Chain] = []
        for at, entry in _entries(data, "chains", errors, required=True):
            errors += _unknown_keys(entry, {"chainId", "name"}, at)
            chain_id: Any = entry.get("chainId")
            name: Any = entry.get("name")
            ok = _check(_positive_int(chain_id), errors, f"{at}.chainId", "a positive integer")
            ok &= _check(
                isinstance(name, str) and _CHAIN_NAME.fullmatch(name) is not None,
                errors,
                f"{at}.name",
                "1-32 lowercase letters, digits, '_' or '-'",
            )
            if ok and any(c.chain_id == chain_id for c in chains):
                errors.append(FieldError(f"{at}.chainId", "duplicate", f"chain {chain_id} twice"))
            elif ok:
                chains.append(Chain(chain_id, name))

        known = {c.chain_id for c in chains}
        tokens: list[Token] = []
        for at, entry in _entries(data, "tokens", errors, required=False):
            errors += _unknown_keys(entry, {"chainId", "address", "symbol", "decimals"}, at)
            chain_id = entry.get("chainId")
            symbol: Any = entry.get("symbol")
            decimals: Any = entry.get("decimals")
            ok = _check(_positive_int(chain_id), errors, f"{at}.chainId", "a positive integer")
            if ok and chain_id not in known:
                ok = False
                errors.append(
                    FieldError(
                        f"{at}.chainId", "unknown_chain", f"chain {chain_id} is not in chains"
                    )
                )
            try:
                address = checksum_address(entry.get("address"), param=f"{at}.address")
            except ValidationError as exc:
                ok = False
                errors += exc.errors
            ok &= _check(
                isinstance(symbol, str) and _SYMBOL.fullmatch(symbol) is not None,
                errors,
                f"{at}.symbol",
                "1-16 characters such as USDC",
            )
            ok &= _check(
                _int(decimals) and 0 <= decimals <= MAX_DECIMALS,
                errors,
                f"{at}.decimals",
                f"an integer from 0 to {MAX_DECIMALS}",
            )
            if ok and any((t.chain_id, t.address) == (chain_id, address) for t in tokens):
                errors.append(
                    FieldError(f"{at}.address", "duplicate", f"token {address} twice on {chain_id}")
                )
            elif ok:
                tokens.append(Token(chain_id, address, symbol, decimals))

        if errors:
            raise ValidationError(errors)
        return cls(chains, tokens)


#: (chain id, chain name, native USDC contract): Circle's own deployments, 6 decimals.
_DEFAULT_USDC = (
    (1, "ethereum", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
    (10, "optimism", "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85"),
    (137, "polygon", "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"),
    (8453, "base", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
    (42161, "arbitrum", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"),
)


@functools.cache
def _default_catalog() -> Catalog:
    return Catalog(
        [Chain(chain_id, name) for chain_id, name, _ in _DEFAULT_USDC] + [Chain(31337, "anvil")],
        [Token(chain_id, address, "USDC", 6) for chain_id, _, address in _DEFAULT_USDC],
    )


def _int(value: object) -> TypeGuard[int]:
    """An integer that is not a bool (YAML ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: object) -> bool:
    return _int(value) and value > 0


def _check(ok: bool, errors: list[FieldError], param: str, expected: str) -> bool:
    if not ok:
        errors.append(FieldError(param, "invalid_value", f"must be {expected}"))
    return ok


def _entries(
    data: Mapping[str, Any], key: str, errors: list[FieldError], *, required: bool
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The mappings in the list ``data[key]`` with their params; problems go to ``errors``
    as they are met, so the errors come out in document order."""
    if key not in data and not required:
        return
    value = data.get(key)
    if not isinstance(value, list):
        errors.append(FieldError(key, "invalid_type", "must be a list"))
        return
    for index, entry in enumerate(value):
        if isinstance(entry, Mapping):
            yield f"{key}.{index}", entry
        else:
            errors.append(FieldError(f"{key}.{index}", "invalid_type", "must be a mapping"))


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], at: str) -> list[FieldError]:
    prefix = f"{at}." if at else ""
    return [
        FieldError(f"{prefix}{key}", "unknown_field", f"is not one of {', '.join(sorted(allowed))}")
        for key in data
        if key not in allowed
    ]
