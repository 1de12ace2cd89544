"""Where a run is: stage started, customers counted, stage finished, for whoever watches.

The command line watches in a terminal and draws one line per stage; scheduled runs and
piped output have no watcher, and then a report costs a list lookup. Standard library only.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class StageEvent:
    """A stage began (`state` "started"), counted (`done` so far, "counted"), or ended ("finished", "failed")."""

    stage: str
    state: str
    done: int | None = None
    unit: str = ""


_watchers: list[Callable[[StageEvent], None]] = []
_lock = threading.Lock()


@contextmanager
def watching(callback: Callable[[StageEvent], None]) -> Iterator[None]:
    """Send every stage event to `callback` while the block runs."""
    with _lock:
        _watchers.append(callback)
    try:
        yield
    finally:
        with _lock:
            _watchers.remove(callback)


def _emit(event: StageEvent) -> None:
    with _lock:  # a snapshot: a watcher may stop watching from another thread meanwhile
        watchers = tuple(_watchers)
    for callback in watchers:
        callback(event)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Report the block as one stage of the run."""
    _emit(StageEvent(name, "started"))
    try:
        yield
    except BaseException:
        _emit(StageEvent(name, "failed"))
        raise
    _emit(StageEvent(name, "finished"))


def staged(name: str | Callable[..., str]) -> Callable:
    """Decorator: the function's call is one stage; `name` may be a function of its arguments."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with stage(name(*args, **kwargs) if callable(name) else name):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def counted(name: str, done: int, unit: str = "customers") -> None:
    """Report how many units a stage has done so far."""
    _emit(StageEvent(name, "counted", done, unit))
