"""The run report's plots as PNG data URIs (matplotlib, Agg backend), so the HTML file needs no network.

Chinese labels need a font with CJK glyphs: `cjk_font` finds one through fontconfig (scripts/chromium.sh
installs WenQuanYi Micro Hei where none is present). Without one the plots keep English labels, so a
reader sees words, never empty boxes; the headings and captions around them are HTML text in Chinese.
"""

from __future__ import annotations

import base64
import functools
import io
import shutil
import subprocess
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.report_text import TEXT

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_DPI = 90  # small files: a report of ten plots stays well under a megabyte


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@functools.cache
def cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, registered with matplotlib (None: no such font)."""
    if shutil.which("fc-list") is None:
        return None
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file", "family"], capture_output=True, text=True,
                                timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    from matplotlib import font_manager

    for line in sorted(listed.splitlines()):
        path, _, families = line.partition(": ")
        if not path.endswith((".ttf", ".ttc", ".otf")):
            continue
        try:
            font_manager.fontManager.addfont(path.strip())
            return font_manager.FontProperties(fname=path.strip()).get_name()
        except (OSError, RuntimeError, ValueError):
            continue
    return None


def plot_words(lang: str) -> dict[str, str]:
    """The words for labels inside plots: the language asked for when its glyphs can be drawn, else English."""
    return TEXT[lang] if lang == "en" or cjk_font() else TEXT["en"]


def _styled(lang: str):
    plt = _pyplot()
    font = cjk_font() if lang != "en" else None
    families = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    return plt.rc_context({"font.family": "sans-serif", "font.sans-serif": families, "axes.unicode_minus": False})


def data_uri(fig: Figure) -> str:
    """The figure as an embedded PNG (data URI), closing it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_uri(png: bytes) -> str:
    """A PNG file's bytes (e.g. the calibration plot MLflow keeps) as a data URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pareto_points(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Share of customers (highest value first) against their cumulative share of all positive value.

    Customers with value <= 0 add nothing to the value (they are tier C), so the curve is flat over them.
    """
    v = np.sort(np.clip(values.fillna(0).to_numpy(dtype=float), 0, None))[::-1]
    total = v.sum()
    customers = np.arange(len(v) + 1) / max(len(v), 1)
    value = np.concatenate([[0.0], np.cumsum(v) / total]) if total > 0 else np.zeros(len(v) + 1)
    return customers, value


