"""What an event may carry: plain JSON, so every store gives back what it was given.

Payloads and metadata come from callers and adapters and are stored as JSON. A value
JSON cannot hold exactly would come back changed from a SQL store but not from the
memory store — a ``Decimal`` or a ``datetime`` as a string, a NaN as null, an integer
key as a string — so tests on one store would pass while the other quietly turned an
amount into text. Such an event is refused before anything is written, naming the
field. Amounts are integers in base units (or decimal strings) anyway. Tuples are
taken, as the lists a store gives back (:func:`as_stored`), so a retried send compares
equal to what was logged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import FieldError

_HINT = "send integers (amounts in base units), strings, booleans, null, lists and objects"


def json_errors(value: Any, param: str) -> list[FieldError]:
    """Each place in ``value`` that is not a plain JSON value, as a field error."""
    errors: list[FieldError] = []
    _walk(value, param, errors)
    return errors


def _walk(value: Any, path: str, errors: list[FieldError]) -> None:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return
    if kind is float:
        if not math.isfinite(value):
            errors.append(FieldError(path, "not_json", f"{value!r} is not a JSON number"))
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) is not str:
                errors.append(
                    FieldError(path, "not_json", f"key {key!r} is not a string; JSON keys are")
                )
            else:
                _walk(item, f"{path}.{key}", errors)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", errors)
        return
    if isinstance(value, str | int):  # a str or int subclass (an enum) is stored as its value
        return
    errors.append(
        FieldError(path, "not_json", f"{kind.__name__} {value!r} is not a JSON value; {_HINT}")
    )


def as_stored(value: Any) -> Any:
    """``value`` as a store gives it back: tuples become lists. The same object when
    there is no tuple in it (the usual case: no copy)."""
    if type(value) is tuple:
        return [as_stored(item) for item in value]
    if type(value) is list:
        items = [as_stored(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, Mapping):
        pairs = {key: as_stored(item) for key, item in value.items()}
        return value if all(pairs[k] is v for k, v in value.items()) else pairs
    return value
