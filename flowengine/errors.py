"""The exceptions flowengine raises, all under one base class.

Callers embedding the library catch :class:`FlowEngineError`; the CLI and the HTTP
layer map each leaf to a user-facing message in one place. Every leaf carries the
facts a person needs to act (the file and line, the session and its state, the
allowed events), not just a sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class FlowEngineError(Exception):
    """Base class of every error flowengine raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a flow file, located precisely and with a way to fix it."""

    file: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class FlowValidationError(FlowEngineError):
    """A flow file has one or more mistakes; all of them are listed, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems))
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in flow"
        super().__init__(header + ":\n" + "\n".join(str(p) for p in self.problems))

    @property
    def first(self) -> Problem:
        return self.problems[0]


class TransitionNotAllowed(FlowEngineError):
    """An event that the session's current state does not accept; nothing was written."""

    def __init__(
        self, event: str, state: str, allowed: Sequence[str], session_id: str | None = None
    ) -> None:
        self.event = event
        self.state = state
        self.allowed = tuple(allowed)
        self.session_id = session_id
        who = f"session {session_id} " if session_id else ""
        options = ", ".join(self.allowed) if self.allowed else "none"
        super().__init__(
            f"{who}in state '{state}' does not accept event '{event}' now; "
            f"events this state accepts (subject to their guards): {options}"
        )


class FlowVersionConflict(FlowEngineError):
    """Two different flow texts claim the same name and ``version:``."""

    def __init__(self, name: str, version: str, known_hash: str, new_hash: str) -> None:
        super().__init__(
            f"flow {name} version {version} has changed (content hash {new_hash[:12]}, "
            f"but version {version} is {known_hash[:12]}): a changed flow needs a new "
            "'version:' so sessions already running on the old one keep it"
        )


class SessionNotFound(FlowEngineError):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"no session with id {session_id!r}")


class IdempotencyConflict(FlowEngineError):
    """The same idempotency key (event id) was reused for a different request."""


class StoreError(FlowEngineError):
    """The store could not be opened or used (bad URL, unreachable database)."""


class StoreConflict(StoreError, KeyError):
    """A write broke a uniqueness or reference rule: a duplicate event id, external ref,
    effect key or session id, or a row for a session that does not exist.

    Every store raises it for the same writes (it is also a :class:`KeyError`). On
    PostgreSQL the transaction is spoiled: let the exception leave the
    ``with store.transaction()`` block.
    """


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request: ``param`` is its dotted path (``destination.address``)."""

    param: str
    code: str
    message: str


class ValidationError(FlowEngineError):
    """A request (e.g. create-session) has invalid fields; each one is listed, nothing written."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(f"{e.param}: {e.message}" for e in self.errors))
