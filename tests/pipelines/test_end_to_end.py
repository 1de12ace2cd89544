"""The main job end to end on small generated data, under Prefect's test harness, MLflow in a temp folder."""

from __future__ import annotations

import json
import re
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from demo import generate_demo_data, write_demo_data
from serving.score_table import SCORE_COLUMNS

pytestmark = pytest.mark.slow

N_CUSTOMERS = 1500
AS_OF = "2026-07-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Demo data and an empty custscore home; MLflow and the store live in that home."""
    root = tmp_path_factory.mktemp("e2e")
    tables = generate_demo_data(N_CUSTOMERS, seed=11, end=date(2026, 6, 30))
    write_demo_data(tables, root / "data", "parquet")
    return root, tables


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    root, _ = world
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield root / "home"
    mp.undo()


@pytest.fixture(scope="module")
def first_run(world, home):
    from pipelines.flows import retrain_and_score_flow

    root, _ = world
    return retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, config=str(_small_config(root)), retrain=False)


def _small_config(root):
    """The default config with a smaller scoring chunk, so the chunked path runs several chunks."""
    from pipelines.config import DEFAULT_CONFIG

    text, replaced = re.subn(r"chunk_size: \d+", "chunk_size: 400", DEFAULT_CONFIG.read_text())
    assert replaced == 1, "configs/default.yaml should set scoring.chunk_size once"
    path = root / "config.yaml"
    path.write_text(text)
    (root / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    return path


def _store(home):
    from serving.store import ScoreStore

    return ScoreStore(home / "store")


def test_models_trained_beat_their_baselines_and_became_champions(first_run):
    training = first_run["training"]
    churn, value = training["churn"], training["value"]
    # Out of time on generated data: a real margin over the rule baselines.
    assert churn["metrics"]["roc_auc"] >= churn["baseline_metrics"]["roc_auc"] + 0.03
    assert value["metrics"]["normalized_gini"] >= value["baseline_metrics"]["normalized_gini"] + 0.02
    assert churn["promoted"] and value["promoted"]
    # Calibrated within a stated tolerance, and the value band near its nominal 80%.
    assert churn["metrics"]["ece"] <= 0.05
    assert 0.70 <= value["metrics"]["interval_coverage"] <= 0.95


def test_the_design_search_logged_every_candidate_and_its_choice(first_run, home):
    import mlflow

    from models.design import CHURN_MENU, VALUE_MENU

    for kind, menu, metric in (("churn", CHURN_MENU, "roc_auc"), ("value", VALUE_MENU, "normalized_gini")):
        outcome = first_run["training"][kind]
        run = mlflow.get_run(outcome["run_id"])
        chosen = run.data.params["design"]
        assert outcome["design"].startswith(chosen + ", BG/NBD share")
        logged = {c.name: run.data.metrics.get(f"design.{c.name}.{metric}") for c in menu}
        assert all(v is not None for v in logged.values()), logged
        # The rule: the best, unless an earlier candidate is within 0.001 of it.
        best = max(logged.values())
        assert chosen == next(name for name, v in logged.items() if v >= best - 0.001)
        assert "snapshots" in run.data.tags and float(run.data.params["design_blend_weight"]) in (0.0, 0.25, 0.5)


def test_the_champions_carry_what_their_fit_decided_for_scoring(first_run, home):
    import mlflow

    from pipelines import tracking

    for kind in ("churn", "value"):
        model = tracking.load_champion(kind).model
        params = mlflow.get_run(first_run["training"][kind]["run_id"]).data.params
        # The reference population: the customers with history of the latest validation snapshot.
        assert model.reason_reference_.feature_names == tuple(model.feature_names_)
        assert model.reason_reference_.rows > 0
        assert model.design_["chosen"] == params["design"]
        assert model.blend_weight_ == model.design_["blend_weight"] == float(params["design_blend_weight"])
    value = tracking.load_champion("value").model
    assert float(value.level_anchor_.use_anchor_) == first_run["training"]["value"]["metrics"]["level_anchor_used"]


def test_every_eligible_customer_scored_exactly_once(first_run, world, home):
    _, tables = world
    scores = _store(home).read_scores()
    cutoff = pd.Timestamp(AS_OF)
    tx = tables["transactions"]
    with_history = set(tx.loc[tx["ts"] < cutoff, "customer_id"])
    customers = tables["customers"]
    prospects = set(customers.loc[customers["signup_date"] < cutoff, "customer_id"]) - set(tx.loc[tx["ts"] < cutoff, "customer_id"])
    assert not scores["customer_id"].duplicated().any()
    assert with_history <= set(scores["customer_id"])
    assert set(scores["customer_id"]) <= with_history | prospects | set(customers["customer_id"])
    scored = scores[scores["customer_id"].isin(with_history)]
    assert scored["p_churn"].between(0, 1).all()
    assert (scored["value_p10"] <= scored["value_p90"] + 1e-9).all()
    assert first_run["published"]["rows"] == len(scores)


def test_every_row_has_a_segment_and_reasons_in_both_languages(first_run, home):
    scores = _store(home).read_scores()
    assert scores["segment"].notna().all()
    unscored = scores["p_churn"].isna()
    assert scores.loc[~unscored, "value_tier"].isin(["A", "B", "C"]).all() and scores.loc[unscored, "value_tier"].isna().all()
    assert scores["segment_label_en"].str.len().gt(0).all() and scores["segment_label_zh"].str.len().gt(0).all()
    assert scores["reason_text_en"].str.len().gt(0).all() and scores["reason_text_zh"].str.len().gt(0).all()
    scored = scores[scores["p_churn"].notna()]
    parsed = scored["reasons"].map(json.loads)
    assert parsed.map(lambda r: {"churn", "value"} <= set(r)).all()
    assert scored["reason_text_zh"].str.contains(r"[\u4e00-\u9fff]").all()


def test_contributions_add_up_to_the_champion_raw_predictions(first_run, world, home):
    from types import SimpleNamespace

    from features.build import build_features
    from features.tables import tables_from_frames
    from models.btyd import BTYD_FIT_ROWS
    from models.btyd_columns import add_btyd_features
    from models.explain import contributions
    from pipelines import tracking
    from pipelines.config import load_config
    from pipelines.tasks import feature_spec
    from serving.score_run import btyd_horizons_of

    _, tables = world
    churn = tracking.load_champion("churn").model
    _, ibis_tables = tables_from_frames(tables)
    # The run's config differs from the default only in its chunk size: the same features, and the
    # BG/NBD columns where the design search gave them to the models (fitted on the whole population).
    feats = build_features(ibis_tables, datetime.fromisoformat(AS_OF), feature_spec(load_config()))
    value = tracking.load_champion("value").model
    for horizon in btyd_horizons_of(SimpleNamespace(churn=churn, value=value)):
        feats = add_btyd_features(feats, horizon, max_fit_rows=BTYD_FIT_ROWS)
    feats = feats.head(200)
    X = feats[churn.feature_names_]
    contrib = contributions(churn.booster_, X)
    np.testing.assert_allclose(contrib.sum(axis=1), churn.predict_raw(X), atol=1e-6)
    # The published explanation for a customer carries those same contributions.
    explanations = _store(home).read_explanations(customer_id=feats["customer_id"].iloc[0], score="churn")
    by_feature = dict(zip(churn.feature_names_, contrib[0, :-1], strict=True))
    for row in explanations.itertuples():
        assert row.contribution == pytest.approx(by_feature[row.feature], abs=1e-6)


def test_export_has_the_contract_columns(first_run, home, tmp_path):
    out = tmp_path / "scores.csv"
    _store(home).export_scores(out)
    exported = pd.read_csv(out, dtype={"customer_id": str})
    assert tuple(exported.columns) == SCORE_COLUMNS
    required = {"customer_id", "as_of", "run_id", "p_churn", "expected_revenue", "expected_margin", "cost_to_serve",
                "net_value", "clv", "value_p10", "value_p90", "value_tier", "segment", "segment_label_en",
                "segment_label_zh", "reasons", "reason_text_en", "reason_text_zh"}
    assert required <= set(exported.columns)


def test_rerun_same_as_of_replaces_the_run_with_identical_scores(first_run, world, home):
    from pipelines.flows import score_flow

    root, _ = world
    before = _store(home).read_scores().sort_values("customer_id").reset_index(drop=True)
    again = score_flow(data=str(root / "data"), as_of=AS_OF, config=str(root / "config.yaml"))
    assert again["published"]["run_id"] == first_run["published"]["run_id"]
    runs = _store(home).list_runs()
    assert len(runs) == 1
    after = _store(home).read_scores().sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_splitting_the_work_differently_replaces_the_run_with_identical_scores(first_run, world, home):
    from pipelines.flows import score_flow

    root, _ = world
    before = _store(home).read_scores().sort_values("customer_id").reset_index(drop=True)
    split = root / "split.yaml"
    text, replaced = re.subn(r"chunk_size: 400(.*)\n(\s*)feature_partitions: 1", r"chunk_size: 300\1\n\2feature_partitions: 3",
                             (root / "config.yaml").read_text())
    assert replaced == 1, "the test config should set chunk_size and then feature_partitions"
    split.write_text(text)
    again = score_flow(data=str(root / "data"), as_of=AS_OF, config=str(split))
    assert again["published"]["run_id"] == first_run["published"]["run_id"]
    assert len(_store(home).list_runs()) == 1
    after = _store(home).read_scores().sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_scoring_with_features_the_champions_never_had_is_refused_before_any_write(first_run, world, home):
    from pipelines.flows import score_flow
    from pipelines.publishing import ChampionFeaturesMissingError

    root, _ = world
    runs_before = _store(home).list_runs()
    narrower = root / "narrower.yaml"
    narrower.write_text((root / "config.yaml").read_text().replace("windows_days: [30, 90, 180, 365]",
                                                                    "windows_days: [30, 90]"))
    with pytest.raises(ChampionFeaturesMissingError, match="--retrain") as caught:
        score_flow(data=str(root / "data"), as_of="2026-06-15", config=str(narrower))
    assert "revenue_sum_180d" in str(caught.value) or "_365d" in str(caught.value)
    pd.testing.assert_frame_equal(_store(home).list_runs(), runs_before)


def test_a_later_run_publishes_what_changed_since_the_previous_one_exactly(first_run, world, home):
    from types import SimpleNamespace

    from features.build import build_features
    from features.tables import tables_from_frames
    from models.btyd import BTYD_FIT_ROWS
    from models.btyd_columns import add_btyd_features
    from models.explain import contributions
    from pipelines import tracking
    from pipelines.config import load_config
    from pipelines.flows import score_flow
    from pipelines.tasks import feature_spec
    from serving.changes import CHANGES_TABLE, TRANSITIONS_TABLE
    from serving.score_run import btyd_horizons_of

    root, tables = world
    store = _store(home)
    first_id = first_run["published"]["run_id"]
    assert set(store.read_table(CHANGES_TABLE, first_id)["status"]) == {"new"}  # nothing before the first run
    later = score_flow(data=str(root / "data"), as_of="2026-07-15", config=str(root / "config.yaml"), allow_future_as_of=True)
    later_id = later["published"]["run_id"]
    changes = store.read_table(CHANGES_TABLE, later_id).set_index("customer_id")
    assert set(changes["from_run_id"]) == {first_id} and set(changes["status"]) == {"both"}
    transitions = store.read_table(TRANSITIONS_TABLE, later_id)
    assert transitions["customers"].sum() == len(changes)
    scored = changes[changes["churn_raw_delta"].notna()]
    assert len(scored) and (scored["churn_model_part"] == 0).all()  # same champions: the same base value
    # By hand, with every feature's contribution at both dates: their changes add up to the published raw change.
    churn = tracking.load_champion("churn").model
    value = tracking.load_champion("value").model
    _, ibis_tables = tables_from_frames(tables)
    ids = scored.index[:50]
    totals = []
    for as_of in (AS_OF, "2026-07-15"):
        feats = build_features(ibis_tables, datetime.fromisoformat(as_of), feature_spec(load_config()))
        for horizon in btyd_horizons_of(SimpleNamespace(churn=churn, value=value)):
            feats = add_btyd_features(feats, horizon, max_fit_rows=BTYD_FIT_ROWS)
        feats = feats.set_index("customer_id").loc[ids]
        totals.append(churn.risk_sign * contributions(churn.booster_, feats[churn.feature_names_])[:, :-1].sum(axis=1))
    np.testing.assert_allclose(scored.loc[ids, "churn_raw_delta"].to_numpy(), totals[1] - totals[0], atol=1e-6)
    mover = scored["churn_raw_delta"].abs().idxmax()
    assert scored.loc[mover, "sentence_en"].startswith("p_churn ")


def test_the_run_wrote_its_report_in_both_languages_and_logged_it_to_mlflow(first_run, home):
    import mlflow

    run_id = first_run["published"]["run_id"]
    reports = first_run["published"]["reports"]
    assert reports == {lang: str(home / "reports" / f"{run_id}.{lang}.html") for lang in ("en", "zh")}
    english = (home / "reports" / f"{run_id}.en.html").read_text(encoding="utf-8")
    # the champions' validation figures came from their MLflow runs: no "not readable" sentence
    assert "Models against their baselines" in english and "not readable here" not in english
    found = mlflow.search_runs(experiment_names=["custscore-scoring"], filter_string=f"tags.`custscore.run_id` = '{run_id}'",
                               output_format="list")
    assert len(found) == 1
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(found[0].info.run_id, "report")}
    assert logged == {f"report/{run_id}.en.html", f"report/{run_id}.zh.html"}
    import os

    # logging the report made no experiment active for the rest of the process and its children
    assert "MLFLOW_EXPERIMENT_ID" not in os.environ
