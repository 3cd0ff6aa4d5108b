"""Variance policies as sugar: ``variance: {underpaid: review, …}`` → guarded transitions.

A merchant writes the policy in words; this module rewrites the raw flow document
before validation into ordinary transitions over the ``underpaid`` / ``overpaid`` /
``has_received`` guards (and an ``on_late`` entry for ``paid_late``), so everything
downstream (checks, compiler, diagrams, paths, replay, generated tests) sees plain
transitions and nothing has a second code path. Added transitions carry
``origin: variance`` and are tried before the flow's own for the same event and state.

The payment transitions a policy applies to are the flow's ``payment_detected``
transitions into a state whose effect delivers (``*.deliver`` or ``*.call``).

``overpaid: refund_difference`` is the one policy that adds a state: an overpayment
goes first to ``refunding_excess``, whose refund effect moves exactly the excess
(``amount: excess``, fixed in base units when requested), and from there to the
delivering state, which then delivers what is left: amountUnits. A failed excess
refund goes to review with the whole payment still held.
"""

from __future__ import annotations

from typing import Any

PAID_LATE = {
    "review": "review",
    "refund_all": "refund",
    # a payment to a finished session is all excess: its difference is all of it
    "refund_difference": "refund",
    "accept": "ignore",
}
EXCESS_STATE = "refunding_excess"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def roles(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The review state and the refund state a policy sends sessions to (see checks)."""
    variance = _mapping(data.get("variance"))
    states = {name: _mapping(state) for name, state in _mapping(data.get("states")).items()}
    review = variance.get("review_state") or next(
        (name for name, s in states.items() if s.get("status") == "requires_review"), None
    )
    refund = variance.get("refund_state") or next(
        (name for name, s in states.items() if str(s.get("effect", "")).endswith(".refund")),
        None,
    )
    return review, refund


def desugar(data: Any) -> Any:
    """``data`` with the variance policy's transitions added (a new dict; input untouched)."""
    if not isinstance(data, dict) or not isinstance(data.get("variance"), dict):
        return data
    variance: dict[str, Any] = data["variance"]
    states = _mapping(data.get("states"))
    found_transitions = data.get("transitions")
    transitions: list[Any] = found_transitions if isinstance(found_transitions, list) else []
    sources: list[str] = []
    targets: dict[str, list[str]] = {}  # delivering state -> the states paying into it
    for transition in transitions:
        if not isinstance(transition, dict) or transition.get("event") != "payment_detected":
            continue
        target = states.get(str(transition.get("to")))
        effect = str(target.get("effect", "")) if isinstance(target, dict) else ""
        if effect.endswith((".deliver", ".call")):
            found = transition.get("from")
            for source in [found] if isinstance(found, str) else found or []:
                if isinstance(source, str) and source not in sources:
                    sources.append(source)
                if isinstance(source, str):
                    targets.setdefault(str(transition.get("to")), []).append(source)
    review, refund = roles(data)
    added: list[dict[str, Any]] = []
    added_states: dict[str, Any] = {}

    def route(guard: str, action: Any) -> None:
        destination = {"review": review, "refund_all": refund}.get(str(action))
        if destination and sources:
            added.append(_transition("payment_detected", sources, destination, guard, action))
        if action == "wait_until_expiry" and sources and refund:
            for source in sources:
                added.append(_transition("payment_detected", [source], source, guard, action))
            added.append(_transition("expire", sources, refund, "has_received", action))

    def refund_excess_then_deliver() -> None:
        refund_effect = _mapping(states.get(refund)).get("effect") if refund else None
        if not (refund_effect and review):
            return  # the checker names the missing role state
        for target, paying in targets.items():
            name = EXCESS_STATE if len(targets) == 1 else f"{EXCESS_STATE}_for_{target}"
            added_states[name] = {
                "label": "Overpaid, refunding the excess",
                "description": "variance policy: overpaid → refund_difference",
                "effect": refund_effect,
                "amount": "excess",
                "outcomes": {"done": target, "failed": review},
            }
            added.append(
                _transition("payment_detected", paying, name, "overpaid", "refund_difference")
            )

    route("underpaid", variance.get("underpaid", "accept"))
    overpaid = variance.get("overpaid", "accept")
    if overpaid == "refund_difference":
        refund_excess_then_deliver()
    else:
        route("overpaid", overpaid)
    late = PAID_LATE.get(str(variance.get("paid_late", "review")))
    result = dict(data)
    if added_states:
        result["states"] = {**states, **added_states}
    if added:
        result["transitions"] = [*transitions, *added]
    if late and "paid_late" in variance:
        result["on_late"] = {**_mapping(data.get("on_late")), "payment_detected": late}
    return result


def _transition(event: str, sources: list[str], to: str, guard: str, action: Any) -> dict[str, Any]:
    return {
        "event": event,
        "from": list(sources),
        "to": to,
        "guards": [guard],
        "origin": "variance",
        "description": f"variance policy: {guard} → {action}",
    }
