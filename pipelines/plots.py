"""Evaluation plots logged with every training run (matplotlib, Agg backend, no screen).

matplotlib is imported when the first plot is drawn, not with this module: importing it
costs about 2 CPU s, and a scoring run, which imports this module through the training
code, draws nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
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


def shap_beeswarm(contrib: np.ndarray, X: pd.DataFrame, max_rows: int = 5000, max_display: int = 15) -> Figure:
    """SHAP beeswarm of per-customer contributions (last column of `contrib` is the bias).

    Drawn with matplotlib alone, as shap.plots.beeswarm draws it (features by mean |SHAP|,
    one row of jittered points each, coloured by the feature's value from low to high):
    importing shap costs about 10 CPU seconds per training process for one figure.
    """
    rows = np.random.default_rng(0).permutation(len(X))[:max_rows]
    values = contrib[rows, : X.shape[1]]
    data = X.iloc[rows].apply(lambda c: c.cat.codes if isinstance(c.dtype, pd.CategoricalDtype) else c)
    data = data.to_numpy(dtype=float)
    order = np.argsort(-np.abs(values).mean(axis=0))[:max_display]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    jitter = np.random.default_rng(1)
    for position, feature in enumerate(order[::-1]):
        ax.scatter(values[:, feature], position + _beeswarm_offsets(values[:, feature], jitter),
                   c=_rank_colour(data[:, feature]), cmap="coolwarm", vmin=0, vmax=1, s=6, alpha=0.7,
                   linewidths=0, rasterized=True)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(order)), [X.columns[i] for i in order[::-1]])
    ax.set(xlabel="SHAP value (impact on model output)", title="SHAP contributions (validation sample)")
    colour_bar = fig.colorbar(plt.cm.ScalarMappable(cmap="coolwarm"), ax=ax, ticks=[0, 1], aspect=40)
    colour_bar.ax.set_yticklabels(["low", "high"])
    colour_bar.set_label("feature value")
    fig.tight_layout()
    return fig


def _beeswarm_offsets(values: np.ndarray, rng: np.random.Generator, width: float = 0.4) -> np.ndarray:
    """Vertical offsets that spread points in proportion to how crowded their SHAP value is."""
    if values.size == 0 or np.ptp(values) == 0:
        return rng.uniform(-width, width, values.size) * 0.5
    counts, edges = np.histogram(values, bins=50)
    density = counts[np.clip(np.digitize(values, edges[1:-1]), 0, counts.size - 1)] / counts.max()
    return rng.uniform(-1, 1, values.size) * width * density


def _rank_colour(column: np.ndarray) -> np.ndarray:
    """Feature values as ranks in [0, 1] (NaN: 0.5), so outliers do not wash out the colours."""
    out = np.full(column.size, 0.5)
    finite = np.isfinite(column)
    if finite.sum() > 1:
        out[finite] = pd.Series(column[finite]).rank(pct=True).to_numpy()
    return out
