"""What changed between two runs: transition matrix, movers and their why, on two tiny hand-made runs."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serving.changes import (
    CHANGES_TABLE,
    TRANSITIONS_TABLE,
    ChangesError,
    RunSide,
    changes_between,
    changes_tables,
    previous_run_id,
    score_changes,
    segment_transitions,
    with_changes,
)
from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore


def _scores(rows):
    """rows: (customer, p_churn, clv, segment, churn_raw, value_raw, churn_base, value_base)."""
    columns = ["customer_id", "p_churn", "clv", "segment", "churn_raw", "value_raw", "churn_base", "value_base"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["value_tier"] = "A"
    return frame


def _reasons(rows):
    """rows: (customer, score, feature, value, contribution)."""
    return pd.DataFrame(rows, columns=["customer_id", "score", "feature", "value", "contribution"])


def _before(churn_version="1"):
    scores = _scores([
        ("C1", 0.20, 1000.0, "regular", 0.20, 5.0, 0.10, 4.0),
        ("C2", 0.10, 5000.0, "regular", -1.00, 6.0, 0.10, 4.0),
        ("C3", 0.80, 100.0, "at_risk", 2.00, 3.0, 0.10, 4.0),
    ])
    reasons = _reasons([
        ("C1", "churn", "days_since_last_order", "10", 0.05),
        ("C1", "churn", "order_gap_mean_days", "30", -0.05),
        ("C1", "value", "revenue_sum_90d", "900", 0.50),
        ("C2", "churn", "days_since_last_order", "3", -0.40),
        ("C3", "churn", "days_since_last_order", "200", 1.50),
    ])
    return RunSide("r1", dt.date(2024, 1, 1), churn_version, "1", scores, reasons)


def _after(churn_version="1", churn_base=0.10):
    scores = _scores([
        ("C1", 0.70, 400.0, "at_risk", 1.60, 4.0, churn_base, 4.0),
        ("C2", 0.10, 5000.0, "regular", -1.00, 6.0, churn_base, 4.0),
        ("C4", 0.30, 2000.0, "growth", 0.50, 5.5, churn_base, 4.0),
    ])
    reasons = _reasons([
        ("C1", "churn", "days_since_last_order", "84", 1.00),
        ("C1", "churn", "revenue_sum_90d", "0", 0.30),
        ("C1", "value", "revenue_sum_90d", "0", -0.40),
        ("C2", "churn", "days_since_last_order", "3", -0.40),
        ("C4", "churn", "days_since_last_order", "20", 0.20),
    ])
    return RunSide("r2", dt.date(2024, 2, 1), churn_version, "1", scores, reasons)


def _row(changes, customer):
    return changes.set_index("customer_id").loc[customer]


def test_transition_matrix_counts_new_gone_and_shares():
    matrix = segment_transitions(score_changes(_before(), _after()))
    got = {(r.from_segment, r.to_segment): (r.customers, r.share_of_from, r.share_of_all) for r in matrix.itertuples()}
    assert got == {
        ("(new)", "growth"): (1, 1.0, 0.25),
        ("at_risk", "(gone)"): (1, 1.0, 0.25),
        ("regular", "at_risk"): (1, 0.5, 0.25),
        ("regular", "regular"): (1, 0.5, 0.25),
    }


def test_statuses_and_score_deltas():
    changes = score_changes(_before(), _after())
    assert dict(zip(changes["customer_id"], changes["status"], strict=True)) == {"C1": "both", "C2": "both", "C3": "gone", "C4": "new"}
    c1 = _row(changes, "C1")
    assert c1["p_churn_delta"] == pytest.approx(0.50)
    assert c1["clv_delta"] == pytest.approx(-600.0)
    assert np.isnan(_row(changes, "C4")["p_churn_before"])


def test_why_features_and_remainder_add_up_to_the_raw_change_with_the_same_model():
    c1 = _row(score_changes(_before(), _after()), "C1")
    # churn: raw 0.20 -> 1.60. Listed: days_since_last_order 0.05 -> 1.00 (+0.95),
    # revenue_sum_90d 0 -> 0.30 (+0.30), order_gap_mean_days -0.05 -> 0 (+0.05): 1.30; the rest 0.10.
    assert c1["churn_raw_delta"] == pytest.approx(1.40)
    assert c1["churn_model_part"] == 0.0
    assert [c1["churn_why_1"], c1["churn_why_2"], c1["churn_why_3"]] == ["days_since_last_order", "revenue_sum_90d", "order_gap_mean_days"]
    assert [c1["churn_why_1_change"], c1["churn_why_2_change"], c1["churn_why_3_change"]] == pytest.approx([0.95, 0.30, 0.05])
    assert c1["churn_other"] == pytest.approx(0.10)
    listed = c1["churn_why_1_change"] + c1["churn_why_2_change"] + c1["churn_why_3_change"]
    assert listed + c1["churn_other"] + c1["churn_model_part"] == pytest.approx(c1["churn_raw_delta"])
    # value: raw 5.0 -> 4.0; revenue_sum_90d 0.50 -> -0.40 (-0.90); the rest -0.10.
    assert c1["value_why_1"] == "revenue_sum_90d" and c1["value_why_1_change"] == pytest.approx(-0.90)
    assert c1["value_other"] == pytest.approx(-0.10)


def test_a_new_model_shows_its_base_shift_apart():
    c1 = _row(score_changes(_before(churn_version="1"), _after(churn_version="2", churn_base=0.30)), "C1")
    assert c1["churn_model_part"] == pytest.approx(0.20)
    # 1.40 = 0.20 (model) + 1.30 (listed features) + -0.10 (other features)
    assert c1["churn_other"] == pytest.approx(-0.10)
    assert c1["value_model_part"] == 0.0  # the value model did not change
    assert "new model +0.20" in c1["sentence_en"]
    assert "模型更换 +0.20" in c1["sentence_zh"]


def test_sentences_in_english_and_chinese():
    changes = score_changes(_before(), _after())
    c1 = _row(changes, "C1")
    assert c1["sentence_en"].startswith("p_churn rose 0.20 -> 0.70: no order for 84 days (+0.95); spend of 0 in the last 90 days (+0.30)")
    assert "other features +0.10" in c1["sentence_en"]
    assert "value (CLV) fell 1,000 -> 400: spend of 0 in the last 90 days (-0.90)" in c1["sentence_en"]
    assert c1["sentence_zh"].startswith("流失概率由 0.20 上升至 0.70：已84天未下单 (+0.95)；近90天消费额0 (+0.30)")
    assert "其他特征 +0.10" in c1["sentence_zh"]
    assert _row(changes, "C2")["sentence_en"] == "p_churn unchanged at 0.10. value (CLV) unchanged at 5,000."
    assert _row(changes, "C4")["sentence_en"].startswith("New in this run: p_churn 0.30.")
    assert _row(changes, "C3")["sentence_zh"].startswith("本次已无此客户；此前：流失概率 0.80。")


def test_an_earlier_run_without_raw_scores_leaves_the_remainder_unknown_not_zero():
    before = _before()
    before = RunSide(before.run_id, before.as_of, "1", "1", before.scores.drop(columns=["churn_raw", "value_raw"]), before.reasons)
    c1 = _row(score_changes(before, _after()), "C1")
    assert np.isnan(c1["churn_other"]) and np.isnan(c1["churn_raw_delta"])
    assert c1["churn_why_1"] == "days_since_last_order"  # the listed features are still known
    assert "other features" not in c1["sentence_en"]


def test_first_run_every_customer_is_new_and_its_table_has_the_usual_types():
    changes = score_changes(None, _after())
    assert set(changes["status"]) == {"new"}
    matrix = segment_transitions(changes)
    assert set(matrix["from_segment"]) == {"(new)"}
    table = changes_tables(None, _after())[CHANGES_TABLE]
    later = changes_tables(_before(), _after())[CHANGES_TABLE]
    assert table.schema.field("from_run_id").type == pa.string()
    assert table.schema.equals(later.schema)  # a sink creating its table from the first run takes the later ones too


# ---------------------------------------------------------------------- through a store


def _scored(side: RunSide) -> ScoredRun:
    scores = side.scores.copy()
    scores["as_of"] = side.as_of
    scores["run_id"] = side.run_id
    scores["churn_model_version"] = side.churn_model_version
    scores["value_model_version"] = side.value_model_version
    for column in ("expected_revenue", "expected_margin", "cost_to_serve", "net_value", "value_p10", "value_p90"):
        scores[column] = 1.0
    for column in ("segment_label_en", "segment_label_zh", "segment_reason", "reason_text_en", "reason_text_zh"):
        scores[column] = "x"
    scores["reasons"] = "{}"
    explanations = side.reasons.assign(run_id=side.run_id, direction=np.where(side.reasons["contribution"] > 0, "raises", "lowers"),
                                       rank=1, family="recency")
    return ScoredRun.from_tables(scores, explanations, run_id=side.run_id)


def _publish(store: ScoreStore, side: RunSide) -> None:
    previous = previous_run_id(store, side.run_id, side.as_of)
    from serving.changes import side_of_sink

    scored = with_changes(_scored(side), None if previous is None else side_of_sink(store, previous), side.as_of)
    store.publish(RunMetadata(run_id=side.run_id, as_of=side.as_of, churn_model_version=side.churn_model_version,
                              value_model_version=side.value_model_version), scored)


def test_published_runs_carry_their_changes_and_the_report_reads_them(tmp_path):
    store = ScoreStore(tmp_path)
    _publish(store, _before())
    _publish(store, _after())
    stored = store.read_table(CHANGES_TABLE, "r2")
    assert set(stored["from_run_id"]) == {"r1"}
    c1 = stored.set_index("customer_id").loc["C1"]
    assert c1["churn_other"] == pytest.approx(0.10)  # r1's raw scores came back from r1's own table
    assert len(store.read_table(TRANSITIONS_TABLE, "r2")) == 4
    report = changes_between(store, top=1)
    assert report["from"]["run_id"] == "r1" and report["to"]["run_id"] == "r2"
    assert report["customers"] == {"both": 2, "new": 1, "gone": 1}
    mover = report["movers"]["p_churn"][0]
    assert mover["customer_id"] == "C1" and mover["p_churn_delta"] == pytest.approx(0.5)
    assert mover["churn_why"]["features"][0] == {"feature": "days_since_last_order", "change": pytest.approx(0.95)}
    assert mover["churn_why"]["other_features"] == pytest.approx(0.10)
    assert report["movers"]["clv"][0]["customer_id"] == "C1"
    assert json.loads(json.dumps(report)) == report  # JSON-ready as it is, for the API
    zh = changes_between(store, top=1, lang="zh")
    assert zh["movers"]["p_churn"][0]["sentence"].startswith("流失概率由 0.20 上升至 0.70")


def test_report_computes_the_changes_for_a_pair_not_stored(tmp_path):
    store = ScoreStore(tmp_path)
    _publish(store, _after())  # published first, later compared with nothing stored against r1
    _publish(store, RunSide("r3", dt.date(2024, 3, 1), "1", "1", _before().scores, _before().reasons))
    report = changes_between(store, from_run="r3", to_run="r2", segment="growth")
    assert report["transitions"] == [{"from_segment": "(new)", "to_segment": "growth", "customers": 1,
                                      "share_of_from": 1.0, "share_of_all": 1.0}]


def test_unknown_runs_and_a_lone_run_are_one_line_errors(tmp_path):
    store = ScoreStore(tmp_path)
    with pytest.raises(ChangesError, match="no published run yet"):
        changes_between(store)
    _publish(store, _before())
    with pytest.raises(ChangesError, match="no run published before it"):
        changes_between(store)
    with pytest.raises(ChangesError, match="from run nope: no such published run"):
        changes_between(store, from_run="nope")
    with pytest.raises(ValueError, match="lang 'fr'"):
        changes_between(store, lang="fr")
    with pytest.raises(ValueError, match="top 0"):
        changes_between(store, top=0)


# ---------------------------------------------------------------------- in partitions, from files


def _from_files(side: RunSide, folder, parts: int = 2) -> RunSide:
    """The side with its reasons in Parquet part files, as a scored or published run keeps them."""
    from serving.changes_why import file_reasons

    folder.mkdir()
    paths = []
    for i, chunk in enumerate(np.array_split(np.arange(len(side.reasons)), parts)):
        path = folder / f"part-{i:05d}.parquet"
        pa.Table.from_pandas(side.reasons.iloc[chunk], preserve_index=False).to_pandas().to_parquet(path)
        paths.append(path)
    return RunSide(side.run_id, side.as_of, side.churn_model_version, side.value_model_version, side.scores, file_reasons(paths))


@pytest.mark.parametrize("partition_rows", [1, 2, 100])
def test_a_comparison_in_partitions_from_part_files_equals_the_one_in_one_piece(tmp_path, partition_rows):
    from serving.changes import changes_table
    from tests.serving.changes_reference import reference_table

    expected = reference_table(_before(), _after())
    before, after = _from_files(_before(), tmp_path / "r1"), _from_files(_after(), tmp_path / "r2", parts=3)
    got = changes_table(before, after, partition_rows=partition_rows, spill_to=tmp_path / "changes.arrow")
    assert got.equals(expected)
    assert got.column("churn_why_1").to_pylist()[0] == "days_since_last_order"  # C1, by hand above


def test_only_the_features_a_sentence_states_have_their_values_read_and_said(monkeypatch):
    import serving.changes_why as why

    asked = []
    real = why.sentence_codes

    def recording(feature, values, context):
        asked.append((feature, list(values)))
        return real(feature, values, context)

    monkeypatch.setattr(why, "sentence_codes", recording)
    score_changes(_before(), _after())
    # C2 did not move (its "3 days" is never said); C1's churn rose and its CLV fell: the features that pushed
    # that way, with C1's values in the later run, or the earlier one where the feature is a reason only there.
    assert sorted(asked) == [("days_since_last_order", [84.0]), ("order_gap_mean_days", [30.0]),
                             ("revenue_sum_90d", [0.0, 0.0])]
