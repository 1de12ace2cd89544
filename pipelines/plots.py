"""Evaluation plots logged with every training run (matplotlib, Agg backend, no screen).

matplotlib and shap are imported when the first plot is drawn, not with this module: importing
them costs about 3 CPU s, and a scoring run, which imports this module through the training
code, draws nothing. The SHAP plots are shap's own, drawn from the project's exact contributions
(models/treeshap.py), not recomputed by shap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import shap
    from matplotlib.figure import Figure


def _pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def calibration_curve(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> Figure:
    """Observed churn rate against mean predicted probability, by equal-frequency bin."""
    order = np.argsort(p)
    bins = np.array_split(order, n_bins)
    mean_p = [p[b].mean() for b in bins if len(b)]
    rate = [y[b].mean() for b in bins if len(b)]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect")
    ax.plot(mean_p, rate, marker="o", label="model")
    ax.set(xlabel="mean predicted p_churn", ylabel="observed churn rate", title="Calibration (out of time)")
    ax.legend()
    return fig


def gain_chart(y: np.ndarray, scores: dict[str, np.ndarray], what: str) -> Figure:
    """Cumulative share of the target captured by the top x% of customers, per scorer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    share = np.linspace(0, 1, 101)
    total = y.sum() or 1.0
    for name, s in scores.items():
        captured = np.concatenate([[0.0], np.cumsum(y[np.argsort(-s, kind="stable")]) / total])
        idx = np.round(share * len(y)).astype(int)
        ax.plot(share, captured[idx], label=name)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="random")
    ax.set(xlabel="share of customers (highest score first)", ylabel=f"share of {what} captured",
           title=f"Gain chart: {what}")
    ax.legend()
    return fig


def decile_chart(actual: np.ndarray, predicted: np.ndarray, what: str) -> Figure:
    """Mean predicted against mean actual per decile of the prediction."""
    frame = pd.DataFrame({"actual": actual, "predicted": predicted})
    frame["decile"] = pd.qcut(frame["predicted"].rank(method="first"), 10, labels=range(1, 11))
    means = frame.groupby("decile", observed=True)[["actual", "predicted"]].mean()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(means))
    ax.bar(x - 0.2, means["predicted"], width=0.4, label="predicted")
    ax.bar(x + 0.2, means["actual"], width=0.4, label="actual")
    ax.set_xticks(x, [str(d) for d in means.index])
    ax.set(xlabel="decile of prediction (10 = highest)", ylabel=f"mean {what}", title=f"Deciles: {what}")
    ax.legend()
    return fig


def feature_importance(names: list[str], gains: np.ndarray, top: int = 20) -> Figure:
    """Total split gain per feature, largest first."""
    order = np.argsort(gains)[::-1][:top]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(order))))
    ax.barh([names[i] for i in order][::-1], gains[order][::-1])
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    return fig


def shap_explanation(contrib: np.ndarray, X: pd.DataFrame) -> shap.Explanation:
    """The project's exact contributions for the rows of `X` as a shap.Explanation (last column of
    `contrib` is the bias): values, base values, the features as numbers (categories as their codes)
    for colouring, and as they are for labels."""
    import shap

    numbers = X.apply(lambda c: c.cat.codes.where(c.notna()) if isinstance(c.dtype, pd.CategoricalDtype) else c)
    return shap.Explanation(values=contrib[:, : X.shape[1]], base_values=contrib[:, -1],
                            data=numbers.to_numpy(dtype=float), display_data=X.to_numpy(dtype=object),
                            feature_names=list(X.columns))


def shap_figures(contrib: np.ndarray, X: pd.DataFrame) -> dict[str, Figure]:
    """The beeswarm over the validation sample and the waterfall of its customer with the highest model output."""
    explanation = shap_explanation(contrib, X)
    return {"shap_beeswarm": shap_beeswarm(explanation),
            "shap_waterfall": shap_waterfall(explanation[int(np.argmax(contrib.sum(axis=1)))])}


def shap_beeswarm(explanation: shap.Explanation, max_rows: int = 5000, max_display: int = 15) -> Figure:
    """shap's beeswarm: features by mean |SHAP|, one row of points each, coloured by the feature's value.

    At most `max_rows` rows, drawn at random (the same ones on every run).
    """
    import shap

    rows = np.sort(np.random.default_rng(0).permutation(explanation.shape[0])[:max_rows])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    shap.plots.beeswarm(explanation[rows], max_display=max_display, ax=ax, show=False, plot_size=None)
    ax.set_title("SHAP contributions (validation sample)")
    fig.tight_layout()
    return fig


def shap_waterfall(explanation: shap.Explanation, max_display: int = 12) -> Figure:
    """shap's waterfall of one customer: from the model's base value to its output, one bar per feature."""
    import shap

    plt = _pyplot()
    fig = plt.figure()
    shap.plots.waterfall(explanation, max_display=max_display, show=False)
    fig.suptitle("SHAP waterfall: the validation customer with the highest model output")
    fig.tight_layout()
    return fig
