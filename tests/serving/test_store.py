"""Publishing runs all-or-nothing, reading them back, exporting them."""

from __future__ import annotations

import csv
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.safe_csv import original_text
from serving.score_table import EXPLANATION_COLUMNS, SCORE_COLUMNS, ContractError
from serving.scored_run import ScoredRun
from serving.store import RunMetadata, RunNotFoundError, ScoreStore

AS_OF = dt.date(2026, 9, 30)


def make_scores(n: int, *, start: int = 0, p: float = 0.3, segment_every: int = 3) -> pd.DataFrame:
    """Score rows with every contract column except the ones the store stamps (run_id, as_of, versions)."""
    ids = [f"c{i:05d}" for i in range(start, start + n)]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "p_churn": [p] * n,
            "expected_revenue": [100.0 + i for i in range(n)],
            "expected_margin": 30.0,
            "cost_to_serve": 5.0,
            "net_value": 25.0,
            "clv": [200.0 + i for i in range(n)],
            "value_p10": 50.0,
            "value_p90": 150.0,
            "value_tier": "A",
            "segment": ["at_risk" if i % segment_every == 0 else "regular" for i in range(n)],
            "segment_label_en": "regular",
            "segment_label_zh": "普通客户",
            "segment_reason": "no other class matched",
            "reasons": '{"churn":{"raises":[],"lowers":[]}}',
            "reason_text_en": "Raises churn risk: no order for 120 days.",
            "reason_text_zh": "推高流失风险：已120天未下单。",
        }
    )


def make_explanations(scores: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": scores["customer_id"],
            "score": "churn",
            "direction": "raises",
            "rank": 1,
            "feature": "days_since_last_order",
            "family": "recency",
            "value": "120",
            "contribution": 0.5,
        }
    )


def metadata(run_id: str, as_of: dt.date = AS_OF) -> RunMetadata:
    return RunMetadata(run_id=run_id, as_of=as_of, churn_model_version="1", value_model_version="2", data_hash="abc")


def scored_run(scores: pd.DataFrame, explanations: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
               per_part: int = 10) -> ScoredRun:
    """A run whose texts come in parts of `per_part` customers, as chunked scoring hands them over."""
    whole = ScoredRun.from_tables(scores, explanations, summary)
    texts = whole.text_parts[0]
    whole.text_parts = [texts.slice(i, per_part) for i in range(0, max(texts.num_rows, 1), per_part)]
    return whole


def publish(store: ScoreStore, run_id: str, n: int = 30, as_of: dt.date = AS_OF, p: float = 0.3):
    scores = make_scores(n, p=p)
    return store.publish(metadata(run_id, as_of), scored_run(scores, make_explanations(scores), _summary()))


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {"group_by": ["segment"], "group": ["regular"], "label_en": ["regular"], "label_zh": ["普通客户"],
         "customers": [30], "share_customers": [1.0], "current_value": [1.0], "share_current_value": [1.0],
         "predicted_value": [2.0], "share_predicted_value": [1.0], "mean_p_churn": [0.3]}
    )  # fmt: skip


def test_publish_and_read_back(tmp_path):
    store = ScoreStore(tmp_path)
    run = publish(store, "r1")
    assert (run.score_rows, run.explanation_rows, run.summary_rows) == (30, 30, 1)
    scores = store.read_scores()
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert scores["customer_id"].tolist() == make_scores(30)["customer_id"].tolist()
    assert set(scores["run_id"]) == {"r1"} and set(scores["as_of"]) == {AS_OF}
    assert scores["reason_text_zh"].iloc[0] == "推高流失风险：已120天未下单。"
    assert len(store.read_scores(segment="at_risk")) == 10
    assert store.read_scores(customer_id="c00003")["customer_id"].tolist() == ["c00003"]
    assert list(store.read_explanations(customer_id=["c00001", "c00002"]).columns) == list(EXPLANATION_COLUMNS)
    assert len(store.read_explanations(customer_id=["c00001", "c00002"])) == 2
    assert store.read_summary()["run_id"].tolist() == ["r1"]
    meta = store.run_metadata()
    assert (meta.run_id, meta.churn_model_version, meta.data_hash) == ("r1", "1", "abc")


def test_latest_run_is_latest_as_of_then_last_published(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "new", as_of=dt.date(2026, 10, 31))
    publish(store, "backfill", as_of=dt.date(2026, 8, 31))
    assert store.latest_run().run_id == "new"
    assert store.list_runs()["run_id"].tolist() == ["backfill", "new"]
    assert store.read_scores(as_of="2026-08-31")["run_id"].unique().tolist() == ["backfill"]
    with pytest.raises(RunNotFoundError, match="2026-07-31"):
        store.read_scores(as_of="2026-07-31")
    with pytest.raises(RunNotFoundError, match="nope"):
        store.read_scores(run_id="nope")


