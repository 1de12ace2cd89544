"""Which published runs the score flows backtest, and that a failed backtest never fails a published run."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pandas as pd
import pytest

from pipelines.backtesting import backtest_due_runs, due_runs
from pipelines.config import load_config
from serving.store import ScoreStore
from tests.serving.test_store import publish

# Horizons from the default configuration (the runs' metadata carries none): churn 90, value 365 days.
OLD, MID, NEW = dt.date(2026, 1, 1), dt.date(2026, 3, 1), dt.date(2026, 9, 1)


def data_ending(last_transaction: dt.datetime) -> SimpleNamespace:
    """What the due check reads of validated data: where its transactions end."""
    return SimpleNamespace(data_end=last_transaction, tables={})


@pytest.fixture()
def store(tmp_path) -> ScoreStore:
    store = ScoreStore(tmp_path / "store")
    for run_id, as_of in (("old", OLD), ("mid", MID), ("new", NEW)):
        publish(store, run_id, as_of=as_of)
    return store


def stored_backtest(measured: set[str]) -> pd.DataFrame:
    return pd.DataFrame({"score": ["churn", "value"], "metric": ["roc_auc", "normalized_gini"],
                         "status": ["measured" if s in measured else "pending" for s in ("churn", "value")]})


def test_runs_with_a_passed_horizon_are_due_newest_first_and_bounded(store):
    cfg = load_config()
    # outcomes observed to 2026-07-01: old's churn window ended 2026-04-01, mid's 2026-05-30, new's is open
    data = data_ending(dt.datetime(2026, 6, 30, 15, 0))
    assert [r.run_id for r in due_runs(store, data, cfg)] == ["mid", "old"]
    assert [r.run_id for r in due_runs(store, data, cfg, limit=1)] == ["mid"]


def test_a_run_measured_for_churn_is_due_again_only_when_its_value_horizon_passes(store):
    cfg = load_config()
    store.attach_table("old", "backtest", stored_backtest({"churn"}))
    assert [r.run_id for r in due_runs(store, data_ending(dt.datetime(2026, 6, 30, 15)), cfg)] == ["mid"]
    # a year after 2026-01-01 the value window has passed too: old is due again, for value
    assert "old" in [r.run_id for r in due_runs(store, data_ending(dt.datetime(2027, 1, 2, 9)), cfg)]
    store.attach_table("old", "backtest", stored_backtest({"churn", "value"}))
    assert "old" not in [r.run_id for r in due_runs(store, data_ending(dt.datetime(2027, 1, 2, 9)), cfg)]


class UnreadableScores:
    """A sink whose score files cannot be read (the rest of it works)."""

    def __init__(self, store: ScoreStore) -> None:
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def read_scores(self, *args, **kwargs):
        raise OSError("input/output error")


def test_a_failed_backtest_is_a_warning_naming_the_run_never_an_error(store):
    cfg = load_config()
    outcome = backtest_due_runs(UnreadableScores(store), data_ending(dt.datetime(2026, 6, 30, 15)), cfg)
    assert outcome["backtests"] == []
    assert outcome["warnings"] == [
        "backtest of run mid (as of 2026-03-01) failed: input/output error; `custscore backtest --run-id mid` tries it again",
        "backtest of run old (as of 2026-01-01) failed: input/output error; `custscore backtest --run-id old` tries it again",
    ]
    assert store.read_table("backtest", run_id="mid") is None


def test_switched_off_the_flows_backtest_nothing(store):
    cfg = load_config().with_overrides(monitoring={"backtest": {"auto": False}})
    assert backtest_due_runs(UnreadableScores(store), data_ending(dt.datetime(2026, 6, 30, 15)), cfg) == {
        "backtests": [], "warnings": []}


class UnreadableManifest(UnreadableScores):
    """A sink whose list of runs cannot be read."""

    def list_runs(self):
        raise RuntimeError("manifest.json is not valid JSON")


def test_runs_that_cannot_be_listed_are_a_warning_not_an_error(store):
    outcome = backtest_due_runs(UnreadableManifest(store), data_ending(dt.datetime(2026, 6, 30, 15)), load_config())
    assert outcome == {"backtests": [], "warnings": [
        "no backtest made: the published runs could not be read (manifest.json is not valid JSON); "
        "`custscore backtest` tries again"]}
