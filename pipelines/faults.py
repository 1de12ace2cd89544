"""Faults of the machine and its environment as one-line errors: a full disk, a locked or
unreadable database, credentials inside a URL, and which failures deserve a retry.

Each fault names what it touched (the file being written, the database) and what to do,
so the command line can print it as one line instead of a traceback or a hang.
"""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Credentials in URLs

# `scheme://user:password@host` (also `scheme:/user:password@host`, as pathlib shortens `//`).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*:/{1,3}[^/\s:@]*):(?P<secret>[^/\s]*)@")
# `https://token@host`: a user part without a password is a token as often as a name.
_URL_TOKEN = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<secret>[^/\s:@]+)@")
# `?password=...`, `;pwd=...` and the like in a query string or a connection string.
_SECRET_PARAMETER = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)=)(?P<secret>[^&;\s'\"]+)")
REDACTED = "***"


def redacted(text: str) -> str:
    """The text with the password of every URL (and password-like parameters) replaced by ***.

    Used on everything custscore shows or stores that may hold a data source or a tracking
    URI: error lines, log records, the run summary, Prefect's flow-run parameters.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    text = _URL_TOKEN.sub(lambda m: f"{m['head']}{REDACTED}@", text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['head']}{REDACTED}", text)


def redacted_value(value):
    """`redacted` applied to every string inside a JSON-like value (dicts, lists, strings)."""
    if isinstance(value, str):
        return redacted(value)
    if isinstance(value, dict):
        return {key: redacted_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted_value(item) for item in value]
    return value


def looks_like_url(text: str) -> bool:
    """`postgresql://...`, `s3://...`, `https://...`: not a local folder or file (Windows `C:\\` excluded)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+:/", text) is not None


# ---------------------------------------------------------------------------------------------
# A full disk


class DiskFullError(RuntimeError):
    """A write ran out of space (Errno 28). Not retried: waiting frees no disk."""


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from Python, or the same condition as DuckDB and Arrow word it."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "database or disk is full" in text  # the latter: SQLite


def free_bytes(path: Path) -> int | None:
    """Free space on the file system that holds `path` (or its nearest existing parent)."""
    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"  # pragma: no cover - the loop always returns


def disk_full_message(path: Path, what: str, after: str) -> str:
    return (f"disk full while writing {what} {path}: No space left on device (Errno 28), "
            f"{_size(free_bytes(path))} free there; free some space on that disk (or point CUSTSCORE_HOME or the "
            f"output at a larger one) and run again; {after}")


@contextlib.contextmanager
def writing(path: Path, what: str, after: str = "nothing was changed") -> Iterator[None]:
    """Turn a full disk inside the block into a DiskFullError naming `path` and its free space."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(disk_full_message(path, what, after)) from exc
        raise


# ---------------------------------------------------------------------------------------------
# Locked and unreadable SQLite databases (MLflow's mlflow.db, Prefect's prefect.db)


class DatabaseFaultError(RuntimeError):
    """A database custscore needs is locked by another process, or is not a readable database."""


_LOCKED = ("database is locked", "database table is locked")
_CORRUPT = ("file is not a database", "database disk image is malformed", "file is encrypted or is not a database")


def database_fault(exc: BaseException) -> str | None:
    """'locked', 'corrupt', 'full' or None, from SQLite's words (through SQLAlchemy or MLflow alike)."""
    text = str(exc).lower()
    if any(words in text for words in _LOCKED):
        return "locked"
    if "database or disk is full" in text:
        return "full"
    if any(words in text for words in _CORRUPT):
        return "corrupt"
    return None


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///...` (or `sqlite+driver:///...`) URI; None for other databases."""
    match = re.match(r"^sqlite(?:\+\w+)?:///(.+?)(?:\?.*)?$", uri)
    return Path(match.group(1)) if match else None


def mlflow_database_message(exc: BaseException, uri: str, waited_s: float | None = None) -> str | None:
    """One line for a locked or corrupt MLflow database (None for any other error)."""
    fault = database_fault(exc)
    if fault is None:
        return None
    where = sqlite_path(uri) or redacted(uri)
    if fault == "full":
        if isinstance(where, Path):
            return disk_full_message(where, "the MLflow database", "nothing was published")
        return f"MLflow database {where} is full: free space on its server and run again; nothing was published"
    if fault == "locked":
        waited = f" (still locked after {waited_s:.0f} s of retries)" if waited_s is not None else ""
        return (f"MLflow database {where} is locked by another process{waited}: wait for it to finish (another "
                f"custscore, `mlflow ui` or a script writing to it; `fuser {where}` names it) and run again; "
                "nothing was trained or published")
    return (f"MLflow database {where} is not a readable SQLite database ({_first_line(exc)}): restore it from a "
            f"backup, or move it aside (`mv {where} {where}.corrupt`) and start a new lineage with "
            "`custscore run --retrain` (a store with published runs is refused until then); nothing was trained or "
            "published")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def retry_while_locked(action: Callable[[], T], *, describe: Callable[[BaseException, float], str | None],
                       attempts: int = 3, pause_s: float = 2.0) -> T:
    """Run `action`, retrying a bounded number of times while its database is locked.

    Each attempt already waits for the lock (SQLite's busy timeout: 5 s while MLflow opens its
    store, 20 s per operation once open), so a command starting on a locked registry gives up
    after about attempts x (5 s + pause). A corrupt database is not retried.
    `describe(exc, waited_s)` turns the last failure into a DatabaseFaultError's message (None:
    the error is no database fault and is raised as it is).
    """
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            fault = database_fault(exc)
            if fault == "locked" and attempt < attempts:
                time.sleep(pause_s)
                continue
            message = describe(exc, time.monotonic() - started)
            if message is None:
                raise
            raise DatabaseFaultError(message) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def check_sqlite_writable(path: Path, name: str, wait_s: float, what_to_do: str) -> None:
    """Fail in one line when the SQLite file at `path` cannot take a write lock within `wait_s`.

    Nothing is written: the lock is taken and rolled back at once. A missing file is fine (it
    will be created).
    """
    if not path.exists():
        return
    try:
        con = sqlite3.connect(path, timeout=wait_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseFaultError(f"{name} {path} cannot be opened ({exc}); {what_to_do}") from exc
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        if database_fault(exc) == "locked":
            raise DatabaseFaultError(
                f"{name} {path} is locked by another process (still locked after {wait_s:.0f} s): wait for it "
                f"to finish (`fuser {path}` names it) and run again; {what_to_do}") from exc
        raise DatabaseFaultError(
            f"{name} {path} is not a readable SQLite database ({exc}): {what_to_do}") from exc
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# Which failures a retry can cure

_TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.EIO, errno.ETIMEDOUT,
                               errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EHOSTUNREACH,
                               errno.ENETUNREACH, errno.ENETDOWN, errno.ESTALE})


def is_transient(exc: BaseException) -> bool:
    """True only for failures that may pass on their own: network and I/O hiccups, a busy database.

    Input errors, a full disk, a missing or unreadable file or a corrupt database are
    deterministic: retrying only repeats the work and its side effects (a quarantine file
    written three times, 2 x 5 s of waiting before the same message).
    """
    if isinstance(exc, DiskFullError | DatabaseFaultError) or is_disk_full(exc):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNOS
    return database_fault(exc) == "locked"


def retry_only_transient(task, task_run, state) -> bool:
    """Prefect's `retry_condition_fn`: retry a failed task only when its exception is transient."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)
