"""Human durations in flow files: ``30s``, ``15m``, ``1h30m``, ``2d``.

Timers and poll schedules are written for people, stored as whole seconds. A bare
number is refused on purpose: ``after: 30`` is ambiguous (seconds? minutes?), and a
payment that expires 60 times too early is an expensive misunderstanding.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 36_525 * 86_400
"""100 years: the longest timer a flow may ask for."""
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
    if seconds > MAX_SECONDS:
        raise DurationError(
            f"'{text}' is longer than 100 years ({format_duration(MAX_SECONDS)}); a due "
            "time that far out is a typo, and past 64-bit milliseconds no store keeps it"
        )
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


_STEP = re.compile(r"^\s*(?P<every>[0-9smhd ]+?)\s*(?:[×x*]\s*(?P<times>\d+))?\s*$")


def parse_poll_schedule(steps: object) -> list[int]:
    """``["10s×3", "1m×5"]`` → the delays in seconds before each look: [10, 10, 10, 60, …].

    ``x`` and ``*`` are accepted for ``×``; a step without a count is taken once.
    """
    if isinstance(steps, str):
        steps = [steps]
    if not isinstance(steps, list) or not steps:
        raise DurationError("a poll schedule is a list like ['10s×3', '1m×5', '10m×12']")
    delays: list[int] = []
    for step in steps:
        match = _STEP.match(str(step))
        if match is None:
            raise DurationError(f"'{step}' is not a poll step; write e.g. '10s×3' or '1m'")
        every = parse_duration(match["every"].strip())
        times = int(match["times"] or 1)
        if not 1 <= times <= 1000:
            raise DurationError(f"'{step}': a step repeats 1 to 1000 times")
        delays.extend([every] * times)
    return delays
