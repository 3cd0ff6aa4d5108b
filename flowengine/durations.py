"""Human durations in flow files: ``30s``, ``15m``, ``1h30m``, ``2d``.

Timers and poll schedules are written for people, stored as whole seconds. A bare
number is refused on purpose: ``after: 30`` is ambiguous (seconds? minutes?), and a
payment that expires 60 times too early is an expensive misunderstanding.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"^(?:\d+[smhd])+$")


class DurationError(ValueError):
    pass


def parse_duration(text: object) -> int:
    """Seconds in ``text``; raises :class:`DurationError` with a fix-it message."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DurationError(f"a duration must be text like '30m', not {text!r}")
    if isinstance(text, int):
        raise DurationError(f"'{text}' has no unit; write '{text}s' or '{text}m'")
    compact = text.strip().replace(" ", "")
    if not _WHOLE.match(compact):
        raise DurationError(
            f"'{text}' is not a duration; use a number and a unit s, m, h or d, e.g. '90s', "
            "'30m', '1h30m'"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    if seconds <= 0:
        raise DurationError(f"'{text}' is zero; a timer needs a positive duration")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest text that :func:`parse_duration` reads back as ``seconds``."""
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
