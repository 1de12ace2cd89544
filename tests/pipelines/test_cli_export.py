"""`custscore scores export` for a team: segments, tiers, columns, and a CSV that Excel opens well."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from serving.export import UTF8_BOM
from serving.score_table import SCORE_COLUMNS
from serving.store import ScoreStore
from tests.serving.test_store import make_explanations, make_scores, metadata, scored_run

runner = CliRunner()


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    store = ScoreStore(tmp_path / "home" / "store")
    scores = make_scores(12).assign(
        value_tier=["A", "B", "C"] * 4,  # segments: at_risk for every third customer (0, 3, 6, 9)
        p_churn=[0.123456789] * 12,
        clv=[1234.56789] * 12,
        customer_id=[f"c{i:05d}" for i in range(11)] + ["=HYPERLINK(1)"],
    )
    store.publish(metadata("r1"), scored_run(scores, make_explanations(scores), per_part=5))
    return store


def _export(tmp_path, *flags, name="out.csv"):
    out = tmp_path / name
    result = runner.invoke(app, ["scores", "export", "--output", str(out), *flags])
    return result, out


def test_segment_and_tier_filters_keep_only_those_customers(store, tmp_path):
    result, out = _export(tmp_path, "--segment", "at_risk", "--tier", "A")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, dtype={"customer_id": str})
    # at_risk: customers 0, 3, 6, 9; tier A: 0, 3, 6, 9 (tiers cycle A, B, C)
    assert frame["customer_id"].tolist() == ["c00000", "c00003", "c00006", "c00009"]
    assert "4 of 12 rows" in result.output
    result, out = _export(tmp_path, "--segment", "at_risk", "--tier", "B", "--tier", "C")
    assert len(pd.read_csv(out)) == 0
    result, out = _export(tmp_path, "--tier", "B", "--tier", "C")
    assert len(pd.read_csv(out)) == 8


def test_a_customer_without_a_tier_is_left_out_of_every_tier_and_exported_with_an_empty_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    store = ScoreStore(tmp_path / "home" / "store")
    scores = make_scores(3).assign(value_tier=["A", "C", None], segment=["regular", "regular", "new"])
    store.publish(metadata("r1"), scored_run(scores, make_explanations(scores), per_part=5))
    result, out = _export(tmp_path, "--tier", "C")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out, dtype={"customer_id": str})["customer_id"].tolist() == ["c00001"]
    result, out = _export(tmp_path, "--segment", "new", name="new.csv")
    new = pd.read_csv(out, dtype={"customer_id": str}, keep_default_na=False)
    assert new["customer_id"].tolist() == ["c00002"] and new["value_tier"].tolist() == [""]


def test_columns_are_written_in_the_order_asked(store, tmp_path):
    result, out = _export(tmp_path, "--columns", "customer_id, clv,segment")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out).columns) == ["customer_id", "clv", "segment"]


def test_an_unknown_column_is_one_line_naming_it_and_the_valid_ones(store, tmp_path):
    result, out = _export(tmp_path, "--columns", "customer_id,email")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "unknown column 'email'" in lines[0] and ", ".join(SCORE_COLUMNS) in lines[0]
    assert not out.exists()


def test_unknown_segment_or_tier_is_refused(store, tmp_path):
    assert _export(tmp_path, "--segment", "vip")[0].exit_code == 2
    assert _export(tmp_path, "--tier", "D")[0].exit_code == 2


def test_excel_csv_has_a_bom_rounded_numbers_and_escaped_formulas(store, tmp_path):
    result, out = _export(tmp_path, "--excel", "--columns", "customer_id,p_churn,clv,segment_label_zh")
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(UTF8_BOM) and raw.count(UTF8_BOM) == 1
    text = raw[len(UTF8_BOM):].decode("utf-8")
    frame = pd.read_csv(io.StringIO(text), dtype={"customer_id": str})
    assert frame["p_churn"].iloc[0] == 0.1235  # 4 decimals
    assert frame["clv"].iloc[0] == 1234.57  # money in cents
    assert frame["segment_label_zh"].iloc[0] == "普通客户"
    assert frame["customer_id"].iloc[-1] == "'=HYPERLINK(1)"  # a spreadsheet shows it as text


def test_plain_csv_has_no_bom_and_full_precision(store, tmp_path):
    result, out = _export(tmp_path)
    assert result.exit_code == 0, result.output
    assert not out.read_bytes().startswith(UTF8_BOM)
    frame = pd.read_csv(out)
    assert tuple(frame.columns) == SCORE_COLUMNS
    assert frame["p_churn"].iloc[0] == pytest.approx(0.123456789, abs=1e-12)


def test_excel_to_parquet_is_refused(store, tmp_path):
    result, out = _export(tmp_path, "--excel", name="out.parquet")
    assert result.exit_code == 2 and "--excel writes a CSV file" in result.output


def test_parquet_export_filters_too(store, tmp_path):
    result, out = _export(tmp_path, "--segment", "regular", "--columns", "customer_id,segment", name="out.parquet")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert set(frame["segment"]) == {"regular"} and len(frame) == 8
