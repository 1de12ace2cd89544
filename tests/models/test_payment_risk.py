"""The payment-risk model and its rule baseline: the worst recent lateness, a binary LightGBM that recovers the demo's habits."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from models.baselines import payment_baseline
from models.model_files import file_sha256, read_model_file, write_model_file
from models.params import ChurnParams
from models.payment_risk import PaymentRiskModel


def test_the_baseline_is_the_worst_lateness_of_the_last_180_days_and_none_counts_as_never_late():
    X = pd.DataFrame({"days_late_max_90d": [5.0, 0.0, 1.0], "days_late_max_180d": [40.0, np.nan, 3.0]})
    assert payment_baseline(X).tolist() == [40.0, 0.0, 3.0]


def test_without_the_180_day_window_the_nearest_one_stands_in():
    X = pd.DataFrame({"days_late_max_90d": [5.0, 7.0], "days_late_max_365d": [50.0, 9.0]})
    assert payment_baseline(X).tolist() == [5.0, 7.0]  # 90 is 90 days from 180, 365 is 185


def test_without_payment_features_the_baseline_says_what_is_missing():
    with pytest.raises(KeyError, match="days_late_max_"):
        payment_baseline(pd.DataFrame({"revenue_sum_90d": [1.0]}))


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    late = rng.uniform(0, 60, n)
    return pd.DataFrame({"days_late_max_180d": late, "noise": rng.normal(size=n),
                         "label": (late + rng.normal(0, 10, n) > 35).astype(int)})


def test_the_model_is_binary_whatever_the_churn_objective_and_reads_back_from_its_file(tmp_path):
    train, valid = _frame(2000, 1), _frame(800, 2)
    names = ["days_late_max_180d", "noise"]
    model = PaymentRiskModel(ChurnParams(objective="poisson", n_estimators=40)).fit(
        train[names], train["label"], valid[names], valid["label"], names, reason_population=valid)
    assert model.objective_ == "binary" and model.risk_sign == 1.0
    assert list(model.drift_profile_["scores"]) == ["p_pay_late"]
    path = tmp_path / "model.skops"
    write_model_file(model, path)
    back = read_model_file(path, file_sha256(path), "custscore-payment v1")
    np.testing.assert_array_equal(back.predict_proba(valid[names]), model.predict_proba(valid[names]))


@pytest.mark.slow
def test_on_the_demo_world_the_model_beats_the_rule_out_of_time_and_ranks_the_true_habits():
    """Out of time on 2,000 demo customers: ROC-AUC above the worst-lateness rule, and the scored
    probabilities find the customers whose habit is to pay more than 30 days late (demo truth) and rise
    with the customer's usual days late. The target of 0.03 above the rule is held on the runs' own
    training sets (tests/pipelines/test_payment_end_to_end.py) and measured on the 5,000-customer demo."""
    import ibis

    from demo import generate_demo_data, generate_demo_truth
    from features.build import FeatureSpec, build_features
    from features.payment_labels import build_payment_training_set
    from features.tables import tables_from_frames
    from models.metrics import churn_metrics
    from models.splits import split_by_flag

    end = date(2026, 9, 30)
    frames = generate_demo_data(2000, seed=11, end=end)
    con = ibis.duckdb.connect()
    tables = tables_from_frames({k: v for k, v in frames.items() if k != "customers"}, con)[1]
    data_end = datetime(2026, 10, 1)
    frame = build_payment_training_set(tables, data_end, spec=FeatureSpec(), n_snapshots=5)
    train, valid = split_by_flag(frame)
    names = [c for c in frame.columns if c not in {"customer_id", "as_of", "is_validation"} and not c.startswith("label_")]
    model = PaymentRiskModel(ChurnParams()).fit(train[names], train["label_pay_late"], valid[names],
                                                valid["label_pay_late"], names)
    y = valid["label_pay_late"].to_numpy(dtype=float)
    model_auc = churn_metrics(y, model.validation_proba_)["roc_auc"]
    rule_auc = churn_metrics(y, payment_baseline(valid))["roc_auc"]
    # 0.799 against 0.770 on this world: 2,000 customers give a few hundred validation rows, too few to hold +0.03.
    assert model_auc > rule_auc, (model_auc, rule_auc)

    scored = build_features(tables, data_end, FeatureSpec())
    scored = scored.loc[scored["days_late_max_365d"].notna()]
    p = model.predict_proba(scored[names])
    truth = generate_demo_truth(2000, seed=11, end=end).set_index("customer_id").loc[scored["customer_id"]]
    habitual = (truth["p_pay_late_habit"] > 0.5).to_numpy(dtype=float)
    recovered = (churn_metrics(habitual, p)["roc_auc"], spearmanr(p, truth["pay_late_usual_days"]).statistic)
    print("payment model on the demo: ROC-AUC {:.3f} vs rule {:.3f}; habitual late payers found with ROC-AUC {:.3f}, "
          "Spearman with the usual days late {:.3f}".format(model_auc, rule_auc, *recovered))
    # 0.971 and 0.381 when written: habits far below 30 days differ little in risk, so the rank order there is loose
    assert recovered[0] > 0.9 and recovered[1] > 0.3
    con.disconnect()
