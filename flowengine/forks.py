"""What a forked child must not inherit from its parent's threads.

A child forked while one of the parent's threads held a lock, a connection or a turn
would wait for it forever, or use what the parent still uses (gunicorn's ``preload``,
``multiprocessing``'s fork start). Objects that hold such things register here, and
each child calls their ``forget_parent`` right after the fork, before anything runs.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForgetsParent(Protocol):
    def forget_parent(self) -> None:
        """Drop what belongs to the parent's threads; start afresh in this child."""


_HOLDERS: weakref.WeakSet[ForgetsParent] = weakref.WeakSet()


def forget_in_children(holder: ForgetsParent) -> None:
    """Have every child forked from now on call ``holder.forget_parent()``."""
    _HOLDERS.add(holder)


def _after_fork_in_child() -> None:
    for holder in list(_HOLDERS):
        holder.forget_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
