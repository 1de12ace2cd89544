"""Start Prefect's local API on a thread while a run imports its libraries.

With no PREFECT_API_URL, Prefect starts a temporary API server in a subprocess at the first
flow call and waits for it (6-12 s, STACK.md). Started here first, that boot runs on the
other core while the main thread imports MLflow, LightGBM and the project, instead of after.
Prefect keeps one such server per process, so the flow call later finds it running.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def _start_subprocess_server() -> None:
    """Start (or find started) Prefect's per-process temporary API server."""
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().start()


def _api_url_configured() -> bool:
    """True when Prefect already has an API to talk to (a server, or a test harness's)."""
    from prefect.settings import PREFECT_API_URL

    # Read in this thread: a test harness sets it in a context the new thread would not see.
    return bool(os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value())


def start_local_api_early() -> Callable[[], None]:
    """Begin starting the local API; returns a function that waits until it is up.

    A failure here is only logged: the flow call starts the server again and reports the
    error in its own words.
    """
    if _api_url_configured():
        return lambda: None
    failure: list[BaseException] = []

    def start() -> None:
        try:
            _start_subprocess_server()
        except Exception as exc:  # noqa: BLE001 - reported by the flow call's own start
            failure.append(exc)

    thread = threading.Thread(target=start, name="prefect-local-api", daemon=True)
    thread.start()

    def wait_until_up() -> None:
        thread.join()
        if failure:
            log.warning("starting Prefect's local API early failed (%s); the flow will retry", failure[0])

    return wait_until_up
