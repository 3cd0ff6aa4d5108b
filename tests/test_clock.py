"""The manual clock tests drive time with: exact milliseconds, never truncated."""

from flowengine.clock import ManualClock


def test_advancing_by_fractional_seconds_lands_on_the_nearest_millisecond() -> None:
    clock = ManualClock()
    start = clock.now_ms()
    clock.advance(1.005)  # 1004.999… ms as a float: truncating lost a millisecond
    clock.advance(ms=2)
    assert clock.now_ms() - start == 1_007
