"""The design menu: candidate model designs compared out of time, and the rule that picks one.

A user with new data has no hand-tuned configuration. At training time custscore fits a small,
fixed menu of designs, scores each on the out-of-time validation snapshots, and keeps the one
the rule below picks. The menu and the rule are fixed here, before any comparison, so the
choice is reproducible and cannot be tuned on the data it is judged on. Where the history holds
them, the candidates train on snapshots one horizon before the validation ones: scores meet
customers one horizon after the latest training snapshot, and the comparison should see what
that gap does to each design (features/training_set.py `search_snapshot_dates`).

Menu (in this order; earlier = simpler):

- churn: feature set x objective: `all` / `all + BG/NBD outputs` / `tenure-relative` columns,
  with the `binary` classifier or the `poisson` count model (p_churn = P(no order)).
- value: feature set `all` / `all + BG/NBD outputs` / `tenure-relative` columns.
- then, for the chosen model, BG/NBD's share in a blend with BG/NBD + Gamma-Gamma fitted on
  the same validation snapshot (models/blend.py): 0, 0.25, 0.5.

Rule:

1. Each candidate's headline metric on validation (churn ROC-AUC, value normalized Gini). The
   best is found; every candidate within `TIE_TOLERANCE` of it counts as tied, and the earliest
   tied one in menu order wins (the simpler design unless the richer one is clearly better).
2. Blend weight: among the weights whose validation Brier (churn) is no worse than the
   unblended model's by more than `BRIER_TOLERANCE`, the best headline metric wins, ties (within
   `TIE_TOLERANCE`) to the smaller weight. Value blends are judged on Gini alone.

"Tenure-relative" columns keep their meaning as a population ages (recency, rates per month of
tenure, spend per order, the customer's own gap), plus every column from outside the
transactions family (payments, service, attributes) and the seasonal columns: where the scored
customers are older than the training snapshots, trees cannot extrapolate lifetime totals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from models.blend import blend_churn_probabilities, blend_values
from models.metrics import churn_metrics, normalized_gini

FeatureVariant = Literal["all", "all_btyd", "tenure_relative"]

TIE_TOLERANCE = 0.001
BRIER_TOLERANCE = 0.001
BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5)

TENURE_RELATIVE_CORE: tuple[str, ...] = (
    "days_since_last_order",
    "recency_over_tenure",
    "recency_over_gap_mean",
    "order_gap_mean_days",
    "order_days_per_month_lifetime",
    "revenue_per_month_lifetime",
    "revenue_mean_per_order_lifetime",
    "repeat_revenue_mean_per_order_day_lifetime",
)
# Column prefixes of the families whose values do not accumulate with tenure.
_NON_TRANSACTION_PREFIXES: tuple[str, ...] = (
    "invoice_", "days_late_", "overdue_", "open_invoice_", "collection_rate_", "dso_",
    "ticket_", "complaint_", "service_cost_", "interaction_", "attr_", "days_since_signup",
    "season_share_",
)
_SEASONAL_MARKERS: tuple[str, ...] = ("_year_ago",)


@dataclass(frozen=True)
class Candidate:
    """One design of the menu: a name, a feature variant and (churn only) an objective."""

    name: str
    features: FeatureVariant
    objective: str | None = None


CHURN_MENU: tuple[Candidate, ...] = (
    Candidate("all_binary", "all", "binary"),
    Candidate("btyd_binary", "all_btyd", "binary"),
    Candidate("all_poisson", "all", "poisson"),
    Candidate("btyd_poisson", "all_btyd", "poisson"),
    Candidate("tenure_relative_poisson", "tenure_relative", "poisson"),
)
VALUE_MENU: tuple[Candidate, ...] = (
    Candidate("all", "all"),
    Candidate("btyd", "all_btyd"),
    Candidate("tenure_relative", "tenure_relative"),
)


def is_btyd_column(name: str) -> bool:
    """A BG/NBD + Gamma-Gamma output column (models/btyd_columns.py)."""
    return name.startswith("btyd_")


def is_tenure_relative(name: str) -> bool:
    """A column whose meaning does not grow with the customer's tenure."""
    return (name in TENURE_RELATIVE_CORE or name.startswith(_NON_TRANSACTION_PREFIXES)
            or any(marker in name for marker in _SEASONAL_MARKERS))


