"""Personal data, identifiers and outcomes in the customers table never reach a model, and a leak is not promoted.

Small demo data with the columns a careless export carries: an e-mail address and a code per
customer, the outcome itself (`churned`, from the demo world's true departures) and an honest
number (`credit_limit`).
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from features.demo_data import generate_demo_data, generate_demo_truth, write_demo_data

pytestmark = pytest.mark.slow

N_CUSTOMERS = 800
END = date(2026, 6, 30)
AS_OF = "2026-07-01"
LEAKING = ("email", "customer_code", "churned")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("attrs")
    tables = generate_demo_data(N_CUSTOMERS, seed=5, end=END)
    truth = generate_demo_truth(N_CUSTOMERS, seed=5, end=END).set_index("customer_id")
    customers = tables["customers"]
    ids = customers["customer_id"]
    customers["email"] = [f"{c.lower()}@example.com" for c in ids]
    customers["customer_code"] = [f"K{i * 37 % 100_003:06d}" for i in range(len(ids))]
    customers["churned"] = truth.loc[ids, "departure_date"].notna().astype(int).to_numpy()
    customers["credit_limit"] = np.random.default_rng(5).integers(1, 20, len(ids)) * 1000
    write_demo_data(tables, root / "data", "parquet")
    return root


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(world / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield world / "home"
    mp.undo()


def _config(root: Path, name: str, allow: str) -> Path:
    """The default config, a fixed design (fewer fits), small chunks, and the given allow list."""
    from pipelines.config import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.read_text()
    for pattern, value in ((r"design: search", "design: fixed"), (r"chunk_size: \d+", "chunk_size: 300"),
                           (r"    allow: \[\]", f"    allow: [{allow}]")):
        text, replaced = re.subn(pattern, value, text)
        assert replaced == 1, f"configs/default.yaml should contain {pattern!r} once"
    (root / name).write_text(text)
    (root / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    return root / name


@pytest.fixture(scope="module")
def first_run(world, home):
    from pipelines.flows import retrain_and_score_flow

    return retrain_and_score_flow(data=str(world / "data"), as_of=AS_OF, config=str(_config(world, "a.yaml", "")))


def test_email_code_and_outcome_are_excluded_with_their_reasons_in_the_summary(first_run):
    attributes = first_run["attributes"]
    assert set(LEAKING) <= set(attributes["excluded"])
    assert attributes["excluded"]["email"] == f"personal data: {N_CUSTOMERS} values look like e-mail addresses"
    assert attributes["excluded"]["customer_code"].startswith(f"identifier-like: {N_CUSTOMERS} distinct values")
    assert "'churned' is on the leakage list" in attributes["excluded"]["churned"]
    assert {"credit_limit", "industry", "region"} <= set(attributes["kept"])


def test_excluded_columns_reach_no_model_input_example_or_reason(first_run, home):
    from pipelines import tracking
    from serving.store import ScoreStore

    for kind in ("churn", "value"):
        names = set(tracking.load_champion(kind).model.feature_names_)
        assert "attr_credit_limit" in names and not {f"attr_{c}" for c in LEAKING} & names
    examples = list(home.glob("mlartifacts/**/input_example.json"))
    stored = list(home.glob("mlartifacts/**/python_model.pkl"))
    assert len(examples) >= 2 and len(stored) >= 2
    for path in examples + stored:
        content = path.read_bytes()
        assert b"@example.com" not in content and b"attr_email" not in content and b"attr_churned" not in content, path
    scores = ScoreStore(home / "store").read_scores()
    assert len(scores) > 0
    text = " ".join(scores["reasons"].astype(str)) + " ".join(scores["reason_text_en"].astype(str))
    assert "@example.com" not in text and "customer_code" not in text and "churned" not in text


def test_exclusions_are_logged_with_the_training_run(first_run):
    import mlflow

    run = first_run["training"]["churn"]["run_id"]
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{run}/attributes.json"))
    assert set(LEAKING) <= set(logged["excluded"])
    assert "churned" in mlflow.get_run(run).data.tags["attributes_excluded"]


def test_an_allowed_outcome_column_is_kept_and_its_too_good_model_is_registered_not_promoted(first_run, world, home):
    from pipelines import tracking
    from pipelines.flows import train_flow

    champion_before = tracking.load_champion("churn").version
    result = train_flow(data=str(world / "data"), as_of=AS_OF, config=str(_config(world, "b.yaml", "churned")))
    assert "churned" in result["attributes"]["kept"]
    churn = result["training"]["churn"]
    assert not churn["promoted"] and int(churn["version"]) > int(champion_before)
    assert churn["reason"].startswith("not promoted: ")
    assert "attr_churned carries" in churn["reason"] or "roc_auc" in churn["reason"]
    assert tracking.load_champion("churn").version == champion_before
