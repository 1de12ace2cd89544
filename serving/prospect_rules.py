"""Which prospects are potential accounts: the `prospects.potential` rule (docs/PROSPECTS.md).

Apart from serving/prospects.py so that reading a configuration loads no model library.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class PotentialRule(BaseModel):
    """Which prospects are `potential` accounts: expected value (p_first_order x prospect_value) high enough.

    `min_expected_value` (money over the value horizon) when the business has such a figure,
    e.g. what a new account must bring to pay for the sales effort; otherwise the `top_share`
    of the run's prospects with the highest expected value, a share a sales team can work.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_expected_value: Annotated[float, Field(ge=0)] | None = None
    top_share: Annotated[float, Field(gt=0, le=1)] = 0.2
