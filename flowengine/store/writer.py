"""Whose turn it is to write a SQLite file: this store's threads and processes queue here.

SQLite runs one write transaction at a time on a database, and a writer that finds the
lock taken waits in SQLite's busy handler, which sleeps 1, 2, 5, 10 … 100 ms between
tries. With several processes committing every millisecond, a waiter sleeps on long
after the lock is free: two processes sending one event per commit were slower
together than one alone. So flowengine's writers take turns here first: threads of a
process on a lock, processes on an advisory lock (``flock``) on a file beside the
database (``<file>-writer``), tried again within a millisecond at most. SQLite's own
lock still guards the data; another program writing the file meets it as before.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from ..errors import StoreError

try:
    import fcntl
except ImportError:  # not POSIX: the processes meet in SQLite's busy handler only
    fcntl = None  # type: ignore[assignment]

_FIRST_RETRY_S = 0.0001
_LAST_RETRY_S = 0.001


class WriterTurn:
    """The right to write ``database``, waited for at most ``timeout_s`` (the store's
    ``busy_timeout``): what a waiter gets in SQLite's busy handler, minus its sleeps."""

    def __init__(self, database: Path, timeout_s: float, where: str) -> None:
        self._path = Path(f"{database}-writer")
        self._timeout_s = timeout_s
        self._where = where
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + self._timeout_s
        if not self._threads.acquire(timeout=self._timeout_s):
            self._timed_out("this process's other writers")
        try:
            fd = self._file()
            if fd is not None:
                self._lock_file(fd, deadline)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _file(self) -> int | None:
        """The lock file, opened once per process: a forked child shares its parent's
        open file, and so its ``flock``; it opens its own."""
        if fcntl is None:
            return None
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def _lock_file(self, fd: int, deadline: float) -> None:
        delay = _FIRST_RETRY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                self._timed_out("another process")
            time.sleep(delay)
            delay = min(delay * 2, _LAST_RETRY_S)

    def _timed_out(self, holder: str) -> NoReturn:
        raise StoreError(
            f"store {self._where}: database is locked ({holder} held it for "
            f"busy_timeout, {self._timeout_s:g} s)"
        )
