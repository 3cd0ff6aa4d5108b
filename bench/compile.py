"""What the flow language costs on top of python-statemachine.

(a) A generated 200-state flow (a chain with guarded branches, timers, transition
    effects and effects with outcomes): median time of load + static checks
    (``load_flow(name, text=...)``) and of compilation (``compile_flow`` with the class
    cache cleared), each beside its baseline: PyYAML's ``safe_load`` of the same text, and
    the time spent inside python-statemachine's own class factory.
(b) The deposit flow (flows/deposit.yaml) driven through whole lifecycles, compiled
    versus a hand-written ``StateChart`` with the same states, transitions, guards and
    entry actions, both driven the same two ways: one live machine per session, and the
    engine's restore-then-send (``CompiledFlow.send(state, event, session=...)``).

Run: ``.venv/bin/python bench/compile.py`` (about 30 s).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from statemachine import Event, State, StateChart

import flowengine.compiler as compiler
from flowengine import compile_flow, load_flow
from flowengine.compiler import (
    CompiledFlow,
    EffectRequest,
    MachineContext,
    TimerRequest,
    WebhookRequest,
)
from flowengine.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 15
#: The python-statemachine class factory as the compiler imported it (timed in (a)).
FACTORY = "create_machine_class_from_definition"


def median_ms(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


# --- (a) a 200-state flow ----------------------------------------------------------------

SHARED = """\
  refunding:
    effect: evm.refund
    outcomes: {done: bounced, failed: review}
  review:
    status: requires_review
    emit: session.requires_review
  completed: {final: true, emit: session.succeeded}
  bounced: {final: true, emit: session.bounced}
  expired: {final: true, emit: session.expired}
