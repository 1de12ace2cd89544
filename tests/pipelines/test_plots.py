"""Evaluation plots: the SHAP beeswarm shows the features that matter most, most important on top."""

import numpy as np
import pandas as pd

from pipelines import plots


def test_beeswarm_lists_features_by_mean_absolute_contribution():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"small": rng.normal(size=400), "large": rng.normal(size=400),
                      "region": pd.Categorical(rng.choice(["north", "south"], 400)),
                      "middle": rng.normal(size=400)})
    X.loc[:10, "small"] = np.nan  # missing values are drawn, not dropped
    contrib = np.column_stack([X["small"].fillna(0) * 0.1, X["large"] * 3.0, np.zeros(400),
                               X["middle"] * 1.0, np.full(400, 0.5)])  # last column: bias
    fig = plots.shap_beeswarm(contrib, X, max_display=3)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[::-1] == ["large", "middle", "small"]  # top of the plot = highest tick
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert points == 3 * 400
