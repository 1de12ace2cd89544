"""The feature table written as CSV: ids a spreadsheet would evaluate are quoted, numbers are not."""

from __future__ import annotations

import pandas as pd

from features.safe_csv import original_text
from pipelines.publishing import write_frame


def test_feature_csv_quotes_formula_ids_and_keeps_numbers_and_parquet(tmp_path):
    frame = pd.DataFrame({"customer_id": ["=1+1", "@SUM(A1:A9)", "+44 20", "-x", "C5"],
                          "revenue_change_pct_90d_vs_prev_90d": [-62.0, 10.0, -0.5, 0.0, 3.0],
                          "industry": ["-", "retail", "retail", None, "=x"]})
    csv_path = write_frame(frame, tmp_path / "features.csv")
    back = pd.read_csv(csv_path, dtype={"customer_id": str, "industry": str})
    assert back["customer_id"].tolist() == ["'=1+1", "'@SUM(A1:A9)", "'+44 20", "'-x", "C5"]
    assert back["customer_id"].map(original_text).tolist() == frame["customer_id"].tolist()
    assert back["revenue_change_pct_90d_vs_prev_90d"].tolist() == [-62.0, 10.0, -0.5, 0.0, 3.0]
    assert back["industry"].tolist()[:3] == ["'-", "retail", "retail"] and back["industry"].tolist()[4] == "'=x"
    parquet = pd.read_parquet(write_frame(frame, tmp_path / "features.parquet"))
    pd.testing.assert_frame_equal(parquet, frame)


def test_the_suffix_decides_the_format_whatever_its_case_and_an_unknown_one_is_refused(tmp_path):
    import pytest

    frame = pd.DataFrame({"customer_id": ["=1+1", "C5"], "clv": [1.5, 2.0]})
    back = pd.read_csv(write_frame(frame, tmp_path / "features.CSV"), dtype={"customer_id": str})
    assert back["customer_id"].tolist() == ["'=1+1", "C5"]
    pd.testing.assert_frame_equal(pd.read_parquet(write_frame(frame, tmp_path / "features.Parquet")), frame)
    with pytest.raises(ValueError, match=r"output .*features\.xlsx: unsupported file type; use a file name ending in "
                                         r"\.parquet or \.csv"):
        write_frame(frame, tmp_path / "features.xlsx")
    assert not (tmp_path / "features.xlsx").exists()
