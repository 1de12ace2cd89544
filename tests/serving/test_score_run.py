"""score_run: one BG/NBD fit per run serves the champions' BTYD columns, the level anchor and the blend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.build import build_features
from features.training_set import build_training_set
from features.transactions import btyd_inputs_expr
from models import btyd
from models.blend import blend_churn_probabilities, blend_values
from models.btyd import BTYD_FIT_ROWS, BtydFeatures
from models.btyd_columns import add_btyd_features
from models.churn import ChurnModel
from models.level import LevelAnchor, anchor_factor
from models.params import ChurnParams, ValueParams
from models.value import ValueModel
from serving.score_run import BtydInputsNeededError, score_run
from serving.scoring import ScoringModels, has_history
from serving.settings import BtydBlendConfig, ScoringConfig, ScoringSettings
from tests.serving.test_scoring_population import SCORING, SPEC, tables  # noqa: F401  (fixture)

CHURN_H, VALUE_H = 90, 365
BLEND = BtydBlendConfig(churn_weight=0.5, value_weight=0.25)
SETTINGS = ScoringSettings(value_horizon_days=VALUE_H, churn_horizon_days=CHURN_H, annual_discount_rate=0.1,
                           scoring=ScoringConfig(btyd_blend=BLEND))


@pytest.fixture(scope="module")
def world(tables):  # noqa: F811
    """Champions that read BTYD columns of both horizons, an anchor always used, the population's inputs."""
    training = build_training_set(tables, SCORING, spec=SPEC, n_snapshots=3, step_days=90, min_history_days=180)
    for horizon in (CHURN_H, VALUE_H):
        training = add_btyd_features(training, horizon)
    names = [c for c in training.columns if c not in ("customer_id", "as_of", "is_validation") and not c.startswith("label_")]
    train, valid = training[~training["is_validation"]], training[training["is_validation"]]
    churn = ChurnModel(ChurnParams(n_estimators=20)).fit(train, train["label_churn"], valid, valid["label_churn"], names)
    value = ValueModel(ValueParams(n_estimators=20, interval_n_estimators=20, revenue_model="direct")).fit(
        train, train["label_revenue"], valid, valid["label_revenue"], names,
        margin=train["label_margin"], margin_val=valid["label_margin"],
        cost_to_serve=train["label_cost_to_serve"], cost_to_serve_val=valid["label_cost_to_serve"],
    )
    y = valid["label_revenue"].to_numpy(dtype=float)
    value.level_anchor_ = LevelAnchor(mode="always").fit(y, y * 0.5, y)
    features = build_features(tables, SCORING, SPEC, include_prospects=True)
    inputs = btyd_inputs_expr(tables["transactions"], SCORING).to_pyarrow().to_pandas()
    return ScoringModels(churn, value, "1", "1"), features, inputs


def test_one_fit_gives_the_btyd_columns_the_anchor_and_the_blend(world, tmp_path, monkeypatch):
    models, features, inputs = world
    fits = []
    real_fit = BtydFeatures.fit
    monkeypatch.setattr(btyd.BtydFeatures, "fit", lambda self, X, y=None: fits.append(len(X)) or real_fit(self, X, y))
    chunks = [features.iloc[:40], features.iloc[40:]]
    run = score_run(chunks, models, SETTINGS, tmp_path, run_id="r1", as_of=SCORING.date(), btyd_inputs=lambda: inputs)
    assert fits == [len(inputs)]
    numbers = run.numbers.to_pandas().set_index("customer_id")
    # By hand: the models' own scores, BG/NBD fitted on the same inputs, then the anchor and the blend.
    reference = BtydFeatures(CHURN_H, max_fit_rows=BTYD_FIT_ROWS).fit(inputs)
    scored = features.loc[has_history(features)].reset_index(drop=True)
    btyd_columns = [reference.with_horizon(h).transform(scored) for h in (CHURN_H, VALUE_H)]
    scored = pd.concat([scored, btyd_columns[0], btyd_columns[1].drop(columns=["btyd_p_alive"])], axis=1)
    ours = numbers.loc[scored["customer_id"]]
    p_btyd = btyd_columns[0][f"btyd_p_no_order_{CHURN_H}d"].to_numpy()
    p_churn = blend_churn_probabilities(models.churn.predict_proba(scored[models.churn.feature_names_]), p_btyd, 0.5)
    np.testing.assert_allclose(ours["p_churn"].to_numpy(), p_churn, rtol=1e-9)
    revenue = models.value.predict(scored[models.value.feature_names_])["expected_revenue"].to_numpy()
    revenue_btyd = btyd_columns[1][f"btyd_expected_revenue_{VALUE_H}d"].to_numpy()
    anchored = revenue * anchor_factor(revenue, revenue_btyd)
    expected = np.where(anchored > 0, blend_values(anchored, revenue_btyd, 0.25), anchored)
    np.testing.assert_allclose(ours["expected_revenue"].to_numpy(), expected, rtol=1e-9)
    assert (anchored != revenue).any() and (expected != anchored).any()
    # the stage timings are timings, not further tables a sink would try to publish
    assert set(run.tables) <= {"drift", "account_grades"} and all(isinstance(t, pa.Table) for t in run.tables.values())
    assert run.timings and all(isinstance(v, float) for v in run.timings.values())


def test_champions_reading_btyd_columns_need_the_population_inputs(world, tmp_path):
    models, features, _ = world
    with pytest.raises(BtydInputsNeededError, match="btyd_inputs"):
        score_run([features], models, SETTINGS, tmp_path, run_id="r1", as_of=SCORING.date())


def test_the_run_keeps_each_customers_raw_scores_and_base_values_for_the_changes(world, tmp_path):
    """What serving/changes.py splits exactly: raw = base + every contribution, base the same for every customer."""
    from models.explain import contributions

    models, features, inputs = world
    run = score_run([features], models, SETTINGS, tmp_path, run_id="r1", as_of=SCORING.date(), btyd_inputs=lambda: inputs)
    # the stage timings are no further table to publish
    assert all(isinstance(t, pa.Table) for t in run.tables.values()) and "predict" in run.timings
    numbers = run.numbers.to_pandas().set_index("customer_id")
    reference = BtydFeatures(CHURN_H, max_fit_rows=BTYD_FIT_ROWS).fit(inputs)
    scored = features.loc[has_history(features)].reset_index(drop=True)
    btyd_columns = [reference.with_horizon(h).transform(scored) for h in (CHURN_H, VALUE_H)]
    scored = pd.concat([scored, btyd_columns[0], btyd_columns[1].drop(columns=["btyd_p_alive"])], axis=1)
    ours = numbers.loc[scored["customer_id"]]
    X_churn, X_value = scored[models.churn.feature_names_], scored[models.value.feature_names_]
    np.testing.assert_allclose(ours["churn_raw"].to_numpy(), models.churn.risk_sign * models.churn.predict_raw(X_churn), rtol=1e-9)
    np.testing.assert_allclose(ours["value_raw"].to_numpy(), models.value.predict_raw(X_value), rtol=1e-9)
    contrib = contributions(models.churn.booster_, X_churn)
    np.testing.assert_allclose(ours["churn_base"].to_numpy(), models.churn.risk_sign * contrib[:, -1])
    assert ours["churn_base"].nunique() == 1 and ours["value_base"].nunique() == 1
    prospects = numbers.drop(index=scored["customer_id"])
    assert len(prospects) and prospects["churn_raw"].isna().all()
