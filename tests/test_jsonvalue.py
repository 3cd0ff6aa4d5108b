"""Plain JSON at the engine's door: what is refused, and what a store gives back."""

from __future__ import annotations

import enum
from decimal import Decimal
from types import MappingProxyType

from flowengine.jsonvalue import plain


class Chain(enum.IntEnum):
    BASE = 8453


def test_plain_json_passes_whole() -> None:
    value = {"units": 2**256 - 1, "hash": "0xab", "ok": True, "none": None, "rate": 1.5}
    assert plain({"a": [value, (1, 2)], "chain": Chain.BASE}, "payload")[1] == []
    assert plain(MappingProxyType({"a": 1}), "meta")[1] == []


def test_each_bad_place_is_named() -> None:
    _, errors = plain({"fee": Decimal("1"), "list": [1, float("nan")], "keys": {1: "x"}}, "payload")
    assert [(e.param, e.code) for e in errors] == [
        ("payload.fee", "not_json"),
        ("payload.list[1]", "not_json"),
        ("payload.keys", "not_json"),
    ]
    assert "integers (amounts in base units)" in errors[0].message


def test_tuples_become_lists_and_nothing_else_is_copied() -> None:
    value = {"a": [1, {"b": "c"}]}
    assert plain(value, "v")[0] is value
    assert plain({"a": (1, (2, 3)), "b": [4]}, "v")[0] == {"a": [1, [2, 3]], "b": [4]}


def test_a_nul_character_is_named_in_values_and_keys() -> None:
    # PostgreSQL cannot store one in text or jsonb; SQLite and memory can.
    _, errors = plain({"memo": "a\x00", "tags": ["ok", "\x00"], "k\x00": 1}, "payload")
    assert [e.param for e in errors] == ["payload.memo", "payload.tags[1]", "payload"]
    assert "NUL" in errors[0].message
