"""A real store with a hook between an engine's plan and its commit (flowengine.planning).

An optimistic engine plans each send outside the write lock, then commits it under the
lock if the session did not change meanwhile. This wrapper lets "another sender"
commit at exactly that moment, between the plan and its commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from flowengine.store import Store, Transaction


class CommitsInBetween:
    """A real store whose first write transaction after a plan (a ``reading()``) runs
    ``meanwhile`` before it opens: what another sender commits after a plan was made
    and before it is committed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url
        self.plan_sends = True
        self.readings = 0
        """How many read transactions (plans) were opened."""
        self.meanwhile: list[Callable[[], object]] = []
        self._planned = False

    def reading(self) -> AbstractContextManager[Transaction]:
        self.readings += 1
        self._planned = True
        return self.store.reading()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        if self._planned:  # the first write transaction after a plan: its commit
            self._planned = False
            while self.meanwhile:
                self.meanwhile.pop(0)()
        with self.store.transaction() as tx:
            yield tx

    def close(self) -> None:
        self.store.close()
