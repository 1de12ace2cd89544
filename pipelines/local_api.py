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
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Self

log = logging.getLogger(__name__)

# What Prefect's own temporary server sets: no UI, ephemeral services only.
_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
_DEFAULT_STARTUP_TIMEOUT_S = 90.0


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
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
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
