"""A wrong --as-of or horizon never reaches training or the store: one line, before any work or after validation."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.store import ScoreStore
from tests.serving.test_store import publish

runner = CliRunner()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _one_error_line(result) -> str:
    lines = _lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    return lines[0]


def _last_error_line(result) -> str:
    """The CLI's own error line. In this process Prefect was imported by the test harness before the
    CLI could quiet it, so its flow-run log lines come first; the real command prints only this line
    (test_the_real_command_prints_only_the_error_line)."""
    line = _lines(result.output)[-1]
    assert line.startswith("error: ") and (result.exception is None or isinstance(result.exception, SystemExit))
    return line


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize(("flags", "named"), [
    (["--as-of", "2026-13-45"], "--as-of '2026-13-45' is not a date (month must be in 1..12)"),
    (["--as-of", "2026-02-30"], "--as-of '2026-02-30' is not a date (day is out of range for month)"),
    (["--as-of", "yesterday"], "--as-of 'yesterday' is not a date; use YYYY-MM-DD"),
    (["--churn-horizon-days", "0"], "--churn-horizon-days 0 is not a horizon"),
    (["--value-horizon-days", "0"], "--value-horizon-days 0 is not a horizon"),
])
def test_a_malformed_flag_is_one_line_and_exit_code_2_before_any_work(home, command, flags, named):
    result = runner.invoke(app, [command, *flags])
    assert result.exit_code == 2
    assert named in _one_error_line(result)
    assert not home.exists()  # refused before the home folder, tracking, Prefect or the demo data


def test_features_refuses_a_malformed_as_of_before_reading_the_data(home, tmp_path):
    result = runner.invoke(app, ["features", "--data", str(tmp_path / "absent"), "--as-of", "2026-02-30",
                                 "--output", str(tmp_path / "f.csv")])
    assert result.exit_code == 2 and "--as-of '2026-02-30'" in _one_error_line(result) and not home.exists()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo-data", "--customers", "150", "--out", str(out), "--seed", "5", "--format", "csv"])
    assert result.exit_code == 0, result.output
    return out


def _data_span(demo_dir) -> tuple[str, str]:
    ts = pd.to_datetime(pd.read_csv(demo_dir / "transactions.csv", usecols=["ts"])["ts"])
    return str(ts.min().date()), str(ts.max().date())


def _store_state(store: ScoreStore) -> tuple[bytes, set[str], str]:
    """What a reader can see: the manifest, the run folders, and which run is latest."""
    return ((store.root / "manifest.json").read_bytes(), {p.name for p in (store.root / "runs").iterdir()},
            store.latest_run().run_id)


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize(("as_of", "where"), [("2099-01-01", "after the data"), ("2020-01-01", "before the data")])
def test_an_as_of_outside_the_data_is_refused_and_nothing_is_trained_or_published(demo_dir, home, command, as_of, where):
    import mlflow

    store = ScoreStore(home / "store")
    publish(store, "earlier-run")
    before = _store_state(store)
    result = runner.invoke(app, [command, "--data", str(demo_dir), "--as-of", as_of])
    assert result.exit_code == 2
    line = _last_error_line(result)
    first, last = _data_span(demo_dir)
    assert f"as-of date {as_of} is {where}" in line and f"from {first} to {last}" in line
    assert _store_state(store) == before
    assert mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}").search_registered_models() == []


@pytest.mark.slow
def test_the_real_command_prints_only_the_error_line(demo_dir, tmp_path):
    home = tmp_path / "home"
    store = ScoreStore(home / "store")
    publish(store, "earlier-run")
    before = _store_state(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_TRACKING"))}
    env["CUSTSCORE_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--data", str(demo_dir), "--as-of", "2099-01-01"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 2, done.stderr
    first, last = _data_span(demo_dir)
    assert _lines(done.stdout) == []
    assert _lines(done.stderr) == [
        f"error: as-of date 2099-01-01 is after the data: the data's transactions run from {first} to {last}, so the "
        f"latest as-of date is {pd.Timestamp(last).date() + pd.Timedelta(days=1)} (the default); a later one counts "
        "the days without data as days without orders. Pass --allow-future-as-of (flow parameter allow_future_as_of) "
        "to score at a later date anyway"]
    assert _store_state(store) == before
