"""A wrong --as-of or horizon never reaches training or the store: one line, before any work or after validation."""

from __future__ import annotations

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


def _one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    return lines[0]


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
    line = _one_error_line(result)
    first, last = _data_span(demo_dir)
    assert f"as-of date {as_of} is {where}" in line and f"from {first} to {last}" in line
    assert _store_state(store) == before
    assert mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}").search_registered_models() == []
