"""The flow language, as pydantic models: what a ``flows/*.yaml`` file may say.

These models check the *shape* of one document (types, required keys, names that are
well formed). Whether the document makes sense as a state chart (targets exist, every
state can finish, guards are known) is the job of :mod:`flowengine.spec.checks`, which
can see the whole flow at once and report every problem with its position.

Schema version 1 (``flowengine: 1``)::

    flowengine: 1
    name: deposit
    version: 3
    states:
      created: {initial: true, status: requires_payment_method,
                timers: [{at: expires_at, event: expire}]}
      paid:    {status: processing, effect: evm.deliver,
                outcomes: {done: completed, failed: refunding}}
      ...
    transitions:
      - {event: payment_detected, from: created, to: paid, guards: [amount_fixed]}
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ..durations import parse_duration, parse_poll_schedule
from .variance import desugar
from .yamlpos import Positions

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
EVENT_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
_EVENT = re.compile(EVENT_PATTERN)

#: The four ways an effect can end (see DESIGN: success or failure only on evidence).
#: An ``ok`` outcome reaches the flow as the event ``<effect>.done``.
OUTCOME_ARMS = ("done", "failed", "pending", "unknown")
OutcomeArm = Literal["done", "failed", "pending", "unknown"]


@dataclass(frozen=True)
class FlowSource:
    """The text a flow was loaded from, and where each of its keys sits."""

    file: str
    text: str
    positions: Positions


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _text(value: object) -> object:
    """``version: 2`` and ``version: "2"`` mean the same; keep it as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


StateName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
EventName = Annotated[str, Field(pattern=EVENT_PATTERN, max_length=128)]
Names = Annotated[
    list[StateName],
    BeforeValidator(_one_or_many, json_schema_input_type=StateName | list[StateName]),
]
OneOrMany = BeforeValidator(_one_or_many, json_schema_input_type=str | list[str])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TimerSpec(_Strict):
    """Send ``event`` to the session a while after it enters the state.

    ``after`` is a duration from entering the state; ``at: expires_at`` is the session's
    own expiry (``expiresIn`` at creation). Leaving the state cancels the timer.
    """

    event: EventName
    after: str | None = None
    at: Literal["expires_at"] | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_clock(self) -> TimerSpec:
        if (self.after is None) == (self.at is None):
            raise ValueError("a timer needs exactly one of 'after: <duration>' or 'at: expires_at'")
        return self

    @property
    def after_seconds(self) -> int | None:
        return parse_duration(self.after) if self.after is not None else None


