"""The champion gate and the registry aliases, on a real MLflow store in a temporary folder."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipelines import tracking


class ConstantChurnModel:
    """A stand-in churn model: the gate does not care what is inside, only its metric."""

    def __init__(self, p: float):
        self.p = p
        self.feature_names_ = ["days_since_last_order", "attr_region"]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.p)


class CountChurnModel:
    """A stand-in whose probability is a tenth of the 30-day order count (0.5 where the count is missing)."""

    def __init__(self):
        self.feature_names_ = ["order_count_30d", "days_since_last_order", "attr_region"]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        assert X["order_count_30d"].dtype == "float64" and X["attr_region"].dtype == "category"
        return (X["order_count_30d"] / 10).fillna(0.5).to_numpy()


@pytest.fixture(autouse=True)
def _trust_the_stand_in(monkeypatch):
    """Model files refuse unknown classes; this test's stand-ins are trusted here on purpose."""
    from models import model_files

    monkeypatch.setattr(model_files, "TRUSTED_TYPES",
                        (*model_files.TRUSTED_TYPES, *(f"{__name__}.{c.__qualname__}"
                                                        for c in (ConstantChurnModel, CountChurnModel))))


@pytest.fixture()
def mlflow_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.configure_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


def _example() -> pd.DataFrame:
    return pd.DataFrame(
        {"days_since_last_order": [3.0, 40.0], "attr_region": pd.Categorical(["north", "south"])}
    )


def _train_and_gate(client, p: float, challenger_auc: float, baseline_auc: float):
    champion = tracking.load_champion("churn", client)
    champion_auc = champion.model.p if champion else None  # the stand-in's "metric" is its p
    exp = mlflow.get_experiment_by_name("custscore-churn")
    with mlflow.start_run(experiment_id=exp.experiment_id):
        version = tracking.log_model_version("churn", ConstantChurnModel(p), _example())
        decision = tracking.decide_promotion("roc_auc", challenger_auc, baseline_auc, champion_auc)
        tracking.apply_promotion("churn", version.version, decision, client)
    return version, decision


def test_gate_first_better_model_promoted_worse_kept_better_moves_alias(mlflow_home):
    client = mlflow_home
    # v1 loses to the baseline: kept, no champion.
    _, d1 = _train_and_gate(client, p=0.55, challenger_auc=0.55, baseline_auc=0.60)
    assert not d1.promote and "does not beat the baseline" in d1.reason
    assert tracking.load_champion("churn", client) is None

    # v2 is the first to beat the baseline: champion.
    v2, d2 = _train_and_gate(client, p=0.70, challenger_auc=0.70, baseline_auc=0.60)
    assert d2.promote and "first model" in d2.reason
    assert str(client.get_model_version_by_alias("custscore-churn", "champion").version) == v2.version

    # v3 beats the baseline but not the champion: the alias stays, the reason is recorded.
    v3, d3 = _train_and_gate(client, p=0.65, challenger_auc=0.65, baseline_auc=0.60)
    assert not d3.promote and "does not beat the champion" in d3.reason
    assert str(client.get_model_version_by_alias("custscore-churn", "champion").version) == v2.version
    tags = client.get_model_version("custscore-churn", v3.version).tags
    assert tags["promotion_decision"] == "kept" and "champion" in tags["promotion_reason"]

    # v4 beats both: it becomes champion and v2 is kept as previous-champion for rollback.
    v4, d4 = _train_and_gate(client, p=0.80, challenger_auc=0.80, baseline_auc=0.60)
    assert d4.promote
    assert str(client.get_model_version_by_alias("custscore-churn", "champion").version) == v4.version
    assert str(client.get_model_version_by_alias("custscore-churn", "previous-champion").version) == v2.version

    # Scoring loads the champion through the alias, and it returns probabilities, not labels.
    champion = tracking.load_champion("churn", client)
    assert champion.version == v4.version
    pyfunc = mlflow.pyfunc.load_model("models:/custscore-churn@champion")
    out = pyfunc.predict(tracking._signature_frame(_example()))
    assert list(out.columns) == ["p_churn"] and np.allclose(out["p_churn"], 0.80)

    # Rollback gives the title back to v2; v2 was the first champion, so nothing is previous-champion now.
    assert tracking.rollback_champion("churn", client) == v2.version
    assert tracking.aliased_versions("churn", client)["previous-champion"] is None


def _register(p: float) -> tracking.RegisteredVersion:
    exp = mlflow.get_experiment_by_name("custscore-churn")
    with mlflow.start_run(experiment_id=exp.experiment_id):
        return tracking.log_model_version("churn", ConstantChurnModel(p), _example())


def _champion(client) -> str | None:
    return tracking.current_champion_version("churn", client)


def test_the_alias_does_not_move_when_another_run_promoted_a_champion_after_the_gate_read_it(mlflow_home):
    client = mlflow_home
    # An empty registry: two runs both see "no champion" and both pass the gate as "first model".
    gate_read = _champion(client)
    assert gate_read is None
    first, second = _register(0.70), _register(0.72)
    first_decision = tracking.decide_promotion("roc_auc", 0.70, 0.60, None)
    second_decision = tracking.decide_promotion("roc_auc", 0.72, 0.60, None)
    assert first_decision.promote and second_decision.promote

    applied = tracking.apply_promotion("churn", first.version, first_decision, client, compared_with=gate_read)
    assert applied.promote and _champion(client) == first.version

    # The second run's gate compared against "no champion"; the first run's model holds the alias now.
    late = tracking.apply_promotion("churn", second.version, second_decision, client, compared_with=gate_read)
    assert not late.promote
    assert late.reason == (f"not promoted: the champion changed from no champion to v{first.version} after the gate "
                           "compared against it; retrain to compare with the new champion")
    assert _champion(client) == first.version
    tags = client.get_model_version("custscore-churn", second.version).tags
    assert tags["promotion_decision"] == "kept" and tags["promotion_reason"] == late.reason


