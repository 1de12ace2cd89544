"""`custscore db init`, `custscore runs prune` and a run publishing to the store and PostgreSQL, as a user meets them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import DEFAULT_CONFIG
from pipelines.publishing import publish_scored
from pipelines.sinks import NamedSink, SinkPublishError
from serving.postgres import PostgresSink
from serving.store import ScoreStore
from tests.serving.test_postgres import EARLIER, a_run
from tests.serving.test_store import AS_OF, metadata

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def pg_config(tmp_path, pg_schema):
    """A config naming the test's schema (the URL comes from the environment, as it should in real use)."""
    path = tmp_path / "pg.yaml"
    path.write_text(f"sinks:\n  postgres:\n    schema: {pg_schema}\n")
    return path


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _password(url: str) -> str:
    return url.split("@", 1)[0].rsplit(":", 1)[1]


def test_db_init_without_a_server_configured_says_how_to_configure_one(home, monkeypatch):
    monkeypatch.delenv("CUSTSCORE_POSTGRES_URL", raising=False)
    result = runner.invoke(app, ["db", "init"])
    assert result.exit_code == 2
    assert _lines(result.output) == ["error: no PostgreSQL configured: set CUSTSCORE_POSTGRES_URL "
                                     "(a postgresql:// URL naming user, host, port and database; custscore never shows its password) or sinks.postgres.url in the config"]


def test_db_init_makes_a_reader_that_logs_in_with_the_password_shown_once(home, monkeypatch, postgres_url, pg_config, pg_schema):
    role = f"bi_{pg_schema[-6:]}"
    monkeypatch.setenv("CUSTSCORE_POSTGRES_URL", postgres_url)
    monkeypatch.delenv("CUSTSCORE_READER_PASSWORD", raising=False)
    first = runner.invoke(app, ["db", "init", "--reader-role", role, "--config", str(pg_config)])
    assert first.exit_code == 0, first.output
    lines = _lines(first.output)
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    assert f"a BI tool connects with: postgresql://{role}:***@127.0.0.1:{port}/custscore" in lines
    assert lines[-1].startswith("the reader's password, shown this once")
    password = lines[-1].rsplit(" ", 1)[1]
    assert _password(postgres_url) not in first.output

    again = runner.invoke(app, ["db", "init", "--reader-role", role, "--config", str(pg_config)])
    assert again.exit_code == 0, again.output
    assert "password is unchanged" in _lines(again.output)[-1] and password not in again.output
    with psycopg.connect(f"postgresql://{role}:{password}@127.0.0.1:{port}/custscore") as conn:
        assert conn.execute("SELECT count(*) FROM published_runs").fetchone() == (0,)


def test_runs_prune_removes_old_runs_from_the_store_and_postgresql(home, monkeypatch, postgres_url, pg_config, pg_schema):
    monkeypatch.setenv("CUSTSCORE_POSTGRES_URL", postgres_url)
    store, database = ScoreStore(home / "store"), PostgresSink(postgres_url, pg_schema)
    for run_id, as_of in (("old", EARLIER), ("new", AS_OF)):
        for sink in (store, database):
            sink.publish(metadata(run_id, as_of), a_run(n=5))

    result = runner.invoke(app, ["runs", "prune", "--keep", "1", "--config", str(pg_config)])

    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert lines[0] == f"the store {home / 'store'}: removed run old (as of {EARLIER}, 5 rows)"
    assert re.fullmatch(rf"PostgreSQL postgresql://postgres:\*\*\*@127\.0\.0\.1:\d+/custscore \(schema {pg_schema}\): "
                        rf"removed run old \(as of {EARLIER}, 5 rows\)", lines[1])
    assert list(store.list_runs()["run_id"]) == ["new"] and list(database.list_runs()["run_id"]) == ["new"]
    assert _password(postgres_url) not in result.output


def test_a_failing_second_sink_names_it_and_says_the_store_has_the_run(tmp_path, postgres_url):
    password = _password(postgres_url)
    store = ScoreStore(tmp_path / "store")
    down = PostgresSink(f"postgresql://postgres:{password}@127.0.0.1:1/custscore")
    sinks = [NamedSink("the store", store), NamedSink(f"PostgreSQL {down.shown}", down)]
    with pytest.raises(SinkPublishError) as failed:
        publish_scored(sinks, store.root, metadata("r1"), a_run(n=5))
    message = str(failed.value)
    assert "\n" not in message and password not in message
    assert message.startswith("publishing run r1 to PostgreSQL postgresql://postgres:***@127.0.0.1:1/custscore failed: ")
    assert "The store has the run (5 rows, published); run again" in message
    assert list(store.list_runs()["run_id"]) == ["r1"]


@pytest.mark.slow
def test_custscore_run_with_the_url_in_the_environment_publishes_to_both_sinks(tmp_path, postgres_url, pg_schema):
    config = tmp_path / "config.yaml"
    text = (DEFAULT_CONFIG.read_text().replace("design: search", "design: fixed").replace("customers: 5000", "customers: 1500")
            .replace("schema: custscore", f"schema: {pg_schema}"))
    config.write_text(text)
    (tmp_path / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(CUSTSCORE_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), CUSTSCORE_POSTGRES_URL=postgres_url)

    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--config", str(config)], capture_output=True,
                          text=True, env=env, timeout=900, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    assert _password(postgres_url) not in done.stdout + done.stderr
    printed = " ".join(done.stdout.split())  # the summary wraps long lines
    assert "and PostgreSQL postgresql://postgres:***@127.0.0.1:" in printed and f"(schema {pg_schema})" in printed
    store = ScoreStore(tmp_path / "home" / "store")
    database = PostgresSink(postgres_url, pg_schema)
    in_store, in_database = store.read_scores(), database.read_scores()
    assert len(in_database) == len(in_store) > 0
    assert list(database.list_runs()["run_id"]) == list(store.list_runs()["run_id"])
    pd.testing.assert_frame_equal(in_database, in_store)  # every column, every row, the same types
    pd.testing.assert_frame_equal(database.read_explanations(), store.read_explanations())
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{pg_schema}".scores_current').fetchone() == (len(in_store),)


def test_the_environment_url_wins_over_the_config_and_readers_read_postgresql_when_set(tmp_path, monkeypatch):
    from pipelines.config import load_config
    from pipelines.environment import HomePaths
    from pipelines.sinks import configured_sinks, reading_sink

    config = tmp_path / "c.yaml"
    config.write_text("sinks:\n  postgres:\n    url: postgresql://cfg@config-host/db\n    schema: scores_bi\n")
    paths = HomePaths(tmp_path / "home")
    monkeypatch.setenv("CUSTSCORE_POSTGRES_URL", "postgresql://env:s3cret@env-host:5433/db")
    sinks = configured_sinks(load_config(config), paths)
    assert [type(s.sink).__name__ for s in sinks] == ["ScoreStore", "PostgresSink"]
    assert sinks[1].label == "PostgreSQL postgresql://env:***@env-host:5433/db (schema scores_bi)"
    assert isinstance(reading_sink(load_config(config), paths), PostgresSink)

    monkeypatch.delenv("CUSTSCORE_POSTGRES_URL")
    assert configured_sinks(load_config(config), paths)[1].label == "PostgreSQL postgresql://cfg@config-host/db (schema scores_bi)"
    assert isinstance(reading_sink(load_config(), paths), ScoreStore)  # nothing configured: the store
    assert len(configured_sinks(load_config(), paths)) == 1
