"""Prospects through the main job: trained, gated and graded beside churn and value, scored, published, joined
to the scorecard as potential accounts, shown by `custscore prospects`; left unscored, with a line saying why,
when the data has no customers table.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from demo import generate_demo_data, write_demo_data
from tests.pipelines.flow_home import FIXED_DESIGN, config_file, module_home

pytestmark = pytest.mark.slow

N_CUSTOMERS = 2500
END = date(2026, 6, 30)
AS_OF = "2026-07-01"
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("prospects")
    tables = generate_demo_data(N_CUSTOMERS, seed=5, end=END)
    write_demo_data(tables, root / "data", "parquet")
    write_demo_data({"transactions": tables["transactions"], "invoices": tables["invoices"]}, root / "bare", "parquet")
    return root, tables


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    yield from module_home(world[0])


def _config(root: Path) -> str:
    """The default config with a fixed design (fewer fits) and small chunks."""
    return config_file(root, "prospects", FIXED_DESIGN, (r"chunk_size: \d+", "chunk_size: 500"))


@pytest.fixture(scope="module")
def first_run(world, home):
    from pipelines.flows import retrain_and_score_flow

    root, _ = world
    return retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, config=_config(root))


def _prospects_at_as_of(tables: dict[str, pd.DataFrame]) -> set[str]:
    cutoff = pd.Timestamp(AS_OF)
    customers, tx = tables["customers"], tables["transactions"]
    seen = set(tx.loc[pd.to_datetime(tx["ts"]) < cutoff, "customer_id"])
    existed = customers.loc[customers["signup_date"].isna() | (customers["signup_date"] < cutoff), "customer_id"]
    return set(existed) - seen


def test_the_prospect_model_is_trained_out_of_time_and_graded_against_days_since_signup(first_run):
    outcome = first_run["training"]["prospect"]
    assert outcome["metrics"]["roc_auc"] > outcome["baseline_metrics"]["roc_auc"]
    assert outcome["grade"] in ("A", "B") and outcome["promoted"], outcome["reason"]
    assert "held out" in outcome["snapshots"]


def test_every_prospect_is_scored_and_the_top_fifth_joins_the_scorecard_as_potential(world, home, first_run):
    from serving.sink import open_sink

    _, tables = world
    expected = _prospects_at_as_of(tables)
    published = first_run["published"]
    assert published["prospects"]["scored"] == len(expected)
    store = open_sink(home / "store")
    prospects = store.read_table("prospects", run_id=published["run_id"])
    assert set(prospects["customer_id"]) == expected
    assert prospects["p_first_order"].between(0, 1).all() and (prospects["prospect_value"] > 0).all()
    assert prospects["reason_text_zh"].str.len().gt(0).all()
    grades = store.read_table("account_grades", run_id=published["run_id"])
    potential = grades.loc[grades["customer_id"].isin(expected)]
    assert (potential["account_grade"] == "potential").all()
    assert set(potential["customer_id"]) == set(prospects.loc[prospects["potential"], "customer_id"])
    assert len(potential) == published["prospects"]["potential"] >= len(expected) // 5


def test_the_run_summary_grades_the_prospect_model_beside_the_others(first_run):
    from pipelines.run_outcome import RunOutcome
    from pipelines.run_summary import summary_markdown

    text = summary_markdown(RunOutcome(flow="run"), "Completed", first_run)
    rows = [line for line in text.splitlines() if line.startswith("| prospect |")]
    assert rows and re.search(r"\| v\d+ \| [AB] \| promoted \|", rows[0]), rows


def test_the_prospects_command_lists_and_exports_them(world, first_run):
    from pipelines.cli import app

    result = runner.invoke(app, ["prospects", "--top", "3"])
    assert result.exit_code == 0, result.output
    assert f"{first_run['published']['prospects']['scored']:,} prospects scored" in result.output
    assert "more likely to buy" in result.output
    out = world[0] / "prospects.csv"
    result = runner.invoke(app, ["prospects", "--output", str(out), "--lang", "zh"])
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == first_run["published"]["prospects"]["scored"]
    assert {"p_first_order", "prospect_value", "expected_value", "reason_text_en", "reason_text_zh"} <= set(rows[0])


def test_without_a_customers_table_prospects_stay_unscored_and_the_run_says_why(world, first_run, caplog):
    from pipelines.cli import app
    from pipelines.flows import retrain_and_score_flow

    root, _ = world
    with caplog.at_level("INFO", logger="pipelines.prospects"):
        bare = retrain_and_score_flow(data=str(root / "bare"), as_of=AS_OF, config=_config(root))
    assert "prospect" not in bare["training"]
    assert "no customers table" in bare["published"]["prospects"]["skipped"]
    assert any("prospect model not trained: the data has no customers table" in r.getMessage() for r in caplog.records)
    result = runner.invoke(app, ["prospects"])
    assert result.exit_code != 0 and "has no prospects table" in result.output
