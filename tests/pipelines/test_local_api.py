"""The early start of Prefect's local API: used only when needed, never fatal."""

from __future__ import annotations

import logging
import threading

import pytest

from pipelines import local_api


def test_no_server_is_started_when_an_api_is_configured(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    started = []
    monkeypatch.setattr(local_api, "_start_subprocess_server", lambda: started.append(1))
    local_api.start_local_api_early()()
    assert started == []
    assert not any(t.name == "prefect-local-api" for t in threading.enumerate())


def test_the_server_is_started_on_a_thread_and_awaited(monkeypatch):
    monkeypatch.setattr(local_api, "_api_url_configured", lambda: False)
    release = threading.Event()
    calls = []

    def slow_start():
        release.wait(5)
        calls.append(threading.current_thread().name)

    monkeypatch.setattr(local_api, "_start_subprocess_server", slow_start)
    wait_until_up = local_api.start_local_api_early()
    assert calls == []  # the caller is not blocked while the server boots
    release.set()
    wait_until_up()
    assert calls == ["prefect-local-api"]


def test_a_failed_early_start_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setattr(local_api, "_api_url_configured", lambda: False)

    def broken_start():
        raise RuntimeError("port 8123 busy")

    monkeypatch.setattr(local_api, "_start_subprocess_server", broken_start)
    with caplog.at_level(logging.WARNING, logger="pipelines.local_api"):
        local_api.start_local_api_early()()
    assert "port 8123 busy" in caplog.text


@pytest.mark.usefixtures("prefect_harness")
def test_the_test_harness_api_counts_as_configured(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert local_api._api_url_configured()
