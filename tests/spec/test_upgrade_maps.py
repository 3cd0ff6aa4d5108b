"""Upgrade maps (``upgrade: {from, migrate}``): five broken ones, each located and explained.

The new side of a map is checked whenever the flow loads; the old side needs the older
version (``check_upgrade(new, old)``), as ``flows check`` and ``flows deploy`` have it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowengine.errors import FlowValidationError, Problem
from flowengine.spec import check_upgrade, load_flow

BROKEN = Path(__file__).parent / "broken_upgrades"
V1 = Path(__file__).resolve().parents[2] / "flows" / "deposit.yaml"

CASES = [
    ("unknown_new_state.yaml", "79:11", "unknown state 'payd'", "did you mean 'paid'?"),
    ("unknown_old_state.yaml", "79:5", "version 1 has no state 'payed'", "did you mean 'paid'?"),
    (
        "final_to_live.yaml",
        "79:5",
        "'completed' is final in version 1 but 'delivered' is not final",
        "map final states to final states",
    ),
    ("self_upgrade.yaml", "76:9", "version 2 cannot upgrade from itself", "e.g. 'from: 1'"),
    ("typo_policy.yaml", "75:10", "unknown upgrade policy 'pined'", "did you mean 'pinned'?"),
]


def problems_of(file: Path) -> list[Problem]:
    try:
        new = load_flow(file)
    except FlowValidationError as exc:
        return list(exc.problems)
    return check_upgrade(new, load_flow(V1))


@pytest.mark.parametrize(("file", "where", "message", "hint"), CASES)
def test_a_broken_upgrade_map_is_located_and_explained(
    file: str, where: str, message: str, hint: str
) -> None:
    (problem,) = problems_of(BROKEN / file)
    assert problem.file.endswith(file)
    assert f"{problem.line}:{problem.column}" == where
    assert message in problem.message
    assert hint in problem.hint


def test_a_good_map_passes_both_sides() -> None:
    text = V1.read_text().replace("version: 1\n", "version: 2\n", 1) + (
        "\nupgrade:\n  from: '*'\n  migrate: {created: created, paid: paid, completed: completed}\n"
    )
    new = load_flow("v2.yaml", text=text)
    assert check_upgrade(new, load_flow(V1)) == []
    assert new.upgrade != "pinned"
    assert not isinstance(new.upgrade, str)
    assert new.upgrade.covers("1")
    assert new.upgrade.migrate["paid"] == "paid"


def test_pinned_is_the_default() -> None:
    assert load_flow(V1).upgrade == "pinned"


def test_an_explicit_default_does_not_change_a_flows_identity() -> None:
    # 'upgrade: pinned' is the default: writing it out is the same flow, same hash, so a
    # flowengine release that adds an optional key does not re-identify existing flows
    text = V1.read_text()
    assert load_flow("a.yaml", text=text + "\nupgrade: pinned\n").content_hash == (
        load_flow("b.yaml", text=text).content_hash
    )
