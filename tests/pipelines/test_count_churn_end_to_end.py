"""The main job with the count-based churn model (models.churn.objective: poisson), end to end.

What differs from the binary classifier and is checked here: training feeds it the order days
of the churn horizon, the registered champion keeps its objective, p_churn falls as the
expected order days rise, and the published churn reasons are oriented to churn risk (the
booster's contributions with their sign turned), so "raises" still means "raises p_churn".
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from demo import generate_demo_data, write_demo_data

pytestmark = pytest.mark.slow

N_CUSTOMERS = 1000
AS_OF = "2026-07-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory, prefect_harness):
    """Demo data, a config choosing the count model, and an empty custscore home."""
    from pipelines.config import DEFAULT_CONFIG

    root = tmp_path_factory.mktemp("count-e2e")
    tables = generate_demo_data(N_CUSTOMERS, seed=5, end=date(2026, 6, 30))
    write_demo_data(tables, root / "data", "parquet")
    # A fixed design: the count objective is what is checked here, not the design search's choice.
    config = (DEFAULT_CONFIG.read_text().replace("chunk_size: 50000", "chunk_size: 300")
              .replace("design: search", "design: fixed"))
    (root / "config.yaml").write_text(config + "\nmodels:\n  churn:\n    objective: poisson\n")
    (root / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield root, tables
    mp.undo()


@pytest.fixture(scope="module")
def run(world):
    from pipelines.flows import retrain_and_score_flow

    root, _ = world
    return retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, config=str(root / "config.yaml"), retrain=False)


@pytest.fixture(scope="module")
def champion_and_features(run, world):
    from features.build import build_features
    from features.tables import tables_from_frames
    from pipelines import tracking
    from pipelines.config import load_config
    from pipelines.tasks import feature_spec

    _, tables = world
    churn = tracking.load_champion("churn").model
    _, ibis_tables = tables_from_frames(tables)
    spec = feature_spec(load_config(world[0] / "config.yaml"))  # the features the champion was trained on
    features = build_features(ibis_tables, datetime.fromisoformat(AS_OF), spec)
    return churn, features[features["days_since_last_order"].notna()].reset_index(drop=True)


def _store(world):
    from serving.store import ScoreStore

    return ScoreStore(world[0] / "home" / "store")


def test_count_model_trains_on_order_days_and_beats_the_rule_baseline(run, champion_and_features):
    churn, _ = champion_and_features
    assert churn.params.objective == "poisson" and churn.risk_sign == -1.0
    assert churn.booster_.params["objective"] == "poisson"
    metrics = run["training"]["churn"]
    assert metrics["metrics"]["roc_auc"] >= metrics["baseline_metrics"]["roc_auc"] + 0.02


def test_published_p_churn_falls_as_expected_order_days_rise(run, world, champion_and_features):
    churn, features = champion_and_features
    scores = _store(world).read_scores().set_index("customer_id")
    published = scores.loc[features["customer_id"], "p_churn"].to_numpy()
    expected_days = churn.booster_.predict(features[churn.feature_names_])
    assert ((published >= 0) & (published <= 1)).all()
    order = np.argsort(expected_days, kind="stable")
    assert (np.diff(published[order]) <= 1e-12).all()  # calibration maps are monotone
    assert published[order][0] > published[order][-1]


def test_published_churn_reasons_are_oriented_to_churn_risk(run, world, champion_and_features):
    from models.explain import contributions

    churn, features = champion_and_features
    rows = features.head(100)
    contrib = contributions(churn.booster_, rows[churn.feature_names_])
    np.testing.assert_allclose(contrib.sum(axis=1), churn.predict_raw(rows[churn.feature_names_]), atol=1e-6)
    explanations = _store(world).read_explanations(customer_id=list(rows["customer_id"]), score="churn")
    assert len(explanations) > 0
    position = {c: i for i, c in enumerate(rows["customer_id"])}
    column = {f: j for j, f in enumerate(churn.feature_names_)}
    booster_side = np.array([contrib[position[r.customer_id], column[r.feature]] for r in explanations.itertuples()])
    np.testing.assert_allclose(explanations["contribution"].to_numpy(), -booster_side, atol=1e-6)
    raises = (explanations["direction"] == "raises").to_numpy()
    assert (explanations.loc[raises, "contribution"] > 0).all()
    assert (explanations.loc[~raises, "contribution"] < 0).all()
    # recency is the strongest sign of churn: where it is a reason, a long gap raises p_churn
    recency = explanations[explanations["feature"] == "days_since_last_order"]
    joined = recency.merge(rows[["customer_id", "days_since_last_order"]], on="customer_id")
    assert len(joined) >= 10
    long_gap = joined["days_since_last_order"] > joined["days_since_last_order"].median()
    assert pd.crosstab(long_gap, joined["direction"]).loc[True].idxmax() == "raises"
