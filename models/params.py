"""Typed, frozen parameter objects for the churn and value models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CalibrationMethod = Literal["auto", "isotonic", "sigmoid", "none"]
ChurnObjective = Literal["binary", "poisson"]
ValueObjective = Literal["tweedie", "l2", "log_l2"]
RevenueModel = Literal["direct", "frequency_severity"]


class TreeParams(BaseModel):
    """LightGBM size and training settings shared by every model.

    Defaults keep exact TreeSHAP cheap: models/treeshap.py explains trees of at most 10 splits
    from per-tree tables (cost ~ trees x (splits + features) per row); bigger trees fall back to
    LightGBM's pred_contrib, whose cost grows with trees x leaves x depth^2 (~18x more here).
    Measured on a synthetic 100k x 60 matrix (tests/models/bench_models.py sizes):
    depth 4 / 7 leaves / learning rate 0.2 / cap 150 explained 100k rows in about 7.5
    CPU-seconds (churn, 101 trees) against 53 for depth 4 / 15 leaves / 0.05 / 300,
    with the same validation AUC and Gini (within 0.002). Early stopping on the
    out-of-time snapshot picks the number of trees under the cap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_estimators: int = Field(150, ge=1, description="cap on boosting rounds")
    learning_rate: float = Field(0.2, gt=0, le=1)
    num_leaves: int = Field(7, ge=2)
    max_depth: int = Field(4, ge=1, description="hard depth limit; keeps trees within the fast TreeSHAP path")
    min_child_samples: int = Field(50, ge=1)
    subsample: float = Field(0.8, gt=0, le=1)
    subsample_freq: int = Field(1, ge=0)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    early_stopping_rounds: int = Field(20, ge=1)
    num_threads: int = Field(2, ge=1)
    seed: int = 42
    # Averaging boosters that differ only in their sampling seeds lowers the variance that a
    # single seed leaves in the scores (on the CDNOW backtest one seed to the next moved mean
    # Gini by up to 0.005); it multiplies training and TreeSHAP time by the same factor.
    ensemble_size: int = Field(
        1, ge=1, le=20, description="boosters per model, differing in bagging/feature seeds, averaged in raw score"
    )
    max_bin: int = Field(255, ge=2, description="histogram bins per feature (LightGBM max_bin)")
    # LightGBM's default samples 200k rows to find bin edges; 50k cost less and moved
    # validation AUC and Gini by < 0.0003 on the demo data (benchmarks/results/training.md).
    bin_construct_sample_cnt: int = Field(
        50_000, ge=1000, description="rows sampled to find bin edges (LightGBM)"
    )

    @model_validator(mode="after")
    def _leaves_fit_depth(self) -> TreeParams:
        """Reject a leaf count the depth limit can never reach."""
        if self.num_leaves > 2**self.max_depth:
            raise ValueError(
                f"num_leaves={self.num_leaves} exceeds 2**max_depth={2**self.max_depth}: "
                "lower num_leaves or raise max_depth"
            )
        return self


class ChurnParams(TreeParams):
    """Parameters of the churn model and its calibration."""

    # poisson was chosen for CDNOW on its pre-1998 backtest (benchmarks/cdnow/backtest.md, design
    # steps 6 and 7): the count keeps more of each row's outcome than the 0/1 label.
    objective: ChurnObjective = Field(
        "binary",
        description="binary: classify no order in the horizon; poisson: model the order days in the "
        "horizon (label_churn_order_days), p_churn = P(no order) = exp(-expected order days)",
    )
    class_weighting: bool = Field(
        False, description="reweight classes (is_unbalance); worsens calibration"
    )
    early_stopping_metric: Literal["auto", "binary_logloss", "auc"] = Field(
        "auto", description="auto: auc with class weighting (reweighted log-loss stops too early)"
    )
    calibration: CalibrationMethod = Field(
        "auto", description="auto: pick none/isotonic/sigmoid by cross-fitted Brier on validation"
    )
    calibration_folds: int = Field(2, ge=2, description="cross-fitting folds on the validation set")
    calibration_min_ece_gain: float = Field(
        0.002, ge=0, description="auto applies calibration only if cross-fitted ECE drops by this"
    )
    ece_bins: int = Field(10, ge=2)

    @model_validator(mode="after")
    def _classifier_settings_need_the_classifier(self) -> ChurnParams:
        """Refuse classifier-only settings with the count objective instead of ignoring them."""
        if self.objective == "poisson" and (self.class_weighting or self.early_stopping_metric != "auto"):
            raise ValueError(
                "class_weighting and early_stopping_metric apply to objective binary only; the poisson "
                "objective stops on Poisson deviance and has no classes to weight"
            )
        return self


class ValueParams(TreeParams):
    """Parameters of the revenue, margin, cost-to-serve and interval models."""

    objective: ValueObjective = Field(
        "tweedie", description="loss for revenue/margin/cost; tweedie suits zero-inflated spend"
    )
    tweedie_variance_power: float = Field(1.5, gt=1, lt=2)
    # frequency_severity was measured on the CDNOW backtest (benchmarks/cdnow/backtest.md, design
    # step 9); it needs label_value_order_days in the training set.
    revenue_model: RevenueModel = Field(
        "direct",
        description="direct: one booster of horizon revenue (objective); frequency_severity: a Poisson booster of "
        "the order days in the value horizon plus a Gamma booster of revenue per order day (buyers only), "
        "added on the log scale into one booster, so expected revenue = order days x revenue per order day, "
        "times one factor that sets the training rows' total to their net revenue",
    )
    interval_quantiles: tuple[float, float] = (0.1, 0.9)
    conformalize_interval: bool = Field(
        True, description="widen/narrow the quantile band with CQR on the validation set"
    )
    interval_folds: int = Field(2, ge=2, description="cross-fitting folds for honest coverage")
    interval_num_leaves: int = Field(7, ge=2, description="quantile models are never explained")
    interval_n_estimators: int = Field(150, ge=1)
    # Quantile boosters cost ~2x a Tweedie booster per row and are conformalised on the full
    # validation snapshot afterwards; on 214k training rows a 100k sample saved 6 of 55 CPU s
    # and moved the honest coverage from 0.854 to 0.856 (benchmarks/results/training.md).
    interval_max_rows: int | None = Field(
        100_000, ge=1000, description="train the quantile models on a seeded sample of this many rows"
    )

    @model_validator(mode="after")
    def _quantiles_ordered(self) -> ValueParams:
        """Reject an interval whose bounds are not 0 < low < high < 1."""
        low, high = self.interval_quantiles
        if not 0 < low < high < 1:
            raise ValueError(
                f"interval_quantiles={self.interval_quantiles} must satisfy 0 < low < high < 1"
            )
        return self
