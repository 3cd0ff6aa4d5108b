"""Concurrent sends share a commit: group commit without asking callers to batch.

A web server feeding the engine from many threads calls :meth:`Engine.send
<flowengine.engine.Engine.send>` once per request. Each send is one transaction, and
a transaction's fixed costs (SQLite's fsync at ``synchronous=FULL``, PostgreSQL's
commit and round trips) are paid once per event. ``send_many`` pays them once per
batch, but only a caller that holds several events can use it.

:class:`SendGroups` gives every caller the batch: the classic leader/follower group
commit. A send joins a queue; if no send is being committed, it leads: it takes up to
``max_batch`` queued sends (its own first) and applies them with one ``send_many``.
Sends that arrive meanwhile wait; when the leader's commit ends, each gets its own
result and the oldest waiting send leads the next batch. A send alone is a batch of
one, committed at once: no timer, no added latency, no background thread.

Each send's outcome is what it would have been alone: ``send_many`` reports a
refusal (not allowed, unknown session, a used event id) for that event only, and a
batch whose events raised while being applied (a bug in a guard) was rolled back, so
it is applied again one send per transaction and only the send that fails gets the
failure. A :class:`~flowengine.errors.StoreError` is never retried that way: it may
come from the commit itself, whose outcome is then unknown (applying the events again
could count a payment twice), and a failing store should not be asked 50 more times.
Every send of that batch gets the error, as it would have alone.

A caller interrupted while it waits (a signal's handler raised) takes its send back,
or hands the lead on, so the queue keeps moving. A handler that raises in the middle
of the queue's own bookkeeping can still leave it stalled, as with most of Python's
threading primitives; grouping is opt-in (``Engine(..., group_commit=50)``).

A send must not be made inside a store transaction of the caller's own (it would wait
for a leader that waits for that transaction); sends alone never supported it on the
SQL stores either. A forked child starts with an empty queue.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

from .errors import FlowEngineError, StoreError
from .events import EventInput, SendResult
from .forks import forget_in_children

Outcome = SendResult | FlowEngineError
SendBatch = Callable[[Sequence[EventInput]], list[Outcome]]


class _Send:
    """One queued send: its event, and how it ended once its batch is committed."""

    __slots__ = ("error", "item", "leads", "outcome", "wake")

    def __init__(self, item: EventInput) -> None:
        self.item = item
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.leads = False
        self.wake = threading.Event()
        """Set when the send is done, or when it is to lead the next batch."""

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.error is not None


class SendGroups:
    """Commit concurrent sends together, up to ``max_batch`` per transaction."""

    def __init__(self, send_batch: SendBatch, max_batch: int = 50) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self.max_batch = max_batch
        self._send_batch = send_batch
        self._lock = threading.Lock()
        self._queue: deque[_Send] = deque()
        self._leading = False
        """A batch is being committed (or about to be). While it is False the queue is
        empty: a leader that finds sends waiting hands over to the oldest one."""
        forget_in_children(self)

    def forget_parent(self) -> None:
        """In a forked child: the parent's leader and waiters are not here."""
        self._lock = threading.Lock()
        self._queue = deque()
        self._leading = False

    @property
    def waiting(self) -> int:
        """Sends queued for the next batch (the one being committed not counted)."""
        with self._lock:
            return len(self._queue)

    def send(self, item: EventInput) -> Outcome:
        """``item``'s outcome; a failure of the whole transaction is raised."""
        mine = _Send(item)
        try:
            with self._lock:
                self._queue.append(mine)
                if not self._leading:
                    mine.leads = True  # before _leading: see _abandon
                    self._leading = True
            if not mine.leads:
                mine.wake.wait()
            if not mine.done:  # woken (or started) to lead: its own send is in the batch
                self._lead()
        except BaseException:  # interrupted (a signal's handler raised) before its batch
            self._abandon(mine)
            raise
        if mine.error is not None:
            raise mine.error
        assert mine.outcome is not None
        return mine.outcome

    def _abandon(self, send: _Send) -> None:
        """Take back a send whose caller stopped waiting, unless a batch holds it already
        (then it is committed all the same, as a send interrupted during its commit
        may be). If it had just been chosen to lead, the next waiting send leads."""
        with self._lock:
            if send.done or send not in self._queue:
                return
            self._queue.remove(send)
            if send.leads:
                self._hand_on()

    def _lead(self) -> None:
        batch: list[_Send] = []
        try:
            with self._lock:
                take = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(take)]
            self._commit(batch)
        finally:
            for send in batch:
                if not send.done:  # the leader was interrupted (KeyboardInterrupt, ...)
                    send.error = StoreError(
                        "the commit this send shared was interrupted: it may or may not "
                        "have been committed; send it again with the same event_id to know"
                    )
                send.wake.set()
            with self._lock:
                self._hand_on()

    def _hand_on(self) -> None:
        """The lead passes to the oldest waiting send, or ends (the lock is held)."""
        if self._queue:
            self._queue[0].leads = True
            self._queue[0].wake.set()
        else:
            self._leading = False

    def _commit(self, batch: list[_Send]) -> None:
        try:
            outcomes = self._send_batch([send.item for send in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            if isinstance(exc, StoreError):
                for send in batch:  # an error each: they are raised in several threads
                    send.error = StoreError(str(exc))
                    send.error.__cause__ = exc
                return
            for send in batch:  # find the send that fails; the others commit alone
                self._commit([send])
            return
        for send, outcome in zip(batch, outcomes, strict=True):
            send.outcome = outcome
