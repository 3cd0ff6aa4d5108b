"""A percentage tolerance in base units, exactly: token amounts run to 78 digits."""

from flowengine.spec.models import VarianceSpec


def test_a_percentage_tolerance_is_exact_and_rounds_down_at_any_size() -> None:
    half_percent = VarianceSpec(tolerance="0.5%")
    assert half_percent.allowance(25_000_000) == 125_000
    # 28-digit decimal arithmetic rounded this up to 5 * 10**27: one base unit too many.
    assert half_percent.allowance(10**30 - 1) == 5 * 10**27 - 1
    assert VarianceSpec(tolerance="5000").allowance(10**30) == 5000
