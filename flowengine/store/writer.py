"""Whose turn it is to write a SQLite file: this store's threads and processes queue here.

SQLite runs one write transaction at a time on a database, and a writer that finds the
lock taken waits in SQLite's busy handler, which sleeps 1, 2, 5, 10 … 100 ms between
tries. With several processes committing every millisecond, a waiter sleeps on long
after the lock is free: two processes sending one event per commit were slower
together than one alone. So flowengine's writers take turns here first: threads of a
process on a lock, processes on an advisory lock (``flock``) on a file beside the
database (``<file>-writer``), tried again within a millisecond at most. SQLite's own
lock still guards the data; another program writing the file meets it as before.

Whether writers have lately had to wait here is also what tells the engine to plan
its sends outside the lock (:attr:`WriterTurn.contended`, see
:mod:`flowengine.planning`): a process alone never waits and pays nothing for plans.

A forked child must not keep its parent's turn: it would hold the parent's ``flock``
as long as it lives (a parent killed mid-write would lock every writer out), and a
thread lock taken by one of the parent's threads would stay taken. So a child closes
its copy of the lock file and starts with a free thread lock (:mod:`flowengine.forks`).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from ..errors import StoreError
from ..forks import forget_in_children

try:
    import fcntl
except ImportError:  # not POSIX: the processes meet in SQLite's busy handler only
    fcntl = None  # type: ignore[assignment]

_FIRST_RETRY_S = 0.0001
_LAST_RETRY_S = 0.001
_WEIGHT = 0.1
"""Of the latest turn in the share of recent turns that had to wait (a moving average)."""
CONTENDED = 0.05
"""The share above which the writers count as contended: one turn in twenty waited."""


class WriterTurn:
    """The right to write ``database``, waited for at most ``timeout_s`` (the store's
    ``busy_timeout``): what a waiter gets in SQLite's busy handler, minus its sleeps."""

    def __init__(self, database: Path, timeout_s: float, where: str) -> None:
        self._path = Path(f"{database}-writer")
        self._timeout_s = timeout_s
        self._where = where
        self._database = database
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._waited = 0.0
        forget_in_children(self)

    @property
    def contended(self) -> bool:
        """Whether lately other writers, threads or processes, often held the turn
        when this store's writers came for it."""
        return self._waited > CONTENDED

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self._timeout_s
        waited = not self._threads.acquire(blocking=False)
        if waited and not self._threads.acquire(timeout=self._timeout_s):
            self._timed_out("this process's other writers")
        try:
            fd = self._file()
            if fd is not None:
                waited = self._lock_file(fd, deadline) or waited
            self._waited += _WEIGHT * (waited - self._waited)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        """Close the lock file (a transaction still running keeps its turn to the end)."""
        if self._threads.acquire(timeout=self._timeout_s):
            try:
                fd, self._fd = self._fd, None
                if fd is not None:
                    os.close(fd)
            finally:
                self._threads.release()

    def _file(self) -> int | None:
        """The lock file, opened at the first write, with the database file's mode as
        SQLite gives its ``-wal`` and ``-shm`` files (whoever may write the database
        may take the turn)."""
        if fcntl is None:
            return None
        if self._fd is None:
            try:
                mode = stat.S_IMODE(os.stat(self._database).st_mode)
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
                if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                    os.fchmod(fd, mode)  # the umask narrowed it
            except OSError as exc:
                raise StoreError(
                    f"store {self._where}: cannot open the writers' lock file {self._path}: "
                    f"{exc.strerror or exc}"
                ) from exc
            self._fd = fd
        return self._fd

    def _lock_file(self, fd: int, deadline: float) -> bool:
        """Take the file's lock; whether another process held it first."""
        delay = _FIRST_RETRY_S
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return waited
            except BlockingIOError:
                waited = True
            except OSError as exc:
                raise StoreError(
                    f"store {self._where}: cannot lock {self._path}: {exc.strerror or exc}"
                ) from exc
            if time.monotonic() >= deadline:
                self._timed_out("another process")
            time.sleep(delay)
            delay = min(delay * 2, _LAST_RETRY_S)

    def forget_parent(self) -> None:
        self._threads = threading.Lock()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # this copy only: the parent's flock stays the parent's

    def _timed_out(self, holder: str) -> NoReturn:
        raise StoreError(
            f"store {self._where}: database is locked ({holder} held it for "
            f"busy_timeout, {self._timeout_s:g} s)"
        )
