"""A run, then a run three months later on the later data: the second backtests the first, by itself.

One demo world; the first run sees only its transactions before 2026-07-01 (as an extract taken
that day would), the second all of them to 2026-09-30. Horizons of 90 days for churn and value, so
both windows of the first run have passed when the second runs. A fixed design keeps training short.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from demo import generate_demo_data, write_demo_data
from tests.pipelines.flow_home import FIXED_DESIGN, config_file, module_home

pytestmark = pytest.mark.slow

N_CUSTOMERS = 700
CUTOFF = pd.Timestamp("2026-07-01")
FIRST_AS_OF, SECOND_AS_OF = "2026-07-01", "2026-10-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("backtest")
    tables = generate_demo_data(N_CUSTOMERS, seed=13, end=date(2026, 9, 30))
    later = {"transactions": tables["transactions"], "customers": tables["customers"]}
    earlier = {"transactions": later["transactions"].loc[later["transactions"]["ts"] < CUTOFF],
               "customers": later["customers"].loc[later["customers"]["signup_date"] < CUTOFF]}
    write_demo_data(earlier, root / "earlier", "parquet")
    write_demo_data(later, root / "later", "parquet")
    return root


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    yield from module_home(world)


@pytest.fixture(scope="module")
def config(world):
    """The default config with a fixed design and 90-day horizons for both scores."""
    return config_file(world, "config", FIXED_DESIGN, (r"value_horizon_days: 365", "value_horizon_days: 90"))


@pytest.fixture(scope="module")
def runs(world, home, config):
    """The first run (trains, scores as of 2026-07-01) and the scheduled score flow three months later."""
    from pipelines.flows import retrain_and_score_flow, score_flow
    from serving.store import ScoreStore

    first = retrain_and_score_flow(data=str(world / "earlier"), config=str(config), retrain=False)
    first_had_backtest = ScoreStore(home / "store").read_table("backtest", run_id=first["published"]["run_id"])
    second = score_flow(data=str(world / "later"), config=str(config))
    return first, second, first_had_backtest


def _backtest(home, run_id):
    from serving.store import ScoreStore

    return ScoreStore(home / "store").read_table("backtest", run_id=run_id)


def _row(table, score, metric, group_by="all", group="all"):
    rows = table.loc[(table["score"] == score) & (table["metric"] == metric) & (table["group_by"] == group_by)
                     & (table["group"] == group)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_first_run_is_not_due_until_later_data_arrives(runs):
    first, _, first_had_backtest = runs
    assert first["published"]["as_of"] == FIRST_AS_OF
    assert first["published"]["backtests"] == [] and first_had_backtest is None


def test_the_later_run_backtests_the_first_and_not_itself(runs, home):
    first, second, _ = runs
    assert second["published"]["as_of"] == SECOND_AS_OF
    backtested = second["published"]["backtests"]
    assert [b["run_id"] for b in backtested] == [first["published"]["run_id"]]
    assert {s: v["status"] for s, v in backtested[0]["scores"].items()} == {"churn": "measured", "value": "measured"}
    assert _backtest(home, second["published"]["run_id"]) is None


def test_the_scores_came_true_about_as_well_as_validation_said(runs, home):
    first, _, _ = runs
    table = _backtest(home, first["published"]["run_id"])
    auc = _row(table, "churn", "roc_auc")
    # The validation figure is the one the churn model was promoted on, as training reported it.
    assert auc["validation"] == pytest.approx(first["training"]["churn"]["metrics"]["roc_auc"])
    assert auc["value"] > 0.65 and abs(auc["value"] - auc["validation"]) < 0.1
    gini = _row(table, "value", "normalized_gini")
    assert gini["value"] > 0.4 and gini["validation"] == pytest.approx(first["training"]["value"]["metrics"]["normalized_gini"])
    # Everyone the first run scored (customers with history before 2026-07-01) has an outcome.
    assert auc["customers"] == _row(table, "churn", "churn_rate")["customers"] > 0.8 * N_CUSTOMERS
    assert str(auc["window_end"]) == "2026-09-29"


def test_at_risk_customers_left_more_than_the_other_valuable_ones(runs, home):
    first, _, _ = runs
    table = _backtest(home, first["published"]["run_id"])
    segments = table.loc[(table["score"] == "churn") & (table["group_by"] == "segment")].set_index("group")
    shown = segments[["customers", "predicted", "realised"]].to_string()
    # at_risk and most_valuable are both valuable now; at_risk are those the model expected to leave
    assert segments.loc["at_risk", "realised"] > segments.loc["most_valuable", "realised"], shown
    # Each segment of some size left about as often as predicted: within three binomial standard errors
    # of its predicted share (25 customers at p 0.25 alone give a standard error of 0.09), plus 0.05 of
    # calibration slack.
    sizable = segments.loc[segments["customers"] >= 20]
    p, n = sizable["predicted"], sizable["customers"]
    allowed = 3 * np.sqrt(p * (1 - p) / n) + 0.05
    assert len(sizable) >= 3 and ((sizable["realised"] - p).abs() < allowed).all(), shown
    deciles = table.loc[(table["score"] == "churn") & (table["group_by"] == "decile")]
    assert deciles["group"].tolist() == [f"{i:02d}" for i in range(1, 11)]
    assert deciles["realised"].iloc[-1] > 0.9 > 0.2 > deciles["realised"].iloc[0]  # the top decile left, the bottom stayed


def test_the_backtest_is_an_mlflow_run_of_the_model_version(runs, home):
    from mlflow import MlflowClient

    first, second, _ = runs
    run_id = first["published"]["run_id"]
    client = MlflowClient()
    experiment = client.get_experiment_by_name("custscore-churn")
    logged = client.search_runs([experiment.experiment_id], f"tags.scoring_run_id = '{run_id}'")
    assert len(logged) == 1
    version = first["published"]["models"]["churn"]["version"]
    assert logged[0].data.tags["model_version"] == str(version)
    assert logged[0].info.run_id == second["published"]["backtests"][0]["mlflow_runs"]["churn"]
    auc = _row(_backtest(home, run_id), "churn", "roc_auc")
    assert logged[0].data.metrics["backtest_roc_auc"] == pytest.approx(auc["value"])
    assert logged[0].data.metrics["validation_roc_auc"] == pytest.approx(auc["validation"])
    assert client.get_model_version("custscore-churn", str(version)).tags["last_backtest"].startswith(f"run {run_id}")


def test_the_command_finds_nothing_due_then_measures_a_run_again_on_request(runs, world, home, config):
    from pipelines.cli import app

    first, _, _ = runs
    runner = CliRunner()
    result = runner.invoke(app, ["backtest", "--data", str(world / "later"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "no published run is due for a backtest" in result.output
    run_id = first["published"]["run_id"]
    result = runner.invoke(app, ["backtest", "--run-id", run_id, "--data", str(world / "later"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"backtest of run {run_id}" in result.output and "roc_auc" in result.output and "at_risk" in result.output


def test_the_command_refuses_a_run_whose_horizons_have_not_passed(runs, world, config):
    from pipelines.cli import app

    _, second, _ = runs
    result = CliRunner().invoke(app, ["backtest", "--run-id", second["published"]["run_id"],
                                      "--data", str(world / "later"), "--config", str(config)])
    assert result.exit_code == 1
    assert "no horizon has passed yet" in result.output and "2026-12-30" in result.output
