"""The text side of scoring: reason columns, top-k choice and part files read back exactly as the contract says."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.reason_encoding import reason_columns_table
from serving.reason_selection import _top_k_by_partition, top_k_contributions
from serving.reasons import DIRECTIONS, reasons_for_chunk, reasons_table
from serving.score_table import EXPLANATION_SCHEMA, SCORE_TEXTS_SCHEMA, conform
from serving.scored_run import ScoredRun
from serving.scoring import (
    SEGMENT_INPUT_COLUMNS,
    StageClock,
    _ExplainedChunk,
    _finish_chunk,
    format_reasons,
)
from serving.sentences import HEADERS
from serving.settings import ScoringSettings
from serving.store import ScoreStore
from tests.serving.test_store import _summary, make_scores, metadata

NAMES = ["revenue_sum_90d", "order_count_90d", "days_since_last_order", "recency_over_gap_mean", "return_share_90d", "attr_industry"]


def _chunk(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature values (repeats, NaN, -0.0, text with quotes) and contributions with ties, zeros and both signs."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "revenue_sum_90d": rng.choice([0.0, -0.0, 12437.3, 950.0, np.nan, 3.3], n),
            "order_count_90d": rng.integers(0, 4, n).astype(float),
            "days_since_last_order": rng.choice([1.0, 120.0, 400.0, np.nan], n),
            "recency_over_gap_mean": rng.choice([0.5, 3.14, np.nan], n),
            "return_share_90d": rng.uniform(0, 1, n).round(3),
            "attr_industry": pd.Categorical(rng.choice(["retail", 'Acme "Best"', None], n)),
        }
    )
    contrib = rng.choice([-0.5, -0.25, 0.0, 0.125, 0.25, 1.5], size=(n, len(NAMES) + 1)) + rng.normal(0, 1, (n, len(NAMES) + 1)) * (rng.uniform(size=(n, 1)) < 0.5)
    return X, contrib


def _reference_row(reasons: pd.DataFrame, scores: list[str]) -> tuple[str, str, str]:
    """One customer's JSON and texts built field by field in Python, as the contract describes them."""
    body, en_groups, zh = {}, [], ""
    for score in scores:
        body[score] = {}
        for direction in DIRECTIONS:
            part = reasons[(reasons["score"] == score) & (reasons["direction"] == direction)].sort_values("rank")
            body[score][direction] = [
                {"rank": int(r.rank), "value": None if pd.isna(r.value) else r.value,
                 "contribution": f"@{pc.cast(pc.round(pa.array([r.contribution]), 6), pa.string())[0].as_py()}@",
                 "feature": r.feature, "family": r.family}
                for r in part.itertuples()
            ]  # fmt: skip
            if len(part):
                head_en, head_zh = HEADERS[(score, direction)]
                en_groups.append(head_en + "; ".join(part["sentence_en"]))
                zh += head_zh + "；".join(part["sentence_zh"]) + "。"
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":")).replace('"@', "").replace('@"', "")
    return text, ". ".join(en_groups) + ("." if en_groups else ""), zh


def test_reason_columns_equal_a_row_by_row_reference_across_blocks():
    X, contrib = _chunk(120, seed=5)
    tables = [reasons_table(contrib, X, NAMES, score="churn", k=3), reasons_table(-contrib[:, ::-1].copy()[:, ::-1], X, NAMES, score="value", k=3)]
    columns = reason_columns_table(tables, len(X), k=3, block_rows=17).to_pandas()
    long = pd.concat([reasons_for_chunk(contrib, X, NAMES, score="churn", k=3),
                      reasons_for_chunk(-contrib[:, ::-1].copy()[:, ::-1], X, NAMES, score="value", k=3)], ignore_index=True)
    for row in range(len(X)):
        expected = _reference_row(long[long["row"] == row], ["churn", "value"])
        assert tuple(columns.loc[row, ["reasons", "reason_text_en", "reason_text_zh"]]) == expected, f"row {row}"
        json.loads(columns.loc[row, "reasons"])  # and it is valid JSON


def test_top_k_by_argmax_passes_picks_exactly_what_argpartition_picked_even_with_ties():
    rng = np.random.default_rng(11)
    for _ in range(100):
        n, f = rng.integers(1, 40), rng.integers(1, 10)
        a = rng.choice([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, np.nan, np.inf], size=(n, f))
        for k in (1, 3, 5):
            got, want = top_k_contributions(a, k), _top_k_by_partition(a, k)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and np.array_equal(g.view(np.int64), w.view(np.int64))


def _explained(n_history: int, n_prospects: int) -> _ExplainedChunk:
    X, contrib = _chunk(n_history, seed=9)
    ids = make_scores(n_history + n_prospects)["customer_id"].to_numpy()
    numbers = pd.DataFrame({c: np.arange(n_history + n_prospects, dtype=float) for c in SEGMENT_INPUT_COLUMNS[1:]})
    numbers.insert(0, "customer_id", ids)
    shap = [("churn", contrib, X, NAMES), ("value", -contrib, X, NAMES)]
    return _ExplainedChunk(0, numbers, ids[:n_history], ids[n_history:], shap)


