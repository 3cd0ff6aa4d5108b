"""Names a flow may use: guards (pure predicates) and effects (adapter operations).

A flow file never contains code. ``guards: [amount_fixed]`` and ``effect: evm.deliver``
are names looked up here, so a flow can be validated, drawn and diffed without running
anything, and a third-party package extends the vocabulary through the
``flowengine.adapters`` entry-point group (each entry point is a callable that receives
the registry and registers its names).

Guards are pure functions of the session's facts and the event's payload. Effects are
only *declared* here (name and meaning); the adapter that performs one is bound by the
effect runner, never inside a transition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

from . import amounts

ENTRY_POINT_GROUP = "flowengine.adapters"


class GuardContext(Protocol):
    """What a guard may look at: the session as its public resource, and the event payload."""

    @property
    def session(self) -> Mapping[str, Any]: ...

    @property
    def payload(self) -> Mapping[str, Any]: ...

    @property
    def tolerance(self) -> Callable[[int], int]:
        """The flow's variance tolerance, in base units, for an expected amount."""


@dataclass(frozen=True)
class Facts:
    """A plain :class:`GuardContext`, for evaluating guards outside a running machine."""

    session: Mapping[str, Any] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)
    tolerance: Callable[[int], int] = field(default=lambda expected: 0)


Guard = Callable[[GuardContext], bool]


@dataclass(frozen=True)
class GuardInfo:
    name: str
    check: Guard
    description: str


@dataclass(frozen=True)
class EffectInfo:
    name: str
    description: str


@dataclass
class Registry:
    """The guard and effect names known to one engine (or one validation run)."""

    guards: dict[str, GuardInfo] = field(default_factory=dict)
    effects: dict[str, EffectInfo] = field(default_factory=dict)
    compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Classes compiled against this registry, by flow content hash (see compiler)."""

    def guard(self, name: str, description: str = "") -> Callable[[Guard], Guard]:
        """Decorator registering ``fn`` as the guard called ``name``."""

        def register(fn: Guard) -> Guard:
            self.guards[name] = GuardInfo(name, fn, description or (fn.__doc__ or "").strip())
            self.compiled.clear()  # classes built before bound the old guard functions
            return fn

        return register

    def add_guard(self, name: str, check: Guard, description: str = "") -> None:
        self.guard(name, description)(check)

    def declare_effect(self, name: str, description: str) -> None:
        self.effects[name] = EffectInfo(name, description)
        self.compiled.clear()

    def copy(self) -> Registry:
        return Registry(dict(self.guards), dict(self.effects))

    @classmethod
    def default(cls) -> Registry:
        """The built-in names plus whatever installed packages add via entry points."""
        registry = cls()
        _register_builtins(registry)
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            entry_point.load()(registry)
        return registry


@cache
def default_registry() -> Registry:
    """The process-wide default registry, built once (entry points are loaded once)."""
    return Registry.default()


def _destination(session: Mapping[str, Any]) -> Mapping[str, Any]:
    destination = session.get("destination")
    return destination if isinstance(destination, Mapping) else {}


def _payment_position(ctx: GuardContext) -> int:
    """-1 underpaid, 0 paid within tolerance, +1 overpaid: the total received so far plus
    this event's ``units`` against ``amountUnits``, exact integers in base units."""
    expected = amounts.expected_units(ctx.session)
    if expected is None:
        return 0  # the payer chose the amount: whatever arrived is the amount
    moved = ctx.session.get("amounts", {})
    units = ctx.payload.get("units", 0)
    received = int(moved.get("received", 0)) + (units if isinstance(units, int) else 0)
    allowance = ctx.tolerance(expected)
    if received < expected - allowance:
        return -1
    return 1 if received > expected + allowance else 0


def _register_builtins(registry: Registry) -> None:
    registry.add_guard(
        "amount_fixed",
        lambda ctx: _destination(ctx.session).get("amountUnits") is not None,
        "the merchant fixed destination.amountUnits, so the payer does not choose an amount",
    )
    registry.add_guard(
        "has_calldata",
        lambda ctx: bool(_destination(ctx.session).get("calldata")),
        "destination.calldata is set: delivery is a contract call",
    )
    registry.add_guard(
        "has_received",
        lambda ctx: int(ctx.session.get("amounts", {}).get("received", 0)) > 0,
        "some funds have arrived (so an expiry must give them back)",
    )
    registry.add_guard(
        "fully_paid",
        lambda ctx: _payment_position(ctx) >= 0,
        "the total received, this payment included, reaches amountUnits (within tolerance)",
    )
    registry.add_guard(
        "underpaid",
        lambda ctx: _payment_position(ctx) < 0,
        "the total received is short of amountUnits by more than the tolerance",
    )
    registry.add_guard(
        "overpaid",
        lambda ctx: _payment_position(ctx) > 0,
        "the total received exceeds amountUnits by more than the tolerance",
    )
    for name, meaning in {
        "evm.deliver": "transfer the destination token to destination.address",
        "evm.settle": "wait until the delivery transaction has its confirmations",
        "evm.call": "approve the delivered amount to destination.address and call it with "
        "destination.calldata",
        "evm.refund": "send the received funds to refundAddress",
    }.items():
        registry.declare_effect(name, meaning)
