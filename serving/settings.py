"""What a scoring run is told: the `scoring:` section of the configuration and the run's terms.

`ScoringConfig` is the section of the YAML file as it is (pipelines/config.py composes it into
the root configuration). `ScoringSettings` is everything `score_run` needs besides the models:
that section, the label horizons, the discount rate, the segment and scorecard rules, each the config's
own object, so no setting is copied or renamed on the way.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from serving.drift import DriftSettings
from serving.scorecard import ScorecardRules
from serving.segments import SegmentRules


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BtydBlendConfig(_Frozen):
    # BG/NBD's share when scores are blended with it (models/blend.py); 0: the models alone;
    # null: the share the design search chose when the model was trained (0 with design fixed).
    churn_weight: Annotated[float, Field(ge=0, le=1)] | None = None
    value_weight: Annotated[float, Field(ge=0, le=1)] | None = None


class UnusualReasonsConfig(_Frozen):
    # A feature is a reason only where the customer's value lies beyond this percentile of the
    # model's reference population in the direction it pushes the score (serving/unusual.py);
    # null: every feature may be a reason, ranked by contribution alone.
    percentile: Annotated[int, Field(ge=50, le=100)] | None = 80


class ScoringConfig(_Frozen):
    chunk_size: Annotated[int, Field(gt=0)] = 50_000
    feature_partitions: Annotated[int, Field(ge=1, le=64)] = 1
    reasons_per_direction: Annotated[int, Field(ge=1, le=10)] = 3
    # One reason per fact: the window of a measure that pushes hardest, not the same measure over 90, 180 and 365 days.
    distinct_reasons: bool = True
    unusual_reasons: UnusualReasonsConfig = UnusualReasonsConfig()
    btyd_blend: BtydBlendConfig = BtydBlendConfig()


class ScoringSettings(_Frozen):
    """What one scoring run needs besides the models (`CustscoreConfig.scoring_settings()` builds it)."""

    value_horizon_days: Annotated[int, Field(gt=0)]
    annual_discount_rate: float
    churn_horizon_days: Annotated[int, Field(gt=0)] = 90
    scoring: ScoringConfig = ScoringConfig()
    segments: SegmentRules = SegmentRules()
    # PSI thresholds of the run's drift table (the `monitoring.drift` section).
    drift: DriftSettings = DriftSettings()
    scorecard: ScorecardRules = ScorecardRules()
    # Tolerance of the check that contributions add up to the raw score (relative to the largest one).
    additivity_atol: float = 1e-6