def candidate_columns(candidate: Candidate, names: Sequence[str]) -> list[str]:
    """The feature columns a candidate uses, in the order of `names` (which may hold BTYD columns)."""
    if candidate.features == "all":
        return [n for n in names if not is_btyd_column(n)]
    if candidate.features == "all_btyd":
        return list(names)
    return [n for n in names if is_tenure_relative(n)]


def available(menu: Sequence[Candidate], names: Sequence[str]) -> list[Candidate]:
    """The candidates that can be fitted on these columns (BTYD outputs present, tenure-relative columns found)."""
    has_btyd = any(is_btyd_column(n) for n in names)
    out = []
    for c in menu:
        if c.features == "all_btyd" and not has_btyd:
            continue
        if c.features == "tenure_relative" and len(candidate_columns(c, names)) < 3:
            continue
        out.append(c)
    return out


def pick_index(metrics: Sequence[float], tolerance: float = TIE_TOLERANCE) -> int:
    """Index of the earliest entry within `tolerance` of the best finite metric (higher is better)."""
    finite = [m for m in metrics if m is not None and math.isfinite(m)]
    if not finite:
        return 0
    best = max(finite)
    return next(i for i, m in enumerate(metrics) if m is not None and math.isfinite(m) and m >= best - tolerance)


def pick_blend_weight(weights: Sequence[float], metrics: Sequence[float], briers: Sequence[float] | None = None,
                      brier_tolerance: float = BRIER_TOLERANCE, tolerance: float = TIE_TOLERANCE) -> int:
    """Index of the blend weight chosen by rule 2 of the module docstring (weights in ascending order)."""
    allowed = list(range(len(weights)))
    if briers is not None:
        reference = briers[0]
        allowed = [i for i in allowed if not math.isfinite(reference) or briers[i] <= reference + brier_tolerance]
    chosen = pick_index([metrics[i] for i in allowed], tolerance)
    return allowed[chosen]


@dataclass
class DesignChoice:
    """What the search compared and chose, as plain data for MLflow and the run summary."""

    kind: str
    candidates: list[dict]
    chosen: str
    blend_weights: list[dict]
    blend_weight: float
    rule: str
    # Whether the candidates trained on snapshots a horizon before validation, as at scoring.
    gap_matched: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line: the chosen design and blend."""
        where = "validated a horizon after training" if self.gap_matched else "validated next to training"
        return f"{self.chosen}, BG/NBD share {self.blend_weight:g} ({where})"


def with_churn_blend(choice: DesignChoice, y_val: np.ndarray, p_val: np.ndarray,
                     reference: np.ndarray | None) -> DesignChoice:
    """The choice with BG/NBD's share chosen from the validation probabilities blended at each menu weight.

    Unchanged when there is no BG/NBD reference to blend with.
    """
    if reference is None:
        return choice
    rows = []
    for w in BLEND_WEIGHTS:
        m = churn_metrics(y_val, blend_churn_probabilities(p_val, reference, w))
        rows.append({"weight": w, "roc_auc": m["roc_auc"], "brier": m["brier"]})
    i = pick_blend_weight(BLEND_WEIGHTS, [r["roc_auc"] for r in rows], [r["brier"] for r in rows])
    return replace(choice, blend_weights=rows, blend_weight=BLEND_WEIGHTS[i])


def with_value_blend(choice: DesignChoice, y_val: np.ndarray, pred_val: np.ndarray,
                     reference: np.ndarray | None) -> DesignChoice:
    """The choice with BG/NBD's share chosen from the validation values blended at each menu weight (as churn)."""
    if reference is None:
        return choice
    rows = [{"weight": w, "normalized_gini": normalized_gini(y_val, blend_values(pred_val, reference, w))}
            for w in BLEND_WEIGHTS]
    i = pick_blend_weight(BLEND_WEIGHTS, [r["normalized_gini"] for r in rows])
    return replace(choice, blend_weights=rows, blend_weight=BLEND_WEIGHTS[i])


RULE_TEXT = (
    "highest validation headline metric (churn ROC-AUC, value normalized Gini); candidates within "
    f"{TIE_TOLERANCE} of the best tie and the earliest in menu order wins; blend weight from {BLEND_WEIGHTS} "
    f"by the same rule, churn weights only where validation Brier is within {BRIER_TOLERANCE} of the unblended"
)