def _plain_parts(explained: _ExplainedChunk, settings: ScoringSettings, folder: Path, run_id: str) -> tuple[Path, Path]:
    """Part files with every string column plain and default Parquet settings (the layout before)."""
    texts, explanations = format_reasons(explained, settings, StageClock())
    folder.mkdir(parents=True)
    pq.write_table(conform(texts, SCORE_TEXTS_SCHEMA, where="test"), folder / "scores-00000.parquet", compression="zstd")
    explanations = explanations.add_column(0, "run_id", pa.array([run_id] * explanations.num_rows))
    pq.write_table(conform(explanations, EXPLANATION_SCHEMA, where="test"), folder / "explanations-00000.parquet", compression="zstd")
    return folder / "scores-00000.parquet", folder / "explanations-00000.parquet"


def test_published_run_reads_back_identical_from_dictionary_parts_and_from_plain_parts(tmp_path):
    explained, settings = _explained(60, 5), ScoringSettings(value_horizon_days=365, annual_discount_rate=0.1)
    numbers = make_scores(65).drop(columns=["reasons", "reason_text_en", "reason_text_zh"])
    (tmp_path / "new").mkdir()
    _, new_texts, new_explanations = _finish_chunk(explained, settings, tmp_path / "new", StageClock(), "r1")
    old_texts, old_explanations = _plain_parts(explained, settings, tmp_path / "old", "r1")
    stores = {}
    for name, texts, explanations in (("new", new_texts, new_explanations), ("old", old_texts, old_explanations)):
        stores[name] = ScoreStore(tmp_path / f"store-{name}")
        stores[name].publish(metadata("r1"), ScoredRun("r1", pa.Table.from_pandas(numbers), [texts], [explanations], pa.Table.from_pandas(_summary())))
    # the new parts are already in contract form: published as hard links, not rewritten
    assert os.stat(new_explanations).st_nlink == 2 and os.stat(new_texts).st_nlink == 2
    new, old = stores["new"], stores["old"]
    pd.testing.assert_frame_equal(new.read_scores(), old.read_scores(), check_exact=True)
    pd.testing.assert_frame_equal(new.read_explanations(), old.read_explanations(), check_exact=True)
    one = make_scores(3)["customer_id"].iloc[2]
    pd.testing.assert_frame_equal(new.read_explanations(customer_id=one, score="value"), old.read_explanations(customer_id=one, score="value"))
    assert len(new.read_explanations(customer_id=one)) > 0
    for suffix in (".csv", ".parquet"):
        new.export_scores(tmp_path / f"new{suffix}")
        old.export_scores(tmp_path / f"old{suffix}")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    assert pq.read_table(tmp_path / "new.parquet").equals(pq.read_table(tmp_path / "old.parquet"))
    assert pq.read_schema(new_explanations).equals(EXPLANATION_SCHEMA, check_metadata=False)


def test_value_text_prints_every_number_as_arrow_prints_the_float():
    from serving.sentences import value_text

    rng = np.random.default_rng(2)
    values = np.concatenate([
        np.arange(-1_100_000, 1_100_000, 997, dtype=float), *(rng.normal(0, 1e7, 400).round(d) for d in (-3, 0, 2, 5)),
        [0.0, -0.0, np.nan, np.inf, -np.inf, 999_999.0, 1e6, -1e6, 1e15, 2.0**53, 12.34567, 1e-5, 0.5],
    ])  # fmt: skip
    expected = pc.cast(pa.array(np.round(values, 4), from_pandas=True), pa.string())
    assert value_text(values).equals(expected)
    assert value_text(values[:100]).equals(expected[:100])  # whole numbers only


def test_recency_sentences_with_the_gap_ratio_are_the_same_served_from_the_cache():
    from serving.sentences import sentence, sentences_for_feature

    days = np.array([120.0, 120.0, 5.0, np.nan, 120.0])
    ratio = np.array([3.14, np.nan, 0.5, 2.0, 3.14])
    for _ in range(2):  # the second call is served from what the first rendered
        en, zh = sentences_for_feature("days_since_last_order", days, ratio)
        assert [(e, z) for e, z in zip(en, zh, strict=True)] == [sentence("days_since_last_order", d, context=r) for d, r in zip(days, ratio, strict=True)]


def test_recency_sentences_of_many_pairs_match_one_at_a_time_cold_and_warm():
    from serving.sentences import sentence, sentences_for_feature

    rng = np.random.default_rng(5)
    for n in (300, 300, 600):  # overlapping draws: later calls mix cached and new (value, ratio) pairs
        days = rng.integers(0, 40, n).astype(float)
        # days / usual gap is never -0.0 (the factorised path would print it as 0, sentence() as -0)
        ratio = rng.choice([0.0, np.nan, 0.5, 1.25, 3.14159, 10.0, 123.456], n)
        days[rng.random(n) < 0.05] = np.nan
        en, zh = sentences_for_feature("days_since_last_order", days, ratio)
        expected = [sentence("days_since_last_order", d, context=r) for d, r in zip(days, ratio, strict=True)]
        assert list(zip(en, zh, strict=True)) == expected
