"""Published scores on fixed demo data against a golden file: the scoring path may be rebuilt, its output may not change.

Two runs of the main job, each in a fresh home on the same fixed demo world (fixed seed, end
and as-of date), train their champions and publish a run:

- `default`: the default configuration (the design search picks features, objective and blend);
- `btyd`: a fixed design reading BG/NBD + Gamma-Gamma columns as features, the level anchor
  always on and a configured blend, so every use of the BG/NBD reference is exercised.

Every published score column is compared with `golden/scoring_golden.csv.gz` to a tight
tolerance; value tier, segment, the English and Chinese reason sentences and the features each
customer's reasons name (per score, direction and rank, from the explanations table) exactly.
The raw `reasons` JSON is not compared: its payload is not part of what this file guards.

A change of how reasons are chosen or worded (serving/reason_selection.py, the families'
templates) moves only `reason_text_en`, `reason_text_zh` and `reason_features`: regenerate the
golden then, and check against the old file that every number, tier, segment and segment
reason is identical. To regenerate:
`CUSTSCORE_WRITE_GOLDEN=1 python -m pytest tests/pipelines/test_scoring_golden.py`.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo import generate_demo_data, write_demo_data

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parent / "golden" / "scoring_golden.csv.gz"
N_CUSTOMERS = 400
SEED = 23
END = date(2026, 6, 30)
AS_OF = "2026-07-01"
NUMBER_COLUMNS = ["p_churn", "expected_revenue", "expected_margin", "cost_to_serve", "net_value", "clv",
                  "value_p10", "value_p90"]
EXACT_COLUMNS = ["value_tier", "segment", "segment_reason", "reason_text_en", "reason_text_zh", "reason_features"]
# Everything a run sets apart from the defaults; chunk_size small so several chunks are scored.
RUNS = {
    "default": {},
    "btyd": {"training": {"design": "fixed", "level_anchor": "always"}, "features": {"btyd": True},
             "scoring": {"btyd_blend": {"churn_weight": 0.3, "value_weight": 0.4}}},
}


def _config(root: Path, name: str, overrides: dict) -> Path:
    """The default configuration file with a small chunk size and the run's overrides, next to segments.yaml."""
    import yaml

    from pipelines.config import DEFAULT_CONFIG

    body = yaml.safe_load(DEFAULT_CONFIG.read_text())
    body["scoring"]["chunk_size"] = 150
    for section, values in overrides.items():
        for key, value in values.items():
            body[section][key] = value
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    (root / "segments.yaml").write_text((DEFAULT_CONFIG.parent / "segments.yaml").read_text())
    return path


def reason_features(explanations: pd.DataFrame) -> pd.Series:
    """Per customer, the features its reasons name in order: 'churn raises: a, b; churn lowers: c; ...'."""
    if explanations.empty:
        return pd.Series(dtype=object)
    rows = explanations.sort_values(["customer_id", "score", "direction", "rank"])
    per_side = rows.groupby(["customer_id", "score", "direction"], sort=True)["feature"].agg(", ".join).reset_index()
    per_side["text"] = per_side["score"] + " " + per_side["direction"] + ": " + per_side["feature"]
    return per_side.groupby("customer_id", sort=True)["text"].agg("; ".join)


def published_run(root: Path, name: str, overrides: dict) -> pd.DataFrame:
    """Train and score in a fresh home; the published score table with each customer's reason features."""
    from pipelines.flows import retrain_and_score_flow
    from serving.store import ScoreStore

    home = root / f"home-{name}"
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(home))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        result = retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, config=str(_config(root, name, overrides)),
                                        retrain=False)
    finally:
        mp.undo()
    store = ScoreStore(home / "store")
    run_id = result["published"]["run_id"]
    scores = store.read_scores(run_id=run_id)
    features = reason_features(store.read_explanations(run_id=run_id))
    scores["reason_features"] = scores["customer_id"].map(features).fillna("")
    scores.insert(0, "run", name)
    return scores[["run", "customer_id", *NUMBER_COLUMNS, *EXACT_COLUMNS]].sort_values("customer_id")


@pytest.fixture(scope="module")
def published(tmp_path_factory, prefect_harness) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("golden")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=SEED, end=END), root / "data", "parquet")
    frame = pd.concat([published_run(root, name, overrides) for name, overrides in RUNS.items()], ignore_index=True)
    if os.environ.get("CUSTSCORE_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        frame.to_csv(GOLDEN, index=False, float_format="%.17g")
    return frame


@pytest.fixture(scope="module")
def golden() -> pd.DataFrame:
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing; write it with CUSTSCORE_WRITE_GOLDEN=1 (see this module's docstring)")
    return pd.read_csv(GOLDEN, dtype={"customer_id": str, **{c: str for c in EXACT_COLUMNS}},
                       keep_default_na=False, na_values={c: [""] for c in NUMBER_COLUMNS})


def _joined(published: pd.DataFrame, golden: pd.DataFrame) -> pd.DataFrame:
    assert sorted(map(tuple, published[["run", "customer_id"]].to_numpy())) == \
        sorted(map(tuple, golden[["run", "customer_id"]].to_numpy())), "the published customers differ from the golden's"
    return published.merge(golden, on=["run", "customer_id"], suffixes=("", "_golden"))


def test_both_runs_exercise_what_the_golden_guards(published):
    """The btyd run must really blend and anchor: its values differ from the default run's for most customers."""
    default = published[published["run"] == "default"].set_index("customer_id")
    btyd = published[published["run"] == "btyd"].set_index("customer_id")
    assert len(default) >= N_CUSTOMERS * 0.9
    scored = default["expected_revenue"].notna()
    assert (~np.isclose(default.loc[scored, "p_churn"], btyd.loc[scored, "p_churn"])).mean() > 0.9
    assert btyd["reason_features"].str.contains("btyd_").any(), "the btyd run's reasons should name a BG/NBD column"
    assert default["segment"].nunique() >= 3


@pytest.mark.parametrize("column", NUMBER_COLUMNS)
def test_every_published_number_equals_the_golden(published, golden, column):
    joined = _joined(published, golden)
    ours, theirs = joined[column].to_numpy(dtype=float), joined[f"{column}_golden"].to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=f"{column}: missing values moved")
    known = ~np.isnan(ours)
    np.testing.assert_allclose(ours[known], theirs[known], rtol=1e-9, atol=1e-9, err_msg=column)


@pytest.mark.parametrize("column", EXACT_COLUMNS)
def test_every_segment_sentence_and_reason_feature_equals_the_golden(published, golden, column):
    joined = _joined(published, golden)
    ours = joined[column].fillna("").astype(str)
    theirs = joined[f"{column}_golden"].astype(str)
    differ = joined.loc[ours.to_numpy() != theirs.to_numpy(), ["run", "customer_id"]]
    first = "" if differ.empty else re.sub(r"\s+", " ", f"{differ.iloc[0].to_dict()}: "
                                           f"{ours[differ.index[0]]!r} != golden {theirs[differ.index[0]]!r}")
    assert differ.empty, f"{column}: {len(differ)} customers differ from the golden, e.g. {first}"
