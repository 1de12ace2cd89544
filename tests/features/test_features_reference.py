"""Cross-check of the Ibis features against the slow, obvious pandas reference on generated data."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from features.build import FeatureSpec, build_features
from features.tables import tables_from_frames
from tests.features.conftest import random_frames
from tests.features.reference import (
    reference_payment_features,
    reference_season_shares,
    reference_service_features,
    reference_transaction_features,
)

T = datetime(2024, 7, 1)
# Season horizons as the default config gives them (90, 365) and one more (180); 365 builds nothing.
SPEC = FeatureSpec(season_horizons_days=(90, 180, 365))


def test_features_match_the_slow_reference_on_generated_data(con):
    frames = random_frames(250, seed=7, start=datetime(2021, 6, 1), end=datetime(2024, 12, 31))
    _, tables = tables_from_frames(frames, con)
    built = build_features(tables, T, SPEC).set_index("customer_id")
    reference = (
        reference_transaction_features(frames["transactions"], T, SPEC.windows_days, seasons=SPEC.season_horizons_days)
        .assign(**reference_season_shares(frames["transactions"], T, SPEC.season_horizons_days))
        .merge(reference_payment_features(frames["invoices"], T, SPEC.windows_days), on="customer_id", how="left")
        .merge(reference_service_features(frames["interactions"], T, SPEC.windows_days), on="customer_id", how="left")
        .set_index("customer_id")
    )
    assert list(built.index) == list(reference.index)
    # Customers without invoices or interactions have true zero amounts and counts.
    zero_filled = [c for c in reference.columns if c.endswith("_amount") and "invoice" in c or c == "overdue_open_amount"]
    zero_filled += [c for c in reference.columns if c.startswith(("ticket_", "complaint_", "interaction_", "service_cost"))]
    reference[zero_filled] = reference[zero_filled].fillna(0)
    mismatched = {
        column: int((~np.isclose(built[column].astype(float), reference[column].astype(float), rtol=1e-9, atol=1e-6, equal_nan=True)).sum())
        for column in reference.columns
    }
    assert {c: n for c, n in mismatched.items() if n} == {}
    # The generated data exercises the features: not everything is null or zero.
    assert built["order_gap_std_days"].notna().mean() > 0.5
    assert (built["return_count_365d"] > 0).any() and (built["days_late_max_90d"] > 0).any()
    assert (built["order_days_next_180d_year_ago"] > 1).any() and built["season_share_next_90d"].notna().all()
    assert {"revenue_sum_next_90d_year_ago", "season_share_next_180d"} <= set(reference.columns)