def pareto_curve(values: pd.Series, tier_shares: dict[str, float], cuts: tuple[float, float], lang: str) -> str:
    """The Pareto curve of value with the customers' share where tiers A and A+B end."""
    words = plot_words(lang)
    x, y = pareto_points(values)
    if len(x) > 2001:  # a million points draw the same line as two thousand, a hundred times slower
        keep = np.unique(np.linspace(0, len(x) - 1, 2001).round().astype(int))
        x, y = x[keep], y[keep]
    with _styled(lang):
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.plot(x, y, color="#1f5f99", lw=2)
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
        for key, share, cut, colour in (("tier_a", tier_shares["A"], cuts[0], "#2e7d32"),
                                        ("tier_b", tier_shares["A"] + tier_shares["B"], cuts[1], "#ef6c00")):
            ax.axvline(share, color=colour, ls="--", lw=1)
            ax.axhline(cut, color=colour, ls=":", lw=1)
            ax.annotate(words[key].format(share=share), (share, cut), xytext=(6, -14), textcoords="offset points",
                        color=colour, fontsize=9)
        ax.set(xlabel=words["pareto_x"], ylabel=words["pareto_y"], xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        return data_uri(fig)


def calibration_plot(predicted: np.ndarray, observed: np.ndarray, lang: str) -> str:
    """Observed churn rate against mean predicted p_churn per decile (the realised calibration)."""
    words = plot_words(lang)
    with _styled(lang):
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(4.6, 4.4))
        ax.plot([0, 1], [0, 1], ls="--", color="grey", label=words["perfect"])
        ax.plot(predicted, observed, marker="o", color="#1f5f99", label=words["calibration_realised"])
        ax.set(xlabel=words["predicted"], ylabel=words["observed"], xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        return data_uri(fig)


def distribution_plot(current: pd.Series, previous: pd.Series | None, column: str, previous_run: str | None,
                      lang: str) -> str:
    """This run's distribution of a score against the last run's, as overlaid histograms of shares."""
    words = plot_words(lang)
    now = current.dropna().to_numpy(dtype=float)
    before = previous.dropna().to_numpy(dtype=float) if previous is not None else np.array([])
    both = np.concatenate([now, before]) if before.size else now
    low, high = (np.quantile(both, [0.0, 0.99]) if column == "clv" else (0.0, 1.0)) if both.size else (0.0, 1.0)
    bins = np.linspace(low, high if high > low else low + 1, 31)
    with _styled(lang):
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
        if before.size:
            ax.hist(np.clip(before, bins[0], bins[-1]), bins=bins, weights=np.full(before.size, 1 / before.size),
                    color="#9e9e9e", alpha=0.6, label=words["last_run"].format(run=previous_run))
        ax.hist(np.clip(now, bins[0], bins[-1]), bins=bins, weights=np.full(now.size, 1 / max(now.size, 1)),
                histtype="step", lw=2, color="#1f5f99", label=words["this_run"])
        ax.set(xlabel=words[column], ylabel=words["share"])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        return data_uri(fig)


def psi_bars(drift: pd.DataFrame, lang: str, top: int = 15) -> str:
    """The features of highest PSI as horizontal bars, with the 0.1 and 0.25 marks."""
    words = plot_words(lang)
    rows = drift.nlargest(top, "psi").iloc[::-1]
    with _styled(lang):
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(rows) + 1.2))
        ax.barh(rows["feature"].astype(str), rows["psi"].astype(float), color="#1f5f99")
        for mark, colour in ((0.1, "#ef6c00"), (0.25, "#c62828")):
            ax.axvline(mark, color=colour, ls="--", lw=1)
        ax.set(xlabel=words["psi"])
        ax.tick_params(axis="y", labelsize=8)
        return data_uri(fig)


def reason_waterfall(customer: str, reasons: pd.DataFrame, p_churn: float, lang: str) -> str:
    """shap's waterfall of one customer's published churn reasons (contributions in the model's log-odds).

    The end point is the log-odds of the published p_churn; the start is that minus the reasons shown,
    so the bars add up to the published score (shap labels the start E[f(X)]; the caption says what it is).
    """
    import shap

    words = plot_words(lang)
    contributions = reasons["contribution"].to_numpy(dtype=float)
    p = float(np.clip(p_churn, 1e-6, 1 - 1e-6))
    end = float(np.log(p / (1 - p)))
    start = end - float(contributions.sum())
    explanation = shap.Explanation(
        values=contributions, base_values=start,
        data=np.array(reasons["value"].astype(str).tolist(), dtype=object),
        feature_names=reasons["feature"].astype(str).tolist())
    with _styled(lang):
        plt = _pyplot()
        shap.plots.waterfall(explanation, max_display=len(contributions) + 1, show=False)
        fig = plt.gcf()
        fig.set_size_inches(7.0, 0.45 * len(contributions) + 1.8)
        _relabel_start(fig, words["start_label"], start)
        fig.axes[0].set_title(f"{words['customer']} {customer}: p_churn {p:.0%}", fontsize=10)
        return data_uri(fig)


def _relabel_start(fig: Figure, label: str, start: float) -> None:
    """Name the waterfall's start for what it is here: the log-odds without the reasons shown.

    shap writes it as two mathtext ticks ($E[f(X)]$ and $ = value$) placed for that short symbol;
    mathtext has no CJK glyphs, so one plain-text tick replaces both.
    """
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        if any("E[f(X)]" in text for text in labels):
            ticks = ax.get_xticks()
            ax.set_xticks(ticks, [f"\n{label} = {start:.2f}".replace("-", "\u2212") if "E[f(X)]" in text else ""
                                  for text in labels])
