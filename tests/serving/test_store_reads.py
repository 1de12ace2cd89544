"""Reading a customer, a page of a segment and a customer's history from the Parquet store."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore


def scores(ids: list[str], *, p_churn: list[float], clv: list[float], segment: list[str], tier: list[str]) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({
        "customer_id": ids, "p_churn": p_churn, "expected_revenue": 10.0, "expected_margin": 3.0,
        "cost_to_serve": 1.0, "net_value": 2.0, "clv": clv, "value_p10": 1.0, "value_p90": 9.0,
        "value_tier": tier, "segment": segment, "segment_label_en": "label", "segment_label_zh": "标签",
        "segment_reason": "rule", "reasons": "{}",
        "reason_text_en": [f"reason of {c}" for c in ids], "reason_text_zh": [f"{c} 的原因" for c in ids],
    }) if n else None  # fmt: skip


def publish(store: ScoreStore, run_id: str, as_of: dt.date, frame: pd.DataFrame) -> None:
    store.publish(RunMetadata(run_id=run_id, as_of=as_of), ScoredRun.from_tables(frame))


# Six customers, deliberately not in id order in the file.
IDS = ["c3", "c1", "c6", "c2", "c5", "c4"]
FRAME = scores(IDS, p_churn=[0.9, 0.1, 0.5, 0.7, float("nan"), 0.3], clv=[50.0, 500.0, 20.0, 300.0, 100.0, 10.0],
               segment=["at_risk", "regular", "at_risk", "at_risk", "at_risk", "regular"],
               tier=["B", "A", "C", "A", "B", "C"])


@pytest.fixture(params=[False, True], ids=["scanning", "indexed"])
def store(tmp_path, request) -> ScoreStore:
    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), FRAME)
    return ScoreStore(tmp_path, index_runs=request.param)


def test_page_is_in_customer_id_order_with_filters(store):
    page = store.read_scores_page(segment="at_risk", limit=10)
    assert page["customer_id"].tolist() == ["c2", "c3", "c5", "c6"]
    assert store.read_scores_page(segment="at_risk", value_tier="A")["customer_id"].tolist() == ["c2"]
    # min_value bounds clv, inclusive; a missing p_churn never passes a p_churn bound
    assert store.read_scores_page(min_value=100.0)["customer_id"].tolist() == ["c1", "c2", "c5"]
    assert store.read_scores_page(min_p_churn=0.5)["customer_id"].tolist() == ["c2", "c3", "c6"]


@pytest.mark.parametrize("indexed", [False, True], ids=["scanning", "indexed"])
def test_a_customer_without_a_tier_is_in_no_tier_page_and_reads_back_without_one(tmp_path, indexed):
    frame = scores(["c1", "c2", "p1"], p_churn=[0.2, 0.3, float("nan")], clv=[10.0, 5.0, float("nan")],
                   segment=["regular", "regular", "new"], tier=["A", "C", None])
    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), frame)
    store = ScoreStore(tmp_path, index_runs=indexed)
    assert store.read_scores_page(value_tier="C")["customer_id"].tolist() == ["c2"]
    assert store.read_scores_page(segment="new")["value_tier"].isna().tolist() == [True]


def test_pages_after_a_customer_cover_every_row_once(store):
    seen, after = [], None
    while True:
        page = store.read_scores_page(after_customer_id=after, limit=4, columns=["customer_id", "reason_text_zh"])
        if page.empty:
            break
        seen.extend(page["customer_id"])
        after = page["customer_id"].iloc[-1]
    assert seen == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert store.read_scores_page(after_customer_id="c25", limit=1)["customer_id"].tolist() == ["c3"]


def test_page_texts_belong_to_their_customers(store):
    page = store.read_scores_page(limit=6, columns=["customer_id", "reason_text_en", "reason_text_zh"])
    assert page["reason_text_en"].tolist() == [f"reason of c{i}" for i in range(1, 7)]
    assert page["reason_text_zh"].tolist() == [f"c{i} 的原因" for i in range(1, 7)]


def test_one_customer_with_texts(store):
    row = store.read_scores(customer_id="c5")
    assert row["customer_id"].tolist() == ["c5"]
    assert row["reason_text_zh"].tolist() == ["c5 的原因"]
    assert row["clv"].tolist() == [100.0]
    assert store.read_scores(customer_id="nobody").empty


def test_history_has_one_row_per_run_holding_the_customer_oldest_first(tmp_path):
    writer = ScoreStore(tmp_path)
    publish(writer, "r-feb", dt.date(2026, 2, 28), scores(["c1", "c2"], p_churn=[0.2, 0.4], clv=[1.0, 2.0],
                                                           segment=["regular"] * 2, tier=["A", "B"]))
    publish(writer, "r-jan", dt.date(2026, 1, 31), scores(["c1"], p_churn=[0.1], clv=[3.0], segment=["regular"], tier=["A"]))
    publish(writer, "r-mar", dt.date(2026, 3, 31), scores(["c2"], p_churn=[0.6], clv=[4.0], segment=["at_risk"], tier=["C"]))
    history = ScoreStore(tmp_path, index_runs=True).customer_history("c1", columns=["p_churn"])
    assert history["run_id"].tolist() == ["r-jan", "r-feb"]
    assert [str(d) for d in history["as_of"]] == ["2026-01-31", "2026-02-28"]
    assert history["p_churn"].tolist() == [0.1, 0.2]
    assert ScoreStore(tmp_path).customer_history("zz").empty


def test_text_parts_are_written_in_small_row_groups_for_single_reads(tmp_path):
    ids = [f"c{i:05d}" for i in range(5000)]
    frame = scores(ids, p_churn=[0.5] * 5000, clv=[1.0] * 5000, segment=["regular"] * 5000, tier=["A"] * 5000)
    publish(ScoreStore(tmp_path), "big", dt.date(2026, 1, 31), frame)
    texts = next((tmp_path / "runs").glob("*/scores/texts-*.parquet"))
    assert pq.ParquetFile(texts).metadata.num_row_groups == 10  # 512 rows per group
    store = ScoreStore(tmp_path, index_runs=True)
    assert store.read_scores(customer_id=["c04999", "c00000", "c00512"])["reason_text_en"].tolist() == [
        "reason of c04999", "reason of c00000", "reason of c00512"]


def test_a_new_publish_is_seen_by_a_long_lived_reader(tmp_path):
    reader = ScoreStore(tmp_path, index_runs=True)
    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), FRAME)
    assert reader.read_scores(customer_id="c1")["run_id"].tolist() == ["r1"]
    publish(ScoreStore(tmp_path), "r2", dt.date(2026, 2, 28), FRAME)
    assert reader.read_scores_page(limit=1)["run_id"].tolist() == ["r2"]
    # One customer: the previous run may answer while r2 is indexed in the background, then r2 does.
    deadline = time.monotonic() + 30
    while reader.read_scores(customer_id="c1")["run_id"].tolist() != ["r2"]:
        assert time.monotonic() < deadline, "the new run never answered"
        time.sleep(0.05)


def test_while_a_new_latest_run_is_indexed_the_previous_one_answers_then_the_new_one(tmp_path, monkeypatch):
    import threading

    import serving.store_index as store_index

    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), FRAME)
    reader = ScoreStore(tmp_path, index_runs=True)
    assert reader.read_scores(customer_id="c1")["run_id"].tolist() == ["r1"]
    publish(ScoreStore(tmp_path), "r2", dt.date(2026, 2, 28), FRAME)

    release, built = threading.Event(), threading.Event()
    real_init = store_index.RunIndex.__init__

    def slow_init(self, folder):
        release.wait(timeout=30)  # indexing r2 takes as long as the test wants
        real_init(self, folder)
        built.set()

    monkeypatch.setattr(store_index.RunIndex, "__init__", slow_init)
    assert reader.read_scores(customer_id="c1")["run_id"].tolist() == ["r1"]  # no wait: the previous run answers
    assert reader.read_scores(customer_id="c1", run_id="r1")["run_id"].tolist() == ["r1"]
    release.set()
    assert built.wait(timeout=30)
    assert reader.read_scores(customer_id="c1")["run_id"].tolist() == ["r2"]


def test_a_republished_latest_run_is_never_answered_from_its_deleted_files(tmp_path):
    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), FRAME)
    reader = ScoreStore(tmp_path, index_runs=True)
    assert reader.read_scores(customer_id="c1")["p_churn"].tolist() == [0.1]
    changed = FRAME.assign(p_churn=0.55)
    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), changed)  # same run_id: the old folder is deleted
    row = reader.read_scores(customer_id="c1", columns=["customer_id", "p_churn", "reason_text_en"])
    assert row["p_churn"].tolist() == [0.55] and row["reason_text_en"].tolist() == ["reason of c1"]


def test_a_new_run_that_cannot_be_indexed_is_reported_not_hidden_behind_the_previous_one(tmp_path):
    publish(ScoreStore(tmp_path), "r1", dt.date(2026, 1, 31), FRAME)
    reader = ScoreStore(tmp_path, index_runs=True)
    assert reader.read_scores(customer_id="c1")["run_id"].tolist() == ["r1"]
    publish(ScoreStore(tmp_path), "r2", dt.date(2026, 2, 28), FRAME)
    numbers = next((tmp_path / "runs").glob("r2__*/scores/numbers.parquet"))
    numbers.write_bytes(b"damaged")
    deadline = time.monotonic() + 30
    with pytest.raises(pa.ArrowInvalid, match="numbers.parquet"):
        while time.monotonic() < deadline:
            reader.read_scores(customer_id="c1")  # the previous run answers until the background build fails
            time.sleep(0.05)
    assert time.monotonic() < deadline
