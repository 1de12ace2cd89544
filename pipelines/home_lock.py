"""One run per custscore home: an exclusive lock on a file in the home folder.

`fcntl.flock` locks belong to the open file: the OS drops them when the holder's process
ends however it ends (SIGKILL included), so a killed run never leaves a stale lock. The
file keeps the holder's pid and start time as text, for the error a second run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = "run.lock"

# A flow started inside a command that already holds the lock (the CLI takes it before Prefect
# boots, the flow takes it again for scheduled runs) must not wait on its own process.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


class RunInProgressError(RuntimeError):
    """Another process holds the home's run lock."""


def lock_path(home: Path) -> Path:
    return Path(home) / LOCK_FILE


def describe_holder(home: Path) -> str:
    """'another custscore run is in progress in HOME: pid N, started T' from the lock file's text."""
    try:
        holder = lock_path(home).read_text().strip() or "pid ?, started ?"
    except OSError:
        holder = "pid ?, started ?"
    return f"another custscore run is in progress in {home}: {holder}"


def _print_waiting(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def home_run_lock(home: Path, wait: bool = False,
                  on_wait: Callable[[str], None] = _print_waiting) -> Iterator[None]:
    """Hold the home's run lock for the block; refuse at once (or wait, printing one line) if another run holds it."""
    home = Path(home).resolve()
    with _held_guard:
        if _held.get(home):
            _held[home] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[home] -= 1
        return
    home.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path(home), "a+")  # noqa: SIM115 - the lock lives as long as this handle
    try:
        _acquire(handle, home, wait, on_wait)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        handle.flush()
        with _held_guard:
            _held[home] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(home, None)
            handle.seek(0)
            handle.truncate()
            handle.flush()
    finally:
        handle.close()  # closing the file releases the lock


def _acquire(handle, home: Path, wait: bool, on_wait: Callable[[str], None]) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        message = describe_holder(home)
    if not wait:
        raise RunInProgressError(message)
    on_wait(f"waiting: {message}")
    fcntl.flock(handle, fcntl.LOCK_EX)