def test_republishing_a_run_id_replaces_it_without_duplicates(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    first = store.read_scores()
    publish(store, "r1")
    again = store.read_scores()
    assert len(again) == 30 and again["customer_id"].is_unique
    pd.testing.assert_frame_equal(first, again)
    assert len(store.list_runs()) == 1
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the replaced files were removed


def test_duplicate_customers_in_a_run_are_refused(tmp_path):
    store = ScoreStore(tmp_path)
    scores = make_scores(5)
    with pytest.raises(ContractError, match="c00000"):
        store.publish(metadata("r1"), scored_run(pd.concat([scores, scores.iloc[:1]])))
    assert store.latest_run() is None


def test_chunks_with_another_run_id_are_refused(tmp_path):
    scores = make_scores(5).assign(run_id="other")
    with pytest.raises(ContractError, match="other"):
        ScoreStore(tmp_path).publish(metadata("r1"), ScoredRun.from_tables(scores))


def test_publish_failing_mid_way_keeps_the_previous_run(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")

    scores = make_scores(20, p=0.9)
    run = scored_run(scores, make_explanations(scores))
    run.explanation_parts.append(tmp_path / "work" / "explanations-00001.parquet")  # its scoring crashed before writing it

    with pytest.raises(ContractError, match="cannot read the part file"):
        store.publish(metadata("r2"), run)
    assert store.latest_run().run_id == "r1"
    assert store.read_scores()["p_churn"].eq(0.3).all()
    assert not any((tmp_path / "staging").iterdir())


def _publisher_script(root: Path, body: str) -> str:
    return textwrap.dedent(
        f"""
        import datetime as dt, os, signal, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import pyarrow as pa
        from test_store import make_scores, metadata, scored_run
        import serving.store_files as files
        from serving.scored_run import ScoredRun
        from serving.store import ScoreStore
        store = ScoreStore({str(root)!r})
        """
    ) + textwrap.dedent(body)


def _run_publisher(root: Path, body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _publisher_script(root, body)], capture_output=True, text=True, timeout=120)


def test_process_killed_while_writing_chunks_leaves_previous_run(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    body = """
        written = files.write_table
        def write_then_die(table, path):
            written(table, path)
            os.kill(os.getpid(), signal.SIGKILL)
        files.write_table = write_then_die
        store.publish(metadata("r1"), scored_run(make_scores(20, p=0.9)))
    """
    result = _run_publisher(tmp_path, body)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert any((tmp_path / "staging").iterdir())  # the killed publish left files behind...
    assert store.latest_run().run_id == "r1"
    scores = store.read_scores()
    assert len(scores) == 30 and scores["p_churn"].eq(0.3).all()  # ...but readers still see the old run
    publish(store, "r2")
    assert not any((tmp_path / "staging").iterdir())  # and the next publish cleaned them up
    assert set(store.list_runs()["run_id"]) == {"r1", "r2"}


@pytest.mark.slow
def test_process_killed_just_before_the_manifest_switch_leaves_previous_run(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    body = """
        ScoreStore._write_manifest = lambda self, runs: os._exit(3)
        store.publish(metadata("r1"), scored_run(make_scores(40, p=0.9)))
    """
    result = _run_publisher(tmp_path, body)
    assert result.returncode == 3, result.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 2  # the new files are complete but not referenced
    assert store.latest_run().run_id == "r1"
    assert len(store.read_scores()) == 30
    publish(store, "r3")
    assert sorted(p.name.split("__")[0] for p in (tmp_path / "runs").iterdir()) == ["r1", "r3"]


@pytest.mark.slow
def test_process_killed_by_another_process_mid_publish(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    body = """
        written = files.write_table
        def slowly(table, path):
            written(table, path)
            time.sleep(0.01)
        files.write_table = slowly
        scores = make_scores(100_000, p=0.9)
        run = ScoredRun.from_tables(scores)
        run.explanation_parts = [pa.Table.from_pandas(scores.iloc[i : i + 100][["customer_id"]].assign(
            score="churn", direction="raises", rank=1, feature="f", family="recency", value="1",
            contribution=0.5)) for i in range(0, len(scores), 100)]
        store.publish(metadata("r2"), run)
    """
    proc = subprocess.Popen([sys.executable, "-c", _publisher_script(tmp_path, body)])
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "staging").glob("*/scores/numbers.parquet")):
            assert time.monotonic() < deadline, "publisher never started writing"
            assert proc.poll() is None, "publisher ended before it was killed"
            time.sleep(0.05)
        time.sleep(0.3)
        assert store.latest_run().run_id == "r1"  # readers during the publish see the old run
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert store.latest_run().run_id == "r1"
    assert len(store.read_scores()) == 30


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_has_exactly_the_contract_columns(tmp_path, suffix):
    store = ScoreStore(tmp_path / "store")
    publish(store, "r1")
    target = tmp_path / "out" / f"scores{suffix}"
    store.export_scores(target)
    exported = pd.read_csv(target) if suffix == ".csv" else pq.read_table(target).to_pandas()
    assert list(exported.columns) == list(SCORE_COLUMNS)
    assert len(exported) == 30
    assert exported["reason_text_zh"].iloc[0] == "推高流失风险：已120天未下单。"


def test_export_to_an_unknown_format_says_what_to_use(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        store.export_scores(tmp_path / "scores.xlsx")


FORMULA_IDS = ["=1+1", "@SUM(A1:A9)", "+44 20", "-x", "'quoted", "plain"]


def publish_formula_ids(store: ScoreStore) -> pd.DataFrame:
    """Customers whose ids a spreadsheet would evaluate, with negative numbers beside them."""
    scores = make_scores(len(FORMULA_IDS)).assign(
        customer_id=FORMULA_IDS,
        net_value=[-12.5, 3.0, -0.25, 4.0, 5.0, -1e6],
        segment_reason=["-40% revenue vs last year", "ok", "ok", "ok", "ok", "ok"],
    )
    store.publish(metadata("r1"), scored_run(scores, make_explanations(scores), _summary()))
    return scores


def test_csv_export_quotes_text_a_spreadsheet_would_evaluate_and_keeps_numbers(tmp_path):
    store = ScoreStore(tmp_path / "store")
    publish_formula_ids(store)
    target = tmp_path / "scores.csv"
    store.export_scores(target)
    with open(target, encoding="utf-8", newline="") as handle:
        cells = list(csv.DictReader(handle))
    assert [row["customer_id"] for row in cells] == ["'=1+1", "'@SUM(A1:A9)", "'+44 20", "'-x", "''quoted", "plain"]
    assert [row["segment_reason"] for row in cells][:2] == ["'-40% revenue vs last year", "ok"]
    assert [row["net_value"] for row in cells] == ["-12.5", "3", "-0.25", "4", "5", "-1000000"]
    back = pd.read_csv(target, dtype={"customer_id": str})
    assert back["net_value"].tolist() == [-12.5, 3.0, -0.25, 4.0, 5.0, -1e6]  # numbers, not text
    assert back["customer_id"].map(original_text).tolist() == FORMULA_IDS  # one leading quote removed


def test_parquet_export_keeps_ids_as_published(tmp_path):
    store = ScoreStore(tmp_path / "store")
    publish_formula_ids(store)
    store.export_scores(tmp_path / "scores.parquet")
    exported = pq.read_table(tmp_path / "scores.parquet").to_pandas()
    assert exported["customer_id"].tolist() == FORMULA_IDS
    assert exported["segment_reason"].iloc[0] == "-40% revenue vs last year"
    assert store.read_scores()["customer_id"].tolist() == FORMULA_IDS  # the store itself is unchanged


def test_duckdb_views_over_the_latest_run(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1", as_of=dt.date(2026, 8, 31))
    publish(store, "r2")
    con = store.connect_views()
    assert con.execute("SELECT DISTINCT run_id FROM scores").fetchall() == [("r2",)]
    assert con.execute("SELECT count(*) FROM explanations").fetchone() == (30,)
    assert con.execute("SELECT count(*) FROM score_history").fetchone() == (60,)
    assert con.execute("SELECT run_id FROM runs ORDER BY as_of").fetchall() == [("r1",), ("r2",)]
    assert con.execute("SELECT count(*) FROM segment_summary").fetchone() == (1,)
    assert isinstance(con, duckdb.DuckDBPyConnection)


def test_reading_an_empty_store_says_how_to_fill_it(tmp_path):
    with pytest.raises(RunNotFoundError, match="custscore run"):
        ScoreStore(tmp_path).read_scores()
    assert ScoreStore(tmp_path).latest_run() is None
    assert ScoreStore(tmp_path).list_runs().empty


def test_unsafe_run_id_is_refused():
    with pytest.raises(ValueError, match="run_id"):
        RunMetadata(run_id="../etc", as_of=AS_OF)


def test_killed_publisher_never_leaves_a_half_written_manifest(tmp_path):
    store = ScoreStore(tmp_path)
    publish(store, "r1")
    (tmp_path / ".manifest.json.deadbeef.tmp").write_text('{"format": 1, "runs": {"half', encoding="utf-8")
    assert store.latest_run().run_id == "r1"  # a temporary manifest is never read
    publish(store, "r2")
    assert not list(tmp_path.glob(".manifest.json.*.tmp"))
    assert os.path.exists(tmp_path / "manifest.json")


def test_a_run_scored_in_chunks_keeps_each_chunk_s_reasons_with_its_customers(tmp_path):
    import numpy as np

    from serving.reason_encoding import reason_columns
    from serving.reasons import reasons_table
    from serving.score_table import explanations_from_reasons

    names = ["days_since_last_order", "attr_industry"]
    store = ScoreStore(tmp_path)
    scores, explanations = [], []
    for start in (0, 10):
        chunk = make_scores(10, start=start).drop(columns=["reasons", "reason_text_en", "reason_text_zh"])
        X = pd.DataFrame({"days_since_last_order": np.arange(10, dtype=float) + 100, "attr_industry": pd.Categorical(["retail"] * 10)})
        churn = reasons_table(np.tile([1.0, -0.5, 0.0], (10, 1)), X, names, score="churn", k=3)
        scores.append(pd.concat([chunk.reset_index(drop=True), reason_columns([churn], 10)], axis=1))
        explanations.append(explanations_from_reasons(churn, chunk["customer_id"], "r1").to_pandas())

    run = store.publish(metadata("r1"), scored_run(pd.concat(scores, ignore_index=True), pd.concat(explanations)))
    assert (run.score_rows, run.explanation_rows) == (20, 40)
    one = store.read_scores(customer_id="c00012").iloc[0]
    assert one["reason_text_en"] == "Raises churn risk: no order for 102 days. Lowers churn risk: industry: retail."
    explained = store.read_explanations(customer_id="c00012")
    assert explained[["direction", "feature", "family", "value"]].values.tolist() == [
        ["raises", "days_since_last_order", "recency", "102"],
        ["lowers", "attr_industry", "attributes", "retail"],
    ]
    assert one["reason_text_zh"] == "推高流失风险：已102天未下单。降低流失风险：行业：retail。"


# ---------------------------------------------------------------------- publishing part files (the scoring fast path)

TEXT_COLUMNS = ["reasons", "reason_text_en", "reason_text_zh"]


def parts_run(numbers: pd.DataFrame, texts: list[Path], explanations: list[Path], summary: pd.DataFrame | None = None) -> ScoredRun:
    """A run backed by part files, as score_run hands it over."""
    return ScoredRun(None, pa.Table.from_pandas(numbers, preserve_index=False), texts, explanations,
                     None if summary is None else pa.Table.from_pandas(summary))


def write_parts(folder: Path, run_id: str, n: int = 30, per_part: int = 10) -> tuple[pd.DataFrame, list[Path], list[Path]]:
    """Numbers, text parts and explanation parts in the store's schemas, as score_run leaves them."""
    from serving.score_table import EXPLANATION_SCHEMA, SCORE_TEXTS_SCHEMA, conform

    folder.mkdir(parents=True, exist_ok=True)
    scores = make_scores(n)
    texts, explanations = [], []
    for i, start in enumerate(range(0, n, per_part)):
        part = scores.iloc[start : start + per_part]
        texts.append(folder / f"scores-{i:05d}.parquet")
        pq.write_table(conform(part[["customer_id", *TEXT_COLUMNS]], SCORE_TEXTS_SCHEMA, where="test"), texts[-1])
        explained = make_explanations(part).assign(run_id=run_id)
        explanations.append(folder / f"explanations-{i:05d}.parquet")
        pq.write_table(conform(pa.Table.from_pandas(explained, preserve_index=False), EXPLANATION_SCHEMA, where="test"), explanations[-1])
    return scores.drop(columns=TEXT_COLUMNS), texts, explanations


def test_published_parts_read_back_as_one_score_table(tmp_path):
    numbers, texts, explanations = write_parts(tmp_path / "work", "r1")
    store = ScoreStore(tmp_path / "store")
    run = store.publish(metadata("r1"), parts_run(numbers, texts, explanations, _summary()))
    assert (run.score_rows, run.explanation_rows, run.summary_rows) == (30, 30, 1)
    expected = make_scores(30)
    scores = store.read_scores()
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert scores["customer_id"].tolist() == expected["customer_id"].tolist()
    assert scores["reasons"].tolist() == expected["reasons"].tolist()
    at_risk = store.read_scores(segment="at_risk")
    assert at_risk["customer_id"].tolist() == expected.loc[expected["segment"] == "at_risk", "customer_id"].tolist()
    one = store.read_scores(customer_id="c00021").iloc[0]
    assert (one["clv"], one["reason_text_zh"]) == (221.0, "推高流失风险：已120天未下单。")
    assert len(store.read_explanations(customer_id=["c00001", "c00025"])) == 2
    exported = tmp_path / "out.csv"
    store.export_scores(exported)
    assert pd.read_csv(exported)["customer_id"].tolist() == expected["customer_id"].tolist()
    con = store.connect_views()
    assert con.execute("SELECT count(*), count(DISTINCT reasons) FROM scores WHERE segment = 'at_risk'").fetchone() == (10, 1)


def test_published_parts_are_linked_not_rewritten_and_survive_deleting_the_work_folder(tmp_path):
    import shutil

    numbers, texts, explanations = write_parts(tmp_path / "work", "r1")
    store = ScoreStore(tmp_path / "store")
    run = store.publish(metadata("r1"), parts_run(numbers, texts, explanations))
    published = tmp_path / "store" / run.folder / "scores" / "texts-00000.parquet"
    assert os.path.samefile(published, texts[0])  # the same file: nothing was re-encoded
    shutil.rmtree(tmp_path / "work")
    assert len(store.read_scores()) == 30 and len(store.read_explanations()) == 30


def test_parts_out_of_order_with_the_numbers_are_refused_and_the_previous_run_stays(tmp_path):
    store = ScoreStore(tmp_path / "store")
    publish(store, "r1")
    numbers, texts, explanations = write_parts(tmp_path / "work", "r2")
    with pytest.raises(ContractError, match="same order"):
        store.publish(metadata("r2"), parts_run(numbers, list(reversed(texts)), explanations))
    with pytest.raises(ContractError, match="20 rows but the scores have 30"):
        store.publish(metadata("r2"), parts_run(numbers, texts[:2], explanations))
    assert store.latest_run().run_id == "r1"
    assert not any((tmp_path / "store" / "staging").iterdir())


def test_explanation_parts_of_another_run_are_refused(tmp_path):
    numbers, texts, explanations = write_parts(tmp_path / "work", "other-run")
    with pytest.raises(ContractError, match="run_id holds"):
        ScoreStore(tmp_path / "store").publish(metadata("r1"), parts_run(numbers, texts, explanations))


def test_parts_without_run_id_are_converted_on_publish(tmp_path):
    numbers, texts, explanations = write_parts(tmp_path / "work", "r1")
    for path in explanations:  # as score_all writes them when it is not told the run_id
        pq.write_table(pq.read_table(path).drop_columns(["run_id"]), path)
    run = ScoreStore(tmp_path / "store").publish(metadata("r1"), parts_run(numbers, texts, explanations))
    read = ScoreStore(tmp_path / "store").read_explanations()
    assert run.explanation_rows == 30 and set(read["run_id"]) == {"r1"}


@pytest.mark.slow
def test_process_killed_before_the_switch_while_publishing_parts_leaves_previous_run(tmp_path):
    store = ScoreStore(tmp_path / "store")
    publish(store, "r1")
    write_parts(tmp_path / "work", "r1")
    body = f"""
        from test_store import parts_run, write_parts
        from pathlib import Path
        numbers, texts, explanations = write_parts(Path({str(tmp_path / "work")!r}), "r1")
        numbers["p_churn"] = 0.9
        ScoreStore._write_manifest = lambda self, runs: os.kill(os.getpid(), signal.SIGKILL)
        store.publish(metadata("r1"), parts_run(numbers, texts, explanations))
    """
    result = _run_publisher(tmp_path / "store", body)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert store.latest_run().run_id == "r1"
    scores = store.read_scores()
    assert len(scores) == 30 and scores["p_churn"].eq(0.3).all()


def test_scoring_again_into_the_same_work_folder_leaves_the_published_run_alone(tmp_path):
    from serving.scoring import _write_part

    numbers, texts, explanations = write_parts(tmp_path / "work", "r1")
    store = ScoreStore(tmp_path / "store")
    store.publish(metadata("r1"), parts_run(numbers, texts, explanations))
    before = store.read_scores()
    _write_part(pd.DataFrame({"customer_id": ["z"], "reasons": ["{}"], "reason_text_en": [""], "reason_text_zh": [""]}), texts[0])
    pd.testing.assert_frame_equal(store.read_scores(), before)
