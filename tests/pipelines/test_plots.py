"""SHAP plots of a training run: shap's beeswarm and waterfall, drawn from the project's own contributions."""

import numpy as np
import pandas as pd
import pytest

from pipelines import plots


@pytest.fixture(scope="module")
def explained():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"small": rng.normal(size=400), "large": rng.normal(size=400),
                      "region": pd.Categorical(rng.choice(["north", "south"], 400)),
                      "middle": rng.normal(size=400)})
    X.loc[:10, "small"] = np.nan  # missing values are drawn, not dropped
    contrib = np.column_stack([X["small"].fillna(0) * 0.1, X["large"] * 3.0, np.zeros(400),
                               X["middle"] * 1.0, np.full(400, 0.5)])  # last column: bias
    return contrib, X


def test_the_explanation_holds_the_contributions_bias_and_feature_values(explained):
    contrib, X = explained
    explanation = plots.shap_explanation(contrib, X)
    assert explanation.values.shape == (400, 4)
    assert explanation.values[:, 1] == pytest.approx(X["large"].to_numpy() * 3.0)
    assert explanation.base_values == pytest.approx(np.full(400, 0.5))
    assert explanation.feature_names == ["small", "large", "region", "middle"]
    # colours come from numbers (a category as its code, a missing value as NaN), labels from the values
    assert np.isnan(explanation.data[0, 0]) and explanation.data[0, 2] in (0.0, 1.0)
    assert explanation.display_data[0, 2] in ("north", "south")


def test_beeswarm_lists_features_by_mean_absolute_contribution(explained):
    contrib, X = explained
    fig = plots.shap_beeswarm(plots.shap_explanation(contrib, X), max_display=3)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[::-1] == ["large", "middle", "Sum of 2 other features"]  # top of the plot = highest tick
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert points == 3 * 400


def test_the_waterfall_shows_the_customer_with_the_highest_output(explained):
    contrib, X = explained
    top = int(np.argmax(contrib.sum(axis=1)))
    fig = plots.shap_figures(contrib, X)["shap_waterfall"]
    labels = {t.get_text() for t in fig.axes[0].get_yticklabels()}
    assert f"{X['large'].iloc[top]:.3f} = large" in labels
    assert f"{X['region'].iloc[top]} = region" in labels
    bar_texts = {t.get_text().replace("\u2212", "-") for t in fig.axes[0].texts}
    assert f"+{contrib[top, 1]:.2f}" in bar_texts
