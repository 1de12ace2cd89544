"""`custscore api keys ...` and `custscore api serve` as a user meets them: a real uvicorn on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.api import ApiKeys
from tests.serving.api.conftest import publish_runs

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_create_prints_the_key_once_on_its_last_line_and_list_never_shows_it(home):
    created = runner.invoke(app, ["api", "keys", "create", "--name", "crm"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("cs_") and ApiKeys(home / "api_keys.json").verify(key) == "crm"
    listed = runner.invoke(app, ["api", "keys", "list"])
    assert "crm" in listed.output and "active" in listed.output and key not in listed.output
    assert key.split("_", 2)[2] not in (home / "api_keys.json").read_text()


def test_revoke_refuses_the_key_and_a_second_revoke_says_there_is_none(home):
    key = runner.invoke(app, ["api", "keys", "create", "--name", "crm"]).output.strip().splitlines()[-1]
    revoked = runner.invoke(app, ["api", "keys", "revoke", "crm"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert ApiKeys(home / "api_keys.json").verify(key) is None
    again = runner.invoke(app, ["api", "keys", "revoke", "crm"])
    assert again.exit_code == 2 and "no active key named 'crm'" in again.output
    assert "revoked" in runner.invoke(app, ["api", "keys", "list"]).output


def test_a_bad_key_name_is_one_line(home):
    result = runner.invoke(app, ["api", "keys", "create", "--name", "crm team"])
    assert result.exit_code == 2 and "key name 'crm team' is not allowed" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
def test_api_serve_starts_uvicorn_answers_and_logs_no_key(home, tmp_path):
    publish_runs(home / "store")
    key = ApiKeys(home / "api_keys.json").create("crm")
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "CUSTSCORE_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "api", "serve", "--port", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = _get(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "custscore api serve did not answer /healthz within 90 s"
                time.sleep(0.3)
        assert (status, body) == (200, b'{"status":"ok"}')
        status, body = _get(f"{base}/v1/customers/k03?lang=zh", {"Authorization": f"Bearer {key}"})
        assert status == 200 and "推高流失风险".encode() in body
        assert _get(f"{base}/v1/customers/k03", {"X-API-Key": key[:-1] + "x"})[0] == 401
        assert _get(f"{base}/v1/customers/k03?api_key={key}")[0] == 400
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert "GET /v1/customers/k03 HTTP/1.1\" 200" in text  # the access log is on...
    secret = key.split("_", 2)[2]  # cs_<id>_<secret>: the secret itself may hold '_'
    assert key not in text and secret not in text  # ...and holds no key, not even the misplaced one


def test_api_serve_with_postgresql_down_is_one_line_without_the_password(home, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CUSTSCORE_POSTGRES_URL", f"postgresql://custscore:s3cret@127.0.0.1:{port}/custscore")
    result = runner.invoke(app, ["api", "serve", "--port", "8765"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "cannot connect" in lines[0] and "s3cret" not in result.output and "***" in lines[0]
