"""The `payment_risk:` settings: the payment-risk label and the credit grades (docs/CREDIT.md).

Apart from serving/payment_risk.py so that reading a configuration loads no model library.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

CREDIT_GRADES: tuple[str, ...] = ("A", "B", "C", "D")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Probability = Annotated[float, Field(gt=0, lt=1)]


class CreditGradeThresholds(_Frozen):
    # p_pay_late from which a customer is graded B, C, D (below B: A). Increasing.
    B: Probability = 0.10
    C: Probability = 0.25
    D: Probability = 0.50

    @model_validator(mode="after")
    def _increasing(self) -> CreditGradeThresholds:
        if not self.B < self.C < self.D:
            raise ValueError(f"payment_risk.grade_thresholds must increase B < C < D, got B {self.B}, C {self.C}, "
                             f"D {self.D}; e.g. B 0.10, C 0.25, D 0.50")
        return self


class PaymentRiskSettings(_Frozen):
    """The `payment_risk:` section of the configuration (pipelines/config.py; docs/CREDIT.md)."""

    enabled: bool = True
    horizon_days: Annotated[int, Field(gt=0, le=730)] = 90
    late_days: Annotated[int, Field(ge=0, le=365)] = 30
    outcome_wait_days: Annotated[int, Field(ge=0, le=365)] = 60
    grade_thresholds: CreditGradeThresholds = CreditGradeThresholds()