class StateSpec(_Strict):
    """One state of the session lifecycle."""

    initial: bool = False
    final: bool = False
    label: str | None = Field(default=None, max_length=200)
    status: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="the status the API shows for a session here; defaults to the state name",
    )
    description: str | None = None
    effect: EventName | None = Field(
        default=None, description="an effect (adapter operation) requested on entering the state"
    )
    outcomes: dict[OutcomeArm, StateName] = Field(
        default_factory=dict,
        description="where the effect's outcome leads: done, failed, pending, unknown",
    )
    amount: Literal["held", "due", "excess"] | None = Field(
        default=None,
        description="what the effect moves, fixed in base units when it is requested: held "
        "(received − delivered − refunded), due (what is still owed to the merchant: held, "
        "at most amountUnits − delivered), excess (held − due); without it the adapter "
        "moves what the session holds",
    )
    poll: list[str] | None = Field(
        default=None,
        description="when the effect answers pending or unknown: when to ask its adapter "
        "again, e.g. ['10s×3', '1m×5', '10m×12']; once it runs out, the outcome event "
        "(<effect>.pending / .unknown) is sent, and without an arm for it the session is "
        "reported for review",
    )
    timers: list[TimerSpec] = Field(default_factory=list)
    emit: Annotated[list[EventName], OneOrMany] = Field(
        default_factory=list, description="webhook events sent on entering the state"
    )

    @field_validator("poll", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if value is not None:
            parse_poll_schedule(value)
        return [value] if isinstance(value, str) else value

    def poll_delays(self) -> list[int] | None:
        return parse_poll_schedule(self.poll) if self.poll is not None else None

    def status_name(self, state_name: str) -> str:
        return self.status or state_name


class TransitionSpec(_Strict):
    """``event`` moves a session from any of ``from`` to ``to`` when every guard holds."""

    event: EventName
    sources: Names = Field(alias="from", min_length=1)
    to: StateName
    guards: Annotated[list[str], OneOrMany] = Field(default_factory=list)
    unless: Annotated[list[str], OneOrMany] = Field(default_factory=list)
    effects: Annotated[list[EventName], OneOrMany] = Field(
        default_factory=list, description="effects requested when this transition is taken"
    )
    description: str | None = None
    origin: Literal["variance"] | None = Field(
        default=None,
        description="set on transitions a variance policy adds; they are tried first",
    )

    @property
    def condition(self) -> tuple[frozenset[str], frozenset[str]]:
        """The guard condition as a value, for comparing two transitions."""
        return frozenset(self.guards), frozenset(self.unless)

    def condition_text(self) -> str:
        parts = [*self.guards, *(f"not {name}" for name in self.unless)]
        return " and ".join(parts)


LateAction = Literal["review", "ignore", "refund"]


class VarianceSpec(_Strict):
    """How far the amount received may be from ``amountUnits`` and still count as paid.

    ``tolerance`` is a percentage of the amount (``"0.5%"``) or a number of the token's
    base units (``5000``: 0.005 USDC). The guards ``fully_paid``, ``underpaid`` and
    ``overpaid`` compare the total received, this payment included, with it.
    """

    tolerance: Annotated[str, BeforeValidator(_text)] = "0"
    underpaid: Literal["accept", "review", "refund_all", "wait_until_expiry"] = "accept"
    overpaid: Literal["accept", "review", "refund_all", "refund_difference"] = "accept"
    paid_late: Literal["review", "refund_all", "refund_difference", "accept"] = "review"
    review_state: StateName | None = None
    refund_state: StateName | None = None

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?%|\d+", value.strip()):
            raise ValueError(
                f"tolerance '{value}' must be a percentage ('0.5%') or whole base units (5000)"
            )
        return value.strip()

    def allowance(self, expected_units: int) -> int:
        """The tolerance in base units for an amount of ``expected_units`` (rounded down)."""
        if self.tolerance.endswith("%"):
            # Exact: Decimal arithmetic rounds at 28 digits, and token amounts have up
            # to 78 (a payment a base unit short could pass).
            return int(Fraction(self.tolerance[:-1]) * expected_units / 100)
        return int(self.tolerance)


class UpgradeSpec(_Strict):
    """How sessions started on older versions of this flow move to this one.

    ``from`` names the versions it takes over (``"1"``, ``[1, 2]`` or ``"*"`` for every
    older one); ``migrate`` maps their states to this version's. A session moves at its
    next event, and only when its state is mapped: an unmapped state keeps it pinned to
    its own version until it finishes.
    """

    versions: Annotated[
        list[str],
        BeforeValidator(
            lambda v: [_text(x) for x in _one_or_many(_text(v))],
            json_schema_input_type=str | int | list[str | int],
        ),
    ] = Field(alias="from", min_length=1)
    migrate: dict[StateName, StateName] = Field(min_length=1)

    def covers(self, version: str) -> bool:
        return "*" in self.versions or version in self.versions


class FlowSpec(_Strict):
    """A whole flow file."""

    @model_validator(mode="before")
    @classmethod
    def _desugar_variance(cls, data: object) -> object:
        return desugar(data)

    def in_precedence(self) -> list[tuple[int, TransitionSpec]]:
        """Transitions in the order the machine tries them: policy-added ones first."""
        indexed = list(enumerate(self.transitions))
        return sorted(indexed, key=lambda pair: pair[1].origin != "variance")

    _source: FlowSource | None = PrivateAttr(default=None)

    flowengine: Literal[1] = Field(description="the flow-language version; this is 1")
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
    version: Annotated[
        str,
        BeforeValidator(_text, json_schema_input_type=str | int),
        Field(min_length=1, max_length=40),
    ]
    description: str = ""
    states: dict[StateName, StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec] = Field(default_factory=list)
    variance: VarianceSpec = Field(
        default_factory=VarianceSpec,
        description="tolerance for the fully_paid / underpaid / overpaid guards",
    )
    on_late: dict[EventName, LateAction] = Field(
        default_factory=dict,
        description="what to do with an event that reaches a finished session: review "
        "(default; record it and tell the merchant), ignore (record it), refund (record it "
        "and give back exactly the units it brought)",
    )
    defer: Annotated[list[EventName], OneOrMany] = Field(
        default_factory=list,
        description="events that may arrive before the state can take them: recorded and "
        "offered again after each transition (at most 10 per session)",
    )
    upgrade: Literal["pinned"] | UpgradeSpec = Field(
        default="pinned",
        description="'pinned' (sessions finish on the version they started with) or "
        "{from: <versions>, migrate: {old_state: new_state}}",
    )

    @property
    def source(self) -> FlowSource | None:
        """Where the flow was loaded from (file, text, positions), when it came from a file."""
        return self._source

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the flow's canonical form: formatting and comments do not count.

        Defaults are left out, so a later flowengine that adds an optional key to the
        language does not change the hash (and so the identity) of existing flows.
        """
        canonical = json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def late_action(self, event: str) -> LateAction:
        """The ``on_late`` policy for ``event`` (``default:`` names the fallback)."""
        return self.on_late.get(event, self.on_late.get("default", "review"))

    @property
    def initial_state(self) -> str:
        return next(name for name, state in self.states.items() if state.initial)

    def outgoing(self, state: str) -> list[Edge]:
        return [edge for edge in self.edges() if edge.source == state]

    @cached_property
    def review_state(self) -> str | None:
        """Where a person takes over: ``variance.review_state``, else the first state
        whose status is ``requires_review``."""
        if self.variance.review_state is not None:
            return self.variance.review_state
        return next(
            (name for name, s in self.states.items() if s.status == "requires_review"), None
        )

    def arms(self, name: str) -> dict[str, tuple[str, bool]]:
        """Where each outcome of state ``name``'s effect leads: ``arm -> (target,
        is_default)``. The arms a flow leaves out for ``pending`` and ``unknown`` lead
        to its review state (once polling runs out; DESIGN: never silently failed), so
        flows stay short; without a review state they have no default."""
        state = self.states[name]
        if not state.effect:
            return {}
        found: dict[str, tuple[str, bool]] = {
            arm: (target, False) for arm, target in state.outcomes.items()
        }
        review = self.review_state
        if review is not None and review != name and review in self.states:
            for arm in ("pending", "unknown"):
                found.setdefault(arm, (review, True))
        return found

    def edges(self) -> list[Edge]:
        """Every way out of every state: transitions, effect outcomes and timers."""
        edges: list[Edge] = []
        for name, state in self.states.items():
            for arm, (target, default) in self.arms(name).items():
                edges.append(
                    Edge(
                        name,
                        target,
                        f"{state.effect}.{arm}",
                        kind="outcome",
                        effect=arm,
                        default=default,
                    )
                )
            for timer in state.timers:
                for index, transition in enumerate(self.transitions):
                    if transition.event == timer.event and name in transition.sources:
                        edges.append(
                            Edge(
                                name,
                                transition.to,
                                timer.event,
                                kind="timer",
                                guard=transition.condition_text(),
                                effects=tuple(transition.effects),
                                timer=timer.after or "expires_at",
                                index=index,
                            )
                        )
        timer_events = {
            (name, timer.event) for name, state in self.states.items() for timer in state.timers
        }
        for index, transition in enumerate(self.transitions):
            for source in transition.sources:
                if (source, transition.event) in timer_events:
                    continue
                edges.append(
                    Edge(
                        source,
                        transition.to,
                        transition.event,
                        kind="event",
                        guard=transition.condition_text(),
                        effects=tuple(transition.effects),
                        index=index,
                    )
                )
        return edges

    def events(self) -> list[str]:
        """Every event the flow reacts to, in first-seen order."""
        return list(dict.fromkeys(edge.event for edge in self.edges()))


@dataclass(frozen=True)
class Edge:
    """One arrow of the flow's graph (a derived view, used by checks, paths and diagrams)."""

    source: str
    target: str
    event: str
    kind: Literal["event", "outcome", "timer"]
    guard: str = ""
    effects: tuple[str, ...] = ()
    effect: str = ""
    timer: str = ""
    index: int = 0
    """For event and timer edges, the position of their transition in ``transitions``."""
    default: bool = False
    """An outcome arm the flow left out and the language supplies (see ``FlowSpec.arms``)."""

    def label(self) -> str:
        text = self.event
        if self.guard:
            text += f" [{self.guard}]"
        if self.effects:
            text += " / " + ", ".join(self.effects)
        return text


def is_event_name(text: str) -> bool:
    return bool(_EVENT.match(text))
