"""BG/NBD + Gamma-Gamma outputs as features at both label horizons, from training to the published scores."""

from __future__ import annotations

from datetime import date

import pytest

from demo import generate_demo_data, write_demo_data

pytestmark = pytest.mark.slow

AS_OF = "2026-07-01"


@pytest.fixture(scope="module")
def run(tmp_path_factory, prefect_harness):
    from pipelines.config import DEFAULT_CONFIG
    from pipelines.flows import retrain_and_score_flow

    root = tmp_path_factory.mktemp("btyd-e2e")
    write_demo_data(generate_demo_data(400, seed=11, end=date(2026, 6, 30)), root / "data", "csv")
    config = (DEFAULT_CONFIG.read_text().replace("design: search", "design: fixed")
              .replace("  btyd: false", "  btyd: true"))
    (root / "config.yaml").write_text(config)
    (root / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, config=str(root / "config.yaml"))
    mp.undo()


def test_models_reading_both_horizons_score_every_customer(run):
    """The churn model reads the 90-day BTYD columns and the value model the 365-day ones; btyd_p_alive,
    the same at every horizon, once (twice, scoring stopped on a duplicated column)."""
    from pipelines import tracking

    churn, value = (tracking.load_champion(kind).model.feature_names_ for kind in ("churn", "value"))
    assert "btyd_p_no_order_90d" in churn and "btyd_expected_revenue_365d" in value
    assert churn.count("btyd_p_alive") == 1 and value.count("btyd_p_alive") == 1
    assert run["published"]["rows"] > 0
