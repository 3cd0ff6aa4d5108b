"""The registry of guard and effect names, and the entry-point group that extends it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowengine import FlowValidationError, Registry, compile_flow, load_flow
from flowengine.registry import ENTRY_POINT_GROUP, Facts, GuardContext, default_registry

FLOW = """\
flowengine: 1
name: vip_checkout
version: 1
states:
  created: {initial: true}
  fast_lane: {effect: acme.notify, outcomes: {done: completed}}
  completed: {final: true}
transitions:
  - {event: payment_detected, from: created, to: fast_lane, guards: is_vip}
  - {event: payment_detected, from: created, to: completed, unless: is_vip}
"""


def test_builtin_names() -> None:
    registry = Registry.default()
    assert set(registry.guards) >= {"amount_fixed", "has_calldata"}
    assert set(registry.effects) >= {"evm.deliver", "evm.settle", "evm.call", "evm.refund"}
    assert all(info.description for info in registry.effects.values())


@pytest.mark.parametrize(
    ("session", "fixed", "calldata"),
    [
        ({}, False, False),
        ({"destination": "0xabc"}, False, False),
        ({"destination": {"amountUnits": "25.00"}}, True, False),
        ({"destination": {"amountUnits": None, "calldata": "0x12"}}, False, True),
        ({"destination": {"calldata": ""}}, False, False),
    ],
)
def test_builtin_guards(session: dict[str, object], fixed: bool, calldata: bool) -> None:
    guards = Registry.default().guards
    assert guards["amount_fixed"].check(Facts(session=session)) is fixed
    assert guards["has_calldata"].check(Facts(session=session)) is calldata


def test_the_default_registry_is_built_once() -> None:
    assert default_registry() is default_registry()


def test_guard_decorator_takes_the_docstring_as_description() -> None:
    registry = Registry()

    @registry.guard("is_vip")
    def is_vip(ctx: GuardContext) -> bool:
        """The payer is on the merchant's VIP list."""
        return bool(ctx.session.get("metadata", {}).get("vip"))

    assert registry.guards["is_vip"].check is is_vip
    assert registry.guards["is_vip"].description == "The payer is on the merchant's VIP list."
    assert is_vip(Facts(session={"metadata": {"vip": True}}))


def test_copy_is_independent() -> None:
    base = Registry.default()
    extended = base.copy()
    extended.add_guard("is_vip", lambda ctx: True, "vip")
    extended.declare_effect("acme.notify", "tell acme")
    assert "is_vip" not in base.guards
    assert "acme.notify" not in base.effects


def vip_registry() -> Registry:
    registry = Registry.default().copy()
    registry.add_guard("is_vip", lambda ctx: bool(ctx.session.get("vip")), "a VIP payer")
    registry.declare_effect("acme.notify", "tell the merchant's CRM")
    return registry


def test_a_custom_guard_is_unknown_to_the_default_registry() -> None:
    with pytest.raises(FlowValidationError) as info:
        load_flow("vip.yaml", text=FLOW)
    messages = [p.message for p in info.value.problems]
    assert "unknown guard 'is_vip'" in messages
    assert "unknown effect 'acme.notify'" in messages


def test_a_custom_guard_and_effect_drive_a_compiled_flow() -> None:
    registry = vip_registry()
    spec = load_flow("vip.yaml", text=FLOW, registry=registry)
    flow = compile_flow(spec, registry)
    vip = flow.send("created", "payment_detected", session={"vip": True})
    assert vip.target == "fast_lane"
    assert [r.effect for r in vip.requests if r.kind == "effect"] == ["acme.notify"]
    assert flow.send("created", "payment_detected", session={}).target == "completed"


PLUGIN = """\
def register(registry):
    registry.add_guard("is_weekend", lambda ctx: bool(ctx.payload.get("weekend")), "weekend")
    registry.declare_effect("acme.notify", "tell the merchant's CRM")
"""


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real (tiny) installed distribution that declares a flowengine.adapters entry point."""
    (root / "acme_flow_plugin.py").write_text(PLUGIN)
    dist = root / "acme_flow_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-flow-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{ENTRY_POINT_GROUP}]
            acme = acme_flow_plugin:register
            """
        )
    )
    monkeypatch.syspath_prepend(str(root))


def test_entry_point_group_name() -> None:
    assert ENTRY_POINT_GROUP == "flowengine.adapters"


def test_an_installed_package_adds_names_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path, monkeypatch)
    registry = Registry.default()
    assert registry.guards["is_weekend"].description == "weekend"
    assert "acme.notify" in registry.effects
    # Built-ins are still there.
    assert "amount_fixed" in registry.guards

    text = FLOW.replace("is_vip", "is_weekend")
    spec = load_flow("weekend.yaml", text=text, registry=registry)
    flow = compile_flow(spec, registry)
    step = flow.send("created", "payment_detected", payload={"weekend": True})
    assert step.target == "fast_lane"


def test_without_the_plugin_its_names_are_unknown() -> None:
    assert "is_weekend" not in Registry.default().guards
