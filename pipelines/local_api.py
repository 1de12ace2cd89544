"""Start Prefect's local API server in a subprocess while a run imports its libraries.

With no API configured, Prefect starts a temporary API server in a subprocess at the first
flow call and waits for it (6-11 s). Prefect's own starter lives in
`prefect.server.api.server`, whose import alone costs ~7.5 CPU s in the calling process, on
top of the same import in the server process. Here the server process is launched directly,
so its boot runs on the other core while this process imports MLflow, LightGBM and the
project, and this process never imports the server code. The flow then talks to it through
`PREFECT_API_URL` set for the duration of the run. If anything goes wrong, Prefect's own
start takes over at the flow call and reports errors in its own words.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import Self

from pipelines.faults import check_sqlite_writable, sqlite_path

log = logging.getLogger(__name__)

# What Prefect's own temporary server sets: no UI, ephemeral services only.
_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
_DEFAULT_STARTUP_TIMEOUT_S = 90.0
# How long a run waits for another process to release Prefect's database before saying so.
PREFECT_DATABASE_WAIT_S = 15.0


def _api_url_configured() -> bool:
    """True when Prefect already has an API to talk to (a server, or a test harness's)."""
    from prefect.settings import PREFECT_API_URL

    return bool(os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _startup_timeout_s() -> float:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    return float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value() or _DEFAULT_STARTUP_TIMEOUT_S)


def server_command(port: int) -> list[str]:
    """The command Prefect runs for its temporary server (uvicorn on the API app factory)."""
    return [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]


class LocalApiServer(AbstractContextManager):
    """A temporary Prefect API server process; entering waits for it and points Prefect at it."""

    def __init__(self, command_for_port=server_command, startup_timeout_s: float | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._timeout_s = startup_timeout_s
        self._settings: ExitStack | None = None
        self.process: subprocess.Popen | None = subprocess.Popen(
            command_for_port(self.port), env={**os.environ, **_SERVER_ENV},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent(os.getpid()),
        )
        atexit.register(self.stop)

    def wait_until_up(self) -> bool:
        """Poll the health endpoint until it answers; False (and the process stopped) if it never does."""
        timeout_s = self._timeout_s if self._timeout_s is not None else _startup_timeout_s()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                log.warning("Prefect's local API on port %d exited with code %s before answering; "
                            "Prefect will start its own", self.port, code)
                self.stop()
                return False
            if self._healthy():
                return True
            time.sleep(0.1)
        log.warning("Prefect's local API on port %d did not answer within %.1f s; Prefect will start its own",
                    self.port, timeout_s)
        self.stop()
        return False

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def __enter__(self) -> Self:
        if self.wait_until_up():
            from prefect.settings import PREFECT_API_URL, temporary_settings

            self._settings = ExitStack()
            self._settings.enter_context(temporary_settings({PREFECT_API_URL: self.url}))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._settings is not None:
            self._settings.close()
            self._settings = None

    def stop(self) -> None:
        """Terminate the server process (at exit, after Prefect has flushed what it sends)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int):
    """A preexec_fn making the child get SIGKILL when this process dies (Linux; elsewhere a no-op).

    `stop` at exit covers normal ends and SIGTERM; a SIGKILL or the OOM killer runs no code in
    the parent, and the server (~220 MiB) stayed behind after every such death. The kernel sends
    the signal when the thread that started the child ends: the command line starts it from
    its main thread. SIGKILL because the server holds nothing worth shutting down for: SQLite
    keeps Prefect's database consistent through a kill.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the atexit stop is all there is
        return None

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)

    return set_death_signal


def prefect_database_path() -> Path | None:
    """The SQLite file of the local Prefect API (None when Prefect uses another database or server)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    return sqlite_path(text) if text else None


def check_prefect_database(wait_s: float = PREFECT_DATABASE_WAIT_S) -> None:
    """Refuse in one line, after a bounded wait, when Prefect's database is locked or unreadable.

    Otherwise the local API cannot start, and the run waited for it twice (this starter, then
    Prefect's own) before failing: nearly three minutes without a word.
    """
    if _api_url_configured():
        return
    path = prefect_database_path()
    if path is not None:
        check_sqlite_writable(path, "Prefect's database", wait_s,
                              f"if no other process needs it, move it aside (`mv {path} {path}.old`: it holds only "
                              "Prefect's run history); nothing was run")


def start_local_api_early() -> AbstractContextManager:
    """Begin starting the local API; entering the result waits for it and uses it for the flow.

    Nothing is started when an API is configured already. A failure here is only logged: the
    flow call starts Prefect's own server and reports the error in its own words.
    """
    if _api_url_configured():
        return nullcontext()
    try:
        return LocalApiServer()
    except OSError as exc:
        log.warning("could not start Prefect's local API early (%s); Prefect will start its own", exc)
        return nullcontext()
