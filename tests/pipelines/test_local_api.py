"""The early start of Prefect's local API: used only when needed, never fatal."""

from __future__ import annotations

import logging
import sys
import urllib.request

import pytest
from prefect.settings import PREFECT_API_URL

from pipelines import local_api


def test_no_server_is_started_when_an_api_is_configured(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    started = []
    monkeypatch.setattr(local_api, "LocalApiServer", lambda: started.append(1))
    with local_api.start_local_api_early() as started_api:
        assert started_api is None  # a null context: nothing to wait for, no setting changed
    assert started == []


@pytest.mark.usefixtures("prefect_harness")
def test_the_test_harness_api_counts_as_configured(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert local_api._api_url_configured()


def test_the_started_server_answers_and_is_used_only_inside_the_block():
    before = PREFECT_API_URL.value()
    server = local_api.LocalApiServer(startup_timeout_s=120)
    try:
        with server:
            assert PREFECT_API_URL.value() == server.url
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
                assert response.status == 200
        assert PREFECT_API_URL.value() == before
    finally:
        process = server.process
        server.stop()
    assert process.poll() is not None  # the server process is gone after stop


def test_a_server_that_exits_at_once_leaves_prefect_to_start_its_own(caplog):
    before = PREFECT_API_URL.value()
    server = local_api.LocalApiServer(lambda port: [sys.executable, "-c", "raise SystemExit(3)"], startup_timeout_s=30)
    with caplog.at_level(logging.WARNING, logger="pipelines.local_api"), server:
        assert PREFECT_API_URL.value() == before
    assert "exited with code 3" in caplog.text
    assert server.process is None


def test_a_server_that_never_answers_is_stopped_after_the_timeout(caplog):
    server = local_api.LocalApiServer(lambda port: [sys.executable, "-c", "import time; time.sleep(60)"], startup_timeout_s=0.5)
    process = server.process
    with caplog.at_level(logging.WARNING, logger="pipelines.local_api"), server:
        pass
    assert "did not answer within 0.5 s" in caplog.text
    assert process.poll() is not None


def test_a_failed_launch_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(local_api, "_api_url_configured", lambda: False)

    def no_launch(*args, **kwargs):
        raise OSError("no such interpreter")

    monkeypatch.setattr(local_api.subprocess, "Popen", no_launch)
    with caplog.at_level(logging.WARNING, logger="pipelines.local_api"), local_api.start_local_api_early():
        pass
    assert "no such interpreter" in caplog.text
