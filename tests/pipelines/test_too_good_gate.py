"""A model that looks too good to be true is registered but never promoted, with a warning that says why."""

from __future__ import annotations

import pytest

from pipelines import tracking

GAINS = {"days_since_last_order": 40.0, "order_count_90d": 35.0, "attr_region": 25.0}


def test_a_headline_metric_above_its_limit_blocks_promotion_and_names_metric_and_limit():
    warning = tracking.too_good_to_be_true("roc_auc", 0.991, 0.98, GAINS, 0.7)
    assert warning is not None and warning.startswith("validation roc_auc 0.9910 is above 0.98")
    decision = tracking.decide_promotion("roc_auc", 0.991, 0.80, None, too_good=warning)
    assert not decision.promote
    assert decision.reason == f"not promoted: {warning}"


def test_one_feature_carrying_most_of_the_gain_blocks_promotion_and_is_named():
    gains = {"days_since_last_order": 10.0, "attr_churned": 85.0, "order_count_90d": 5.0}
    warning = tracking.too_good_to_be_true("roc_auc", 0.955, 0.98, gains, 0.7)
    assert warning is not None and warning.startswith("feature attr_churned carries 85% of the total gain, above 0.7")
    assert not tracking.decide_promotion("roc_auc", 0.955, 0.80, 0.90, too_good=warning).promote


@pytest.mark.parametrize(("value", "gains", "metric_limit", "share_limit"), [
    (0.93, GAINS, 0.98, 0.7),            # a good model: 40% of the gain in its top feature
    (0.98, GAINS, 0.98, 0.7),            # at the limit is not above it
    (0.995, GAINS, None, None),          # both limits switched off
    (0.93, {"a": 0.0, "b": 0.0}, 0.98, 0.7),  # a stump without gain says nothing
])
def test_plausible_models_are_not_flagged(value, gains, metric_limit, share_limit):
    assert tracking.too_good_to_be_true("roc_auc", value, metric_limit, gains, share_limit) is None
    assert tracking.decide_promotion("roc_auc", value, 0.80, None, too_good=None).promote


def test_value_models_use_the_gini_limit_of_the_config():
    from pipelines.config import load_config
    from pipelines.training import _metric_limit

    limits = load_config().training.too_good.model_copy(update={"normalized_gini_above": 0.9, "roc_auc_above": 0.99})
    assert _metric_limit("value", limits) == 0.9 and _metric_limit("churn", limits) == 0.99
    warning = tracking.too_good_to_be_true("normalized_gini", 0.93, _metric_limit("value", limits), GAINS, None)
    assert warning is not None and "normalized_gini 0.9300 is above 0.9" in warning