"""
SHARED_STATES = 5


def big_flow(states: int = 200) -> str:
    """A valid flow of ``states`` states: a chain s0 … sN with four kinds of step."""
    chain = states - SHARED_STATES
    names = [f"s{i}" for i in range(chain)] + ["completed"]
    lines = ["flowengine: 1", "name: big", "version: 1", "states:"]
    transitions = [
        "  - {event: resolve_completed, from: review, to: completed}",
        "  - {event: resolve_bounced, from: review, to: bounced}",
    ]
    for i in range(chain):
        here, nxt = names[i], names[i + 1]
        skip = names[min(i + 2, chain)]
        initial = "initial: true, " if i == 0 else ""
        kind = i % 4
        if kind == 0:  # waiting for the payer, with an expiry timer
            lines.append(
                f"  {here}: {{{initial}label: Step {i}, "
                f"timers: [{{after: {i % 59 + 1}m, event: expire}}]}}"
            )
            transitions.append(f"  - {{event: advance, from: {here}, to: {nxt}}}")
            transitions.append(f"  - {{event: expire, from: {here}, to: expired}}")
        elif kind == 1:  # an effect with its outcomes
            lines.append(
                f"  {here}: {{{initial}effect: evm.deliver, emit: session.processing, "
                f"outcomes: {{done: {nxt}, failed: refunding, unknown: review}}}}"
            )
        elif kind == 2:  # a guarded branch that may skip the next step
            lines.append(f"  {here}: {{{initial}status: processing}}")
            transitions.append(
                f"  - {{event: route, from: {here}, to: {skip}, guards: has_calldata}}"
            )
            transitions.append(
                f"  - {{event: route, from: {here}, to: {nxt}, unless: has_calldata}}"
            )
        else:  # an event whose transition requests effects
            lines.append(f"  {here}: {{{initial}label: Confirming {i}}}")
            transitions.append(
                f"  - {{event: confirm, from: {here}, to: {nxt}, guards: [amount_fixed], "
                "effects: [evm.settle, evm.call]}"
            )
            transitions.append(f"  - {{event: confirm, from: {here}, to: refunding}}")
    return "\n".join(lines) + "\n" + SHARED + "transitions:\n" + "\n".join(transitions) + "\n"


def bench_big_flow() -> list[tuple[str, float, str, float]]:
    text = big_flow()
    spec = load_flow("big.yaml", text=text)
    assert len(spec.states) == 200, len(spec.states)
    print(
        f"generated flow: {len(spec.states)} states, {len(spec.transitions)} transitions, "
        f"{len(spec.edges())} edges, {len(text.splitlines())} lines"
    )

    load_ms = median_ms(lambda: load_flow("big.yaml", text=text))
    yaml_ms = median_ms(lambda: yaml.safe_load(text))

    factory_times: list[float] = []
    real_factory = getattr(compiler, FACTORY)

    def timed_factory(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real_factory(*args, **kwargs)
        finally:
            factory_times.append(time.perf_counter() - start)

    registry = default_registry()

    def compile_cold() -> None:
        registry.compiled.clear()
        compile_flow(spec, registry)

    setattr(compiler, FACTORY, timed_factory)
    try:
        compile_ms = median_ms(compile_cold)
    finally:
        setattr(compiler, FACTORY, real_factory)
    factory_ms = statistics.median(factory_times) * 1000

    warm_us = median_ms(lambda: compile_flow(spec), repeats=200) * 1000
    return [
        ("load + check (load_flow)", load_ms, "yaml.safe_load of the same text", yaml_ms),
        ("compile, cache cleared", compile_ms, "inside python-statemachine's factory", factory_ms),
        ("compile, cached (µs)", warm_us, "", 0.0),
    ]


# --- (b) the deposit flow, compiled versus hand-written ----------------------------------


def _fixed(model: MachineContext) -> bool:
    destination = model.session.get("destination")
    return isinstance(destination, Mapping) and destination.get("amountUnits") is not None


class HandDeposit(StateChart[MachineContext]):
    """flows/deposit.yaml written by hand, recording the same requests on the same model."""

    allow_event_without_transition = False
    catch_errors_as_events = False

    created = State("Waiting for the payer", initial=True, value="created")
    amount_selected = State("Amount chosen, waiting for funds", value="amount_selected")
    paid = State("Paid, delivering", value="paid")
    delivered = State("Delivered, confirming", value="delivered")
    refunding = State("Delivery reverted, refunding", value="refunding")
    review = State("Needs a person", value="review")
    completed = State("Completed", final=True, value="completed")
    bounced = State("Refunded", final=True, value="bounced")
    expired = State("Expired unpaid", final=True, value="expired")

    select_amount = created.to(amount_selected, unless="amount_fixed")
    payment_detected = created.to(paid, cond="amount_fixed") | amount_selected.to(paid)
    expire = created.to(expired) | amount_selected.to(expired)
    resolve_completed = review.to(completed)
    resolve_bounced = review.to(bounced)
    deliver_done = Event(paid.to(delivered), id="evm.deliver.done")
    deliver_failed = Event(paid.to(refunding), id="evm.deliver.failed")
    settle_done = Event(delivered.to(completed), id="evm.settle.done")
    settle_failed = Event(delivered.to(review), id="evm.settle.failed")
    refund_done = Event(refunding.to(bounced), id="evm.refund.done")
    refund_failed = Event(refunding.to(review), id="evm.refund.failed")

    def amount_fixed(self) -> bool:
        return _fixed(self.model)

    def on_enter_created(self) -> None:
        self.model.requests.append(TimerRequest("expire", "created", at="expires_at"))

    def on_enter_amount_selected(self) -> None:
        self.model.requests.append(TimerRequest("expire", "amount_selected", at="expires_at"))

    def on_enter_paid(self) -> None:
        self.model.requests.append(EffectRequest("evm.deliver", "paid"))
        self.model.requests.append(WebhookRequest("session.processing", "paid"))

    def on_enter_delivered(self) -> None:
        self.model.requests.append(EffectRequest("evm.settle", "delivered"))

    def on_enter_refunding(self) -> None:
        self.model.requests.append(EffectRequest("evm.refund", "refunding"))

    def on_enter_review(self) -> None:
        self.model.requests.append(WebhookRequest("session.requires_review", "review"))

    def on_enter_completed(self) -> None:
        self.model.requests.append(WebhookRequest("session.succeeded", "completed"))

    def on_enter_bounced(self) -> None:
        self.model.requests.append(WebhookRequest("session.bounced", "bounced"))

    def on_enter_expired(self) -> None:
        self.model.requests.append(WebhookRequest("session.expired", "expired"))


#: Two lifecycles per round: the payer chooses the amount and it completes (4 events);
#: the merchant fixed the amount and the delivery bounces (3 events).
LIFECYCLES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({}, ("select_amount", "payment_detected", "evm.deliver.done", "evm.settle.done")),
    (
        {"destination": {"amountUnits": "25.00"}},
        ("payment_detected", "evm.deliver.failed", "evm.refund.done"),
    ),
]
EVENTS_PER_ROUND = sum(len(events) for _, events in LIFECYCLES)


def live(machine_class: type[StateChart[Any]]) -> list[tuple[str, tuple[Any, ...]]]:
    """One live machine per session, fed every event of its lifecycle."""
    trail = []
    for session, events in LIFECYCLES:
        model = MachineContext(session=session)
        machine = machine_class(model=model)
        for event in events:
            machine.send(event)
        trail.append((str(model.state), tuple(model.requests)))
    return trail


def live_sends_only(machine_class: type[StateChart[Any]]) -> float:
    """Like :func:`live`, but only the time spent in ``send`` (not building the machine)."""
    spent = 0.0
    for session, events in LIFECYCLES:
        machine = machine_class(model=MachineContext(session=session))
        start = time.perf_counter()
        for event in events:
            machine.send(event)
        spent += time.perf_counter() - start
    return spent


def restored(flow: CompiledFlow) -> list[tuple[str, tuple[Any, ...]]]:
    """The engine's way: start, then restore at the stored state for every event."""
    trail = []
    for session, events in LIFECYCLES:
        step = flow.start(session)
        requests = list(step.requests)
        state = step.target
        for event in events:
            step = flow.send(state, event, session=session)
            requests.extend(step.requests)
            state = step.target
        trail.append((state, tuple(requests)))
    return trail


