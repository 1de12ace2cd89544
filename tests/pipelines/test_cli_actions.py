"""`custscore actions` on a published run: the list, owners from the run's customers table, export, refusals."""

from __future__ import annotations

import csv
import datetime as dt
import re

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.safe_csv import original_text
from pipelines.cli import app
from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore

runner = CliRunner()

# offer cost 10, save rate 0.2: c1 0.5 x 0.2 x 1000 - 10 = 90; c2 0.9 x 0.2 x 300 - 10 = 44;
# c3 0.1 x 0.2 x 2000 - 10 = 30; c4 0.2 x 0.2 x 200 - 10 = -2 (left out); c5 0.3 x 0.2 x 500 - 10 = 20
P_CHURN = [0.5, 0.9, 0.1, 0.2, 0.3]
CLV = [1000.0, 300.0, 2000.0, 200.0, 500.0]
MANAGERS = ["Ann", "=HYPERLINK(\"http://x\")", "Ann", "Dan", "Bob"]
FLAGS = ["--save-rate", "0.2", "--offer-cost", "10"]


def score_rows() -> pd.DataFrame:
    n = len(P_CHURN)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(1, n + 1)], "p_churn": P_CHURN, "expected_revenue": 100.0,
        "expected_margin": 30.0, "cost_to_serve": 5.0, "net_value": 25.0, "clv": CLV, "value_p10": 50.0,
        "value_p90": 150.0, "value_tier": "A", "segment": "at_risk", "segment_label_en": "at risk",
        "segment_label_zh": "流失风险", "segment_reason": "p_churn high",
        "reasons": '{"churn":{"raises":[],"lowers":[]}}',
        "reason_text_en": [f"Raises churn risk: no order for {10 * i} days. Raises value: big spender." for i in range(n)],
        "reason_text_zh": [f"推高流失风险：已{10 * i}天未下单。提升价值：大客户。" for i in range(n)],
    })


