"""Durations in flow files: '30s', '15m', '1h30m', '2d'; a bare number is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowengine.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        (" 1h 30m ", 5400),
        ("90s", 90),
    ],
)
def test_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_a_bare_number_is_refused_with_the_fix() -> None:
    with pytest.raises(DurationError, match=r"'30' has no unit; write '30s' or '30m'"):
        parse_duration(30)


@pytest.mark.parametrize("text", ["30", "1.5h", "", "m", "-5m", "30 minutes", "1w", "h1"])
def test_text_that_is_not_a_duration(text: str) -> None:
    with pytest.raises(DurationError, match="is not a duration; use a number and a unit"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, 1.5, ["30s"]])
def test_a_value_that_is_not_text(value: object) -> None:
    with pytest.raises(DurationError, match="a duration must be text like '30m'"):
        parse_duration(value)


def test_zero_is_refused() -> None:
    with pytest.raises(DurationError, match="is zero"):
        parse_duration("0s")


def test_a_duration_error_is_a_value_error() -> None:
    # pydantic turns ValueError raised in a validator into a located problem.
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"), (90061, "1d1h1m1s")],
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_zero() -> None:
    # The only text format_duration gives that parse_duration refuses.
    assert format_duration(0) == "0s"


@given(st.integers(min_value=1, max_value=10**9))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(
    st.lists(
        # at most 4 × 9,000 days: within the 100 years a duration may span
        st.tuples(st.integers(min_value=0, max_value=9_000), st.sampled_from("smhd")),
        min_size=1,
        max_size=4,
    ).filter(lambda parts: any(n for n, _ in parts))
)
def test_parse_then_format_gives_the_canonical_text(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    seconds = parse_duration(text)
    assert seconds == sum(n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
    canonical = format_duration(seconds)
    assert parse_duration(canonical) == seconds
    assert format_duration(parse_duration(canonical)) == canonical


def test_a_duration_beyond_a_hundred_years_is_refused() -> None:
    # 999999999999999999d overflowed 64-bit milliseconds: SQLite and PostgreSQL failed
    # differently at run time, long after the flow had passed `validate`.
    assert parse_duration("36525d") == 36_525 * 86_400
    with pytest.raises(DurationError, match="longer than 100 years"):
        parse_duration("36526d")
    with pytest.raises(DurationError, match="longer than 100 years"):
        parse_duration("999999999999999999d")