def rate(run: Callable[[], object], rounds: int) -> float:
    """Transitions per second; ``run`` may return the seconds to count (else all are)."""
    spent = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        counted = run()
        spent += counted if isinstance(counted, float) else time.perf_counter() - start
    return rounds * EVENTS_PER_ROUND / spent


def bench_deposit() -> list[tuple[str, float, float]]:
    compiled = compile_flow(load_flow(ROOT / "flows" / "deposit.yaml"))
    # The same driver (CompiledFlow.start/send) around the hand-written class.
    hand = CompiledFlow(compiled.spec, HandDeposit)

    # Same behaviour first: same end states, same requests in the same order.
    assert live(compiled.machine_class) == live(HandDeposit) == restored(compiled)
    assert restored(hand) == restored(compiled)
    assert [state for state, _ in restored(compiled)] == ["completed", "bounced"]

    ways: dict[str, tuple[Callable[[], object], Callable[[], object], int]] = {
        "live machine": (lambda: live(compiled.machine_class), lambda: live(HandDeposit), 400),
        "  sends only": (
            lambda: live_sends_only(compiled.machine_class),
            lambda: live_sends_only(HandDeposit),
            400,
        ),
        "restore + send": (lambda: restored(compiled), lambda: restored(hand), 200),
    }
    rows = []
    for way, (run_compiled, run_hand, rounds) in ways.items():
        compiled_rates, hand_rates = [], []
        for _ in range(7):  # interleaved, so drift hits both alike
            gc.collect()
            compiled_rates.append(rate(run_compiled, rounds))
            gc.collect()
            hand_rates.append(rate(run_hand, rounds))
        rows.append((way, statistics.median(compiled_rates), statistics.median(hand_rates)))
    return rows


def main() -> int:
    began = time.perf_counter()
    print(f"Python {sys.version.split()[0]}")
    print("\n(a) a generated 200-state flow, medians of", REPEATS, "runs")
    for what, ms, baseline, baseline_ms in bench_big_flow():
        unit = "µs" if "(µs)" in what else "ms"
        line = f"  {what:<28} {ms:9.2f} {unit}"
        if baseline:
            line += f"   baseline: {baseline} {baseline_ms:.2f} ms"
        print(line)

    print("\n(b) flows/deposit.yaml, transitions/s (medians of 7 interleaved runs)")
    print(f"  {'driven by':<16} {'compiled':>10} {'hand-written':>13} {'time ratio':>11}")
    for way, compiled_rate, hand_rate in bench_deposit():
        print(
            f"  {way:<16} {compiled_rate:10,.0f} {hand_rate:13,.0f} "
            f"{hand_rate / compiled_rate:10.2f}×"
        )
    print("  (time ratio = compiled time per transition / hand-written; aim ≤ 1.10×)")
    print(f"\ntotal {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