def explanation_rows(scores: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": scores["customer_id"], "score": "churn", "direction": "raises", "rank": 1,
                         "feature": "days_since_last_order", "family": "recency", "value": "10", "contribution": 0.5})


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A home whose store holds one published run, made on a data folder with a customers table."""
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"customer_id": [f"c{i}" for i in range(1, 6)], "region": "north",
                  "Account_Manager ": MANAGERS}).to_csv(data / "customers.csv", index=False)
    scores = score_rows()
    metadata = RunMetadata(run_id="r1", as_of=dt.date(2026, 9, 30), churn_model_version="1", value_model_version="1",
                           extra={"data_source": str(data)})
    ScoreStore(tmp_path / "home" / "store").publish(metadata, ScoredRun.from_tables(scores, explanation_rows(scores)))
    return tmp_path


def test_the_list_names_whom_to_call_first_and_why(home):
    result = runner.invoke(app, ["actions", *FLAGS])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if re.search(r"\bc\d\b", line)]
    assert [re.search(r"\b(c\d)\b", line).group(1) for line in rows] == ["c1", "c2", "c3", "c5"]
    assert "no order for 0 days" in result.output and "big spender" not in result.output
    assert "4 of 5 customers chosen: expected gain 184" in result.output
    assert "your estimate" in result.output


def test_export_with_owners_is_safe_for_spreadsheets(home):
    out = home / "actions.csv"
    result = runner.invoke(app, ["actions", *FLAGS, "--budget", "3", "--owner", "account_manager", "--output", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # budget 3 takes c1, c2, c3; Ann owns c1 and c3 (90 + 30 = 120), the formula-like name owns c2 (44)
    assert [r["customer_id"] for r in rows] == ["c1", "c3", "c2"]
    assert [r["owner"] for r in rows[:2]] == ["Ann", "Ann"]
    assert rows[2]["owner"].startswith("'=")  # shown as text, never run as a formula
    assert original_text(rows[2]["owner"]) == MANAGERS[1]
    assert [float(r["expected_gain"]) for r in rows] == pytest.approx([90, 30, 44])
    assert rows[0]["reason_to_call_zh"] == "已0天未下单"


def test_money_budget_and_parquet_export(home):
    out = home / "actions.parquet"
    result = runner.invoke(app, ["actions", *FLAGS, "--budget", "25", "--budget-kind", "money", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out)["customer_id"].tolist() == ["c1", "c2"]  # two offers of 10 fit in 25


def test_owner_from_a_duckdb_source_given_with_data(home):
    database = home / "crm.duckdb"
    con = duckdb.connect(str(database))
    con.execute("CREATE TABLE customers AS SELECT 'c' || i AS customer_id, 'AM' || (i % 2) AS account_manager "
                "FROM range(1, 6) t(i)")
    con.close()
    out = home / "owners.csv"
    result = runner.invoke(app, ["actions", *FLAGS, "--owner", "account_manager", "--data", str(database),
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(out)
    assert dict(zip(listed["customer_id"], listed["owner"], strict=True)) == {"c1": "AM1", "c2": "AM0", "c3": "AM1",
                                                                               "c5": "AM1"}


def test_a_missing_owner_column_is_one_line_naming_the_columns_there_are(home):
    result = runner.invoke(app, ["actions", "--owner", "account_owner"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "account_owner" in lines[0] and "customer_id, region, Account_Manager" in lines[0]


def test_sensitivity_prints_gain_by_save_rate(home):
    result = runner.invoke(app, ["actions", "--offer-cost", "10", "--save-rate", "0.2", "--sensitivity"])
    assert result.exit_code == 0, result.output
    # save rate 0.5: c1 240, c2 125, c3 90, c4 10, c5 65 -> 5 customers, 530
    row = next(line for line in result.output.splitlines() if line.strip("│ ").startswith("0.50"))
    assert re.search(r"\b5\b.*\b530\b", row), row
    assert any(line.strip("│ ").startswith("0.20 (set)") for line in result.output.splitlines())


@pytest.mark.parametrize("flags,expected", [
    (["--save-rate", "0"], "--save-rate 0.0 is not a share"),
    (["--save-rate", "1.5"], "--save-rate 1.5 is not a share"),
    (["--offer-cost", "-5"], "--offer-cost -5.0 is negative"),
    (["--budget", "2.5"], "--budget 2.5 is not a whole number of customers"),
    (["--budget", "0"], "--budget 0.0 is not a budget"),
    (["--budget-kind", "calls"], "--budget-kind 'calls' is not one of count, money"),
    (["--lang", "fr"], "--lang 'fr' is not one of en, zh"),
    (["--output", "x.xlsx"], "--output x.xlsx: unsupported file type"),
    (["--budget-kind", "money"], "--budget-kind money needs --budget: the config's budget 50 is customers"),
])
def test_bad_flags_are_refused_in_one_line(home, flags, expected, monkeypatch):
    untouched = home / "untouched"
    monkeypatch.setenv("CUSTSCORE_HOME", str(untouched))
    result = runner.invoke(app, ["actions", *flags])
    assert result.exit_code == 2
    assert expected in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert not untouched.exists()  # refused before the home folder is prepared or any store read


def test_an_unknown_run_is_named(home):
    result = runner.invoke(app, ["actions", "--run-id", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_the_config_sets_the_defaults_and_a_flag_overrides_one(home):
    config = home / "custscore.yaml"
    config.write_text("actions:\n  save_rate: 0.2\n  offer_cost: 10\n  budget: 2\n", encoding="utf-8")
    out = home / "two.csv"
    result = runner.invoke(app, ["actions", "--config", str(config), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["customer_id"].tolist() == ["c1", "c2"]  # budget 2 from the config
    result = runner.invoke(app, ["actions", "--config", str(config), "--offer-cost", "35", "--budget", "9",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    # cost 35: c1 100-35=65, c2 54-35=19, c3 40-35=5, c5 30-35<0
    assert pd.read_csv(out)["customer_id"].tolist() == ["c1", "c2", "c3"]


def test_a_config_outside_the_ranges_names_the_key(home):
    config = home / "bad.yaml"
    config.write_text("actions:\n  save_rate: 2\n", encoding="utf-8")
    result = runner.invoke(app, ["actions", "--config", str(config)])
    assert result.exit_code == 2
    assert "actions.save_rate" in result.output


def test_the_default_config_documents_each_actions_key():
    from pipelines.config import DEFAULT_CONFIG, load_config

    section = DEFAULT_CONFIG.read_text(encoding="utf-8").split("\nactions:", 1)[1]
    keys = load_config().actions.model_dump()
    for key in keys:
        line = next(line for line in section.splitlines() if line.strip().startswith(f"{key}:"))
        assert "#" in line, f"actions.{key} has no comment saying why its default"


def publish_on(home, data_source: str) -> None:
    metadata = RunMetadata(run_id="r2", as_of=dt.date(2026, 10, 31), extra={"data_source": data_source})
    ScoreStore(home / "home" / "store").publish(metadata, ScoredRun.from_tables(score_rows()))


def test_a_run_on_the_demo_data_finds_its_customers_in_the_home(home):
    from pipelines.config import load_config

    demo = load_config().demo
    folder = home / "home" / "demo-data" / f"n{demo.customers}-s{demo.seed}-{demo.end.isoformat()}"
    folder.mkdir(parents=True)
    pd.DataFrame({"customer_id": ["c1", "c2"], "region": ["east", "west"]}).to_parquet(folder / "customers.parquet")
    publish_on(home, f"demo data ({demo.customers} customers, seed {demo.seed})")
    out = home / "demo.csv"
    result = runner.invoke(app, ["actions", *FLAGS, "--budget", "2", "--owner", "region", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["owner"].tolist() == ["east", "west"]


@pytest.mark.parametrize("recorded", ["/nowhere/data", ""])
def test_data_that_cannot_be_found_asks_for_data_in_one_line(home, recorded):
    publish_on(home, recorded)
    result = runner.invoke(app, ["actions", "--owner", "account_manager"])
    assert result.exit_code == 2
    assert "pass --data" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_folder_without_a_customers_table_is_named(home):
    empty = home / "no_customers"
    empty.mkdir()
    result = runner.invoke(app, ["actions", "--owner", "account_manager", "--data", str(empty)])
    assert result.exit_code == 2
    assert f"the data folder {empty} has no customers table" in result.output.replace("\n", "")


def demo_folder(home, name: str, regions: list[str]):
    folder = home / "home" / "demo-data" / name
    folder.mkdir(parents=True)
    pd.DataFrame({"customer_id": ["c1", "c2"], "region": regions}).to_parquet(folder / "customers.parquet")
    return folder


def test_a_demo_run_made_with_another_config_finds_its_own_demo_data_without_flags(home):
    # the run was made with a config of 300 demo customers; actions is given no config (default: 5,000)
    demo_folder(home, "n5000-s7-2026-09-30", ["wrong", "wrong"])
    demo_folder(home, "n300-s3-2026-06-30", ["east", "west"])
    metadata = RunMetadata(run_id="r2", as_of=dt.date(2026, 10, 31), extra={
        "data_source": "demo data (300 customers, seed 3)",
        "demo_data": {"customers": 300, "seed": 3, "end": "2026-06-30"}})
    ScoreStore(home / "home" / "store").publish(metadata, ScoredRun.from_tables(score_rows()))
    out = home / "demo.csv"
    result = runner.invoke(app, ["actions", *FLAGS, "--budget", "2", "--owner", "region", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["owner"].tolist() == ["east", "west"]


def test_an_older_demo_run_is_found_from_its_label_when_one_demo_folder_fits(home):
    demo_folder(home, "n300-s3-2026-06-30", ["east", "west"])
    publish_on(home, "demo data (300 customers, seed 3)")
    out = home / "demo.csv"
    result = runner.invoke(app, ["actions", *FLAGS, "--budget", "2", "--owner", "region", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["owner"].tolist() == ["east", "west"]


def test_a_demo_run_whose_demo_data_is_gone_says_in_one_line_what_to_pass(home):
    publish_on(home, "demo data (300 customers, seed 3)")
    result = runner.invoke(app, ["actions", "--owner", "region"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "demo data (300 customers, seed 3)" in message and "pass --data" in message
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("source", [None, "data"])
def test_a_published_demo_run_records_the_demo_settings_actions_finds_its_folder_by(tmp_path, monkeypatch, source):
    from types import SimpleNamespace

    from pipelines import publishing, tasks
    from pipelines.cli_actions import run_demo_folder
    from pipelines.config import load_config
    from pipelines.environment import HomePaths
    from pipelines.runs import Run

    monkeypatch.setattr(publishing.tracking, "grade_of", lambda run_id: "A")
    cfg = load_config().with_overrides(demo={"customers": 300, "seed": 3}, data={"source": source and str(tmp_path)})
    data = SimpleNamespace(data_hash="h", report_json=dict)
    run = Run(cfg, None, data, dt.date(2026, 10, 1), dt.datetime(2026, 10, 1), "demo data (300 customers, seed 3)")
    champion = SimpleNamespace(version="1", run_id="m")
    extra = publishing.run_metadata(run, {"churn": champion, "value": champion}, "r9").extra
    if source is not None:
        assert "demo_data" not in extra  # the run names its own data: nothing to find
        return
    assert extra["demo_data"] == {"customers": 300, "seed": 3, "end": cfg.demo.end.isoformat()}
    # the folder the run generated is the one actions finds from the record, whatever config it is given
    paths = HomePaths(tmp_path / "home")
    made = paths.demo_data / cfg.demo.folder_name()
    made.mkdir(parents=True)
    (made / "transactions.parquet").touch()  # already generated: ensure_demo_data only names the folder
    assert made == tasks.ensure_demo_data.fn(paths, cfg)
    published = RunMetadata(run_id="r9", as_of=dt.date(2026, 10, 1), extra=extra)
    assert run_demo_folder(published, paths.demo_data, load_config().demo.folder_name()) == made