def test_the_alias_moves_when_the_champion_the_gate_read_is_still_the_champion(mlflow_home):
    client = mlflow_home
    v1 = _register(0.70)
    tracking.apply_promotion("churn", v1.version, tracking.decide_promotion("roc_auc", 0.70, 0.6, None), client,
                             compared_with=None)
    v2 = _register(0.80)
    decision = tracking.apply_promotion("churn", v2.version, tracking.decide_promotion("roc_auc", 0.80, 0.6, 0.70),
                                        client, compared_with=v1.version)
    assert decision.promote and _champion(client) == v2.version
    assert str(client.get_model_version_by_alias("custscore-churn", "previous-champion").version) == v1.version


def test_a_champion_is_loaded_as_the_version_the_alias_named_even_if_the_alias_moves_meanwhile(mlflow_home):
    client = mlflow_home
    v1, v2 = _register(0.70), _register(0.80)
    client.set_registered_model_alias("custscore-churn", "champion", v1.version)
    read_alias = client.get_model_version_by_alias

    def read_then_move(name, alias):
        named = read_alias(name, alias)
        client.set_registered_model_alias(name, alias, v2.version)  # another writer, right after the read
        return named

    client.get_model_version_by_alias = read_then_move
    champion = tracking.load_champion("churn", client)
    # The model and the version reported with it are the same one: what the alias named when read.
    assert champion.version == v1.version and champion.model.p == 0.70


@pytest.mark.parametrize(
    ("challenger", "baseline", "champion", "promote"),
    [(0.7, 0.6, None, True), (0.6, 0.6, None, False), (0.7, 0.6, 0.7, False), (0.71, 0.6, 0.7, True),
     (float("nan"), 0.6, None, False)],
)
def test_decide_promotion_rule(challenger, baseline, champion, promote):
    assert tracking.decide_promotion("roc_auc", challenger, baseline, champion).promote is promote


def test_no_champion_error_explains_the_gate_decision():
    from pipelines.publishing import NoChampionError, scoring_models

    training = {"value": {"version": "1", "reason": "challenger normalized_gini 0.64 does not beat the baseline 0.65"}}
    with pytest.raises(NoChampionError, match=r"custscore-value v1 was trained but not promoted: .*does not beat the baseline"):
        scoring_models({"churn": object(), "value": None}, training)
    with pytest.raises(NoChampionError, match="Train first"):
        scoring_models({"churn": None, "value": None})


def test_a_second_home_in_the_same_process_does_not_see_the_first_homes_champion(tmp_path, monkeypatch):
    # mlflow.set_tracking_uri exports the URI to the environment, where HomePaths reads a
    # user's own choice: the CDNOW CLI test once scored with a demo champion from a home an
    # earlier test in the same worker had used.
    from pipelines.environment import HomePaths

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = HomePaths(tmp_path / "first"), HomePaths(tmp_path / "second")
    try:
        tracking.configure_tracking(first.tracking_uri, first.mlflow_artifacts)
        _, decision = _train_and_gate(MlflowClient(), p=0.70, challenger_auc=0.70, baseline_auc=0.60)
        assert decision.promote and tracking.load_champion("churn") is not None

        assert second.tracking_uri == f"sqlite:///{second.mlflow_db}"
        tracking.configure_tracking(second.tracking_uri, second.mlflow_artifacts)
        assert tracking.load_champion("churn") is None
    finally:
        mlflow.set_tracking_uri(None)


def test_a_tracking_uri_the_user_exported_stays_in_force_for_every_home(tmp_path, monkeypatch):
    from pipelines.environment import HomePaths

    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    try:
        tracking.configure_tracking(HomePaths(tmp_path / "a").tracking_uri, tmp_path / "artifacts")
        assert mlflow.get_tracking_uri() == shared
        assert HomePaths(tmp_path / "b").tracking_uri == shared
    finally:
        mlflow.set_tracking_uri(None)


def test_the_registered_pyfunc_accepts_the_feature_table_custscore_writes(mlflow_home):
    training_rows = pd.DataFrame({"order_count_30d": [1.0, 4.0], "days_since_last_order": [3.0, np.nan],
                                  "attr_region": pd.Categorical(["north", "south"])})
    exp = mlflow.get_experiment_by_name("custscore-churn")
    with mlflow.start_run(experiment_id=exp.experiment_id):
        version = tracking.log_model_version("churn", CountChurnModel(), training_rows)
    pyfunc = mlflow.pyfunc.load_model(f"models:/custscore-churn/{version.version}")
    # As `custscore features` writes it: counts int64 (or nullable Int64 with a gap), attributes
    # categorical, the customer id beside them.
    table = pd.DataFrame({"customer_id": ["C1", "C2", "C3"],
                          "order_count_30d": np.array([2, 0, 7], dtype="int64"),
                          "days_since_last_order": pd.array([5, None, 9], dtype="Int64"),
                          "attr_region": pd.Categorical(["south", "north", "north"])})
    for frame in (table, table.assign(order_count_30d=pd.array([2, None, 7], dtype="Int64"))):
        out = pyfunc.predict(frame)
        expected = [0.2, 0.0, 0.7] if frame["order_count_30d"].dtype == "int64" else [0.2, 0.5, 0.7]
        assert np.allclose(out["p_churn"], expected)
