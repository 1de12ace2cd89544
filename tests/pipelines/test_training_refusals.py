"""Training sets that cannot give an honest model are refused in one line; a failed training run is FAILED."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from models.params import ChurnParams
from pipelines import tracking
from pipelines.training import (
    MIN_CUSTOMERS_PER_PART,
    RunContext,
    TrainingDataError,
    _track,
    check_trainable,
    train_churn,
)


def _frame(train_labels: list[int], valid_labels: list[int]) -> pd.DataFrame:
    """One training snapshot (2026-05-01) and one validation snapshot (2026-06-01), one row per customer each."""
    rows = [{"customer_id": f"c{i}", "as_of": pd.Timestamp("2026-05-01"), "is_validation": False,
             "recency": float(i), "label_churn": y} for i, y in enumerate(train_labels)]
    rows += [{"customer_id": f"c{i}", "as_of": pd.Timestamp("2026-06-01"), "is_validation": True,
              "recency": float(i), "label_churn": y} for i, y in enumerate(valid_labels)]
    return pd.DataFrame(rows)


def _ctx() -> RunContext:
    return RunContext("fs", "hash", "2026-07-01", 90, "test data")


def test_a_validation_snapshot_where_nobody_churns_is_refused_in_one_line_before_any_fit():
    frame = _frame([0, 1] * 40, [0] * 80)
    with pytest.raises(TrainingDataError) as caught:
        train_churn(frame, ChurnParams(), _ctx())  # no tracking configured: a fit or registration would fail otherwise
    message = str(caught.value)
    assert "\n" not in message
    assert "label 'churn' has a single class at validation snapshot(s) 2026-06-01 (all 0, 80 rows)" in message
    assert "nothing registered" in message


def test_a_training_part_where_everybody_churns_is_refused():
    with pytest.raises(TrainingDataError, match=r"single class at training snapshot\(s\) 2026-05-01 \(all 1, 60 rows\)"):
        check_trainable("churn", _frame([1] * 60, [0, 1] * 30))


def test_too_few_customers_in_a_part_is_refused_with_the_count_and_the_minimum():
    assert MIN_CUSTOMERS_PER_PART == 50
    with pytest.raises(TrainingDataError, match=r"value validation snapshot\(s\) 2026-06-01 hold 49 customers, fewer than 50"):
        check_trainable("value", _frame([0, 1] * 30, [0, 1] * 24 + [0]))
    check_trainable("churn", _frame([0, 1] * 25, [0, 1] * 25))  # 50 customers with both classes: accepted


def test_a_training_run_that_ends_with_an_exception_is_marked_failed(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure_tracking(uri, tmp_path / "artifacts")
    frame = _frame([0, 1] * 30, [0, 1] * 30)
    train, valid = frame[~frame["is_validation"]], frame[frame["is_validation"]]
    metrics = {"roc_auc": 0.7}
    try:
        with pytest.raises(AttributeError):  # no booster: the run fails half way, after it logged its parameters
            _track("churn", None, None, ChurnParams(), frame, train, valid, ["recency"], metrics, {"roc_auc": 0.6},
                   None, {}, {}, _ctx(), champion_version=None)
        experiment = mlflow.get_experiment_by_name("custscore-churn")
        runs = MlflowClient().search_runs([experiment.experiment_id])
        assert [r.info.status for r in runs] == ["FAILED"]
        assert runs[0].data.params["scoring_date"] == "2026-07-01"
        assert mlflow.active_run() is None
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("error", [
    "TrainingDataError: label 'churn' has a single class at validation snapshot(s) 2026-06-01 (all 0, 80 rows)",
    "LostRegistryError: store /h/store: its last published run 20260701-abc was scored with custscore-churn v1",
])
def test_the_command_line_prints_a_refusal_as_one_line_and_exits_2(error, capsys):
    import typer

    from pipelines import cli
    from pipelines.runs import LostRegistryError

    kind, message = error.split(": ", 1)
    error_type = {"TrainingDataError": TrainingDataError, "LostRegistryError": LostRegistryError}[kind]

    def refused_flow():
        raise error_type(message)

    with pytest.raises(typer.Exit) as exited:
        cli._run_guarded(refused_flow)
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_a_command_stopped_by_sigterm_marks_its_open_mlflow_run_failed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = textwrap.dedent(f"""
        import time, mlflow
        from pipelines.cli import end_on_sigterm
        end_on_sigterm()
        mlflow.set_tracking_uri({uri!r})
        with mlflow.start_run():
            print("started", flush=True)
            time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) as child:
        assert child.stdout.readline().strip() == "started"
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    mlflow.set_tracking_uri(uri)
    try:
        runs = MlflowClient().search_runs(["0"])
        assert [r.info.status for r in runs] == ["FAILED"]
    finally:
        mlflow.set_tracking_uri(None)
