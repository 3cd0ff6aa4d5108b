"""Every way a session can go through a flow, from its initial state to a final one.

A flow is small enough that its *simple* paths (no state visited twice) can be listed
outright, the way model-based-testing tools generate test cases from a state chart: one
path per distinct sequence of arrows. The arrows are :meth:`FlowSpec.edges` — events,
effect outcomes and timers — and two transitions on the same event with different guards
are different arrows, so each guarded alternative gets paths of its own.

The result is used to review a flow (``flowengine paths``), to drive every path through
the compiled machine in the tests, and to pick a path to highlight in a diagram. This
module reads the spec only; it never runs the machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import FlowEngineError
from .spec import Edge, FlowSpec

#: Order of the arrows out of one state: what the payer or a person does, then what an
#: effect answers, then what a clock does. This puts the happy path first.
_KIND_ORDER = {"event": 0, "outcome": 1, "timer": 2}


@dataclass(frozen=True)
class FlowPath:
    """One walk from the initial state to a final state, as the edges it takes."""

    edges: tuple[Edge, ...]

    @property
    def states(self) -> tuple[str, ...]:
        """The states visited: the initial state, then each edge's target."""
        if not self.edges:
            return ()
        return (self.edges[0].source, *(edge.target for edge in self.edges))

    @property
    def events(self) -> tuple[str, ...]:
        """The events to send, in order, to walk this path."""
        return tuple(edge.event for edge in self.edges)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: the states visited and one entry per step."""
        return {
            "states": list(self.states),
            "events": list(self.events),
            "steps": [
                {
                    "event": edge.event,
                    "source": edge.source,
                    "target": edge.target,
                    "kind": edge.kind,
                    "guard": edge.guard,
                    "effects": list(edge.effects),
                    "timer": edge.timer,
                    "default": edge.default,
                }
                for edge in self.edges
            ],
        }


def all_paths(spec: FlowSpec, max_paths: int = 10_000) -> list[FlowPath]:
    """Every path from ``spec``'s initial state to a final state that visits no state
    twice, except that a self-loop (an event that keeps the state, such as a further
    partial payment) may be taken once: it is a transition like any other, and a path
    set that never takes it would leave it untested.

    The order is deterministic: a depth-first walk that tries, from each state, its
    events (in file order), then its effect outcomes (``done`` before ``failed`` as
    written), then its timers. Raises :class:`FlowEngineError` when there are more than
    ``max_paths`` paths, rather than running for ever on a densely connected flow.
    """
    outgoing: dict[str, list[Edge]] = {name: [] for name in spec.states}
    # A stable sort: within one kind, edges keep the order the flow file gives them.
    for edge in sorted(spec.edges(), key=lambda edge: _KIND_ORDER[edge.kind]):
        outgoing.setdefault(edge.source, []).append(edge)

    found: list[FlowPath] = []
    start = spec.initial_state
    # An explicit stack instead of recursion: a long flow must not hit the recursion limit.
    stack: list[tuple[tuple[Edge, ...], frozenset[str]]] = [((), frozenset({start}))]
    while stack:
        taken, visited = stack.pop()
        here = taken[-1].target if taken else start
        if spec.states[here].final:
            found.append(FlowPath(taken))
            if len(found) > max_paths:
                raise FlowEngineError(
                    f"flow '{spec.name}' has more than {max_paths} paths from "
                    f"'{start}' to a final state; pass a larger max_paths, or split the flow"
                )
            continue
        # Pushed in reverse so the first edge is walked first.
        for edge in reversed(outgoing.get(here, [])):
            self_loop_once = edge.target == here and edge not in taken
            if edge.target not in visited or self_loop_once:
                stack.append(((*taken, edge), visited | {edge.target}))
    return found


def format_paths(paths: Sequence[FlowPath]) -> str:
    """Paths as text, one numbered line each::

    1. created --select_amount [not amount_fixed]--> amount_selected --payment_detected--> paid
    """
    if not paths:
        return "no paths"
    width = len(str(len(paths)))
    lines = []
    for number, path in enumerate(paths, start=1):
        walk = path.states[0] + "".join(
            f" --{_step_text(edge)}--> {edge.target}" for edge in path.edges
        )
        lines.append(f"{number:>{width}}. {walk}")
    return "\n".join(lines)


def _step_text(edge: Edge) -> str:
    if edge.kind == "timer":
        return f"{edge.label()} ({timer_text(edge.timer)})"
    if edge.default:
        return f"{edge.label()} (default)"
    return edge.label()


def timer_text(timer: str) -> str:
    """``"30m"`` → ``"after 30m"``; ``"expires_at"`` → ``"at expiry"``."""
    return "at expiry" if timer == "expires_at" else f"after {timer}"
