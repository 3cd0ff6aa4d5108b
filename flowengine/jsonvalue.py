"""What an event may carry: plain JSON, so every store gives back what it was given.

Payloads and metadata come from callers and adapters and are stored as JSON. A value
JSON cannot hold exactly would come back changed from a SQL store but not from the
memory store — a ``Decimal`` or a ``datetime`` as a string, a NaN as null, an integer
key as a string — so tests on one store would pass while the other quietly turned an
amount into text. A string with a NUL character is refused by PostgreSQL where
SQLite and memory keep it. Such an event is refused before anything is written,
naming the field. Amounts are integers in base units (or decimal strings) anyway.
Tuples are taken, as the lists a store gives back (:func:`plain`), so a retried send
compares equal to what was logged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import FieldError

_NUL = "contains a NUL character (\\u0000) or a lone surrogate, which PostgreSQL cannot store"
_EXACT_FLOAT_LIMIT = 2.0**53
_HINT = "send integers (amounts in base units), strings, booleans, null, lists and objects"


def storable_text(text: str) -> bool:
    """Text every store keeps as given: no NUL character (PostgreSQL refuses it in text
    and jsonb) and valid UTF-8 (a lone surrogate cannot be encoded for a SQL store)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def plain(value: Any, param: str) -> tuple[Any, list[FieldError]]:
    """``value`` as a store gives it back (tuples become lists; the same object when
    there is none, the usual case), and each place in it that is not plain JSON, as a
    field error named from ``param``. One walk does both: it runs for every event."""
    errors: list[FieldError] = []
    return _walk(value, param, errors), errors


def _walk(value: Any, path: str, errors: list[FieldError]) -> Any:
    kind = type(value)
    if kind is str:
        if not storable_text(value):
            errors.append(FieldError(path, "not_json", _NUL))
        return value
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            errors.append(FieldError(path, "not_json", f"{value!r} is not a JSON number"))
        elif abs(value) >= _EXACT_FLOAT_LIMIT:
            # PostgreSQL's jsonb keeps 1e23 as the exact number and gives it back as an
            # integer, not equal to the float: a retried send would then conflict.
            errors.append(
                FieldError(
                    path,
                    "not_json",
                    f"{value!r} is too large for a float to be exact; send an integer",
                )
            )
        return value
    if isinstance(value, Mapping):
        pairs = {}
        for key, item in value.items():
            if type(key) is not str:
                errors.append(
                    FieldError(path, "not_json", f"key {key!r} is not a string; JSON keys are")
                )
                pairs[key] = item
            elif not storable_text(key):
                errors.append(FieldError(path, "not_json", f"key {key!r}: {_NUL}"))
                pairs[key] = item
            else:
                pairs[key] = _walk(item, f"{path}.{key}", errors)
        return value if all(pairs[k] is v for k, v in value.items()) else pairs
    if isinstance(value, list | tuple):
        items = [_walk(item, f"{path}[{index}]", errors) for index, item in enumerate(value)]
        unchanged = kind is list and all(a is b for a, b in zip(items, value, strict=True))
        return value if unchanged else items
    if not isinstance(value, str | int):  # a str or int subclass (an enum) is kept: its value
        errors.append(
            FieldError(path, "not_json", f"{kind.__name__} {value!r} is not a JSON value; {_HINT}")
        )
    return value
