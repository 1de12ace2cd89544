"""Drift in real runs: measured against the champions' training reference, logged, and acted on (hold, retrain)."""

from __future__ import annotations

from datetime import date

import pytest

from demo import generate_demo_data, write_demo_data
from serving.drift import DriftSettings
from tests.pipelines.flow_home import FIXED_DESIGN, config_file, module_home

pytestmark = pytest.mark.slow

N_CUSTOMERS = 1200
FIRST_AS_OF = "2026-05-01"
LATER_AS_OF = "2026-07-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=5, end=date(2026, 6, 30)), root / "data", "parquet")
    return root


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    yield from module_home(world)


def config(root, name: str, **drift) -> str:
    """The default config with a fixed design and the `monitoring.drift` values given (thresholds low enough to call any shift severe)."""
    return config_file(root, name, FIXED_DESIGN, *((rf"(\n    {key}: )\S+", rf"\g<1>{value}") for key, value in drift.items()))


@pytest.fixture(scope="module")
def first_run(world, home):
    from pipelines.flows import retrain_and_score_flow

    return retrain_and_score_flow(data=str(world / "data"), as_of=FIRST_AS_OF, config=config(world, "default"), retrain=False)


def store(home):
    from serving.store import ScoreStore

    return ScoreStore(home / "store")


def test_a_run_publishes_one_drift_row_per_model_feature_and_score(first_run, home):
    from pipelines import tracking

    table = store(home).read_table("drift")
    features = set(tracking.load_champion("churn").model.feature_names_) | set(tracking.load_champion("value").model.feature_names_)
    assert set(table.loc[table["kind"] == "feature", "name"]) == features
    assert table.loc[table["kind"] == "score", "name"].tolist() == ["p_churn", "expected_revenue"]
    assert set(table["run_id"]) == {first_run["published"]["run_id"]}
    assert table["psi"].ge(0).all() and set(table["level"]) <= {"ok", "warn", "severe", "constant"}
    assert first_run["published"]["drift"]["measured"]
    # Named in the summary: every feature beyond psi_warn appears in a warning line of the run (not the
    # ignored tenure clocks, nor a constant feature, whose PSI measures the date).
    named = table["level"].isin(["warn", "severe"]) & ~table["name"].isin(DriftSettings().ignore)
    for name in table.loc[named, "name"]:
        assert any(f"{name} (" in line for line in first_run["warnings"]), name


def test_the_drift_is_logged_to_mlflow_with_the_scoring_run_and_model_versions(first_run, home):
    import mlflow

    from pipelines.drift import MONITORING_EXPERIMENT

    run_id = first_run["published"]["run_id"]
    runs = mlflow.search_runs(experiment_names=[MONITORING_EXPERIMENT], filter_string=f"tags.scoring_run_id = '{run_id}'",
                              output_format="list")
    assert len(runs) == 1
    logged = runs[0].data
    models = first_run["published"]["models"]
    assert (logged.tags["churn_model_version"], logged.tags["value_model_version"]) == (models["churn"]["version"],
                                                                                         models["value"]["version"])
    table = store(home).read_table("drift")
    assert logged.metrics["psi.p_churn"] == pytest.approx(float(table.set_index("name").loc["p_churn", "psi"]))


def test_severe_drift_with_hold_publishes_nothing_and_the_previous_run_stays(first_run, world, home):
    from pipelines.drift import DriftHoldError
    from pipelines.flows import score_flow

    before = store(home).list_runs()["run_id"].tolist()
    with pytest.raises(DriftHoldError, match=r"^severe drift \(PSI above 1e-06\) in .+: monitoring.drift.on_severe is hold, "
                                              "so nothing was published"):
        score_flow(data=str(world / "data"), as_of=LATER_AS_OF,
                   config=config(world, "hold", psi_warn=1e-6, psi_severe=1e-6, on_severe="hold"))
    assert store(home).list_runs()["run_id"].tolist() == before
    assert store(home).latest_run().run_id == first_run["published"]["run_id"]


def test_severe_drift_with_retrain_in_a_score_only_run_publishes_and_says_the_retrain_run_retrains(first_run, world, home):
    from pipelines.flows import score_flow

    result = score_flow(data=str(world / "data"), as_of=LATER_AS_OF,
                        config=config(world, "retrain", psi_warn=1e-6, psi_severe=1e-6, on_severe="retrain"))
    assert store(home).latest_run().run_id == result["published"]["run_id"]
    assert any("this score-only run published with the current champions" in line for line in result["warnings"])


def test_severe_drift_with_retrain_in_the_main_job_trains_before_it_publishes(first_run, world, home):
    from pipelines.flows import retrain_and_score_flow

    result = retrain_and_score_flow(data=str(world / "data"), as_of=LATER_AS_OF, retrain=False,
                                    config=config(world, "retrain", psi_warn=1e-6, psi_severe=1e-6, on_severe="retrain"))
    # champions existed: only the drift made it train (payment risk and prospects too: the data has invoices and leads)
    assert set(result["training"]) == {"churn", "value", "payment", "prospect"}
    assert result["published"]["drift"]["warnings"][0].startswith("severe drift in ")
    assert "retraining before publishing" in result["published"]["drift"]["warnings"][0]
    assert any("against the champions after this run's training; published with them" in line for line in result["warnings"])
    assert store(home).latest_run().run_id == result["published"]["run_id"]
