"""Online Retail conversion: one log from two overlapping files, ids as text, returns kept, as-of cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.online_retail.data import (
    FIRST_FILE,
    SECOND_FILE,
    convert_online_retail,
    main_country,
)

FIRST_COLUMNS = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]
SECOND_COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                  "Country"]


def write_files(folder: Path, first_rows: list[tuple], second_rows: list[tuple]) -> Path:
    """The two files as published: the first with nullable integer ids, the second with float ids."""
    folder.mkdir(parents=True, exist_ok=True)
    first = pd.DataFrame(first_rows, columns=FIRST_COLUMNS)
    first["Quantity"] = first["Quantity"].astype("Int64")
    first["Customer ID"] = first["Customer ID"].astype("Int64")
    first.to_parquet(folder / FIRST_FILE, index=False)
    second = pd.DataFrame(second_rows, columns=SECOND_COLUMNS)
    second["CustomerID"] = second["CustomerID"].astype(float)
    second.to_parquet(folder / SECOND_FILE, index=False)
    return folder


UK = "United Kingdom"
FIRST_ROWS = [
    ("489434", "85048", "GLASS BALL", 12, "2009-12-01 07:45:00", 6.95, 13085, UK),
    ("C489449", "22087", "PAPER BUNTING", -12, "2009-12-01 10:33:00", 0.85, 16321, "Australia"),
    ("489450", "POST", "POSTAGE", 1, "2010-11-30 09:00:00", 18.0, 13085, UK),
    ("489460", "21232", "STRAWBERRY MUG", 3, "2010-11-30 10:00:00", 1.25, None, UK),
    # In both files (the overlap): taken from the second only.
    ("536365", "85123A", "T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850, UK),
]
SECOND_ROWS = [
    ("536365", "85123A", "T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850.0, UK),
    ("536366", "22633", "HAND WARMER", 6, "2010-12-01 08:28:00", 1.85, np.nan, UK),
    ("C536379", "D", "Discount", -1, "2010-12-01 09:41:00", 27.5, 14527.0, UK),
    ("581587", "22138", "BAKING SET", 3, "2011-12-09 12:50:00", 4.95, 12680.0, "France"),
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_files(tmp_path / "src", FIRST_ROWS, SECOND_ROWS)


def test_two_files_become_one_log_without_the_overlap_and_without_anonymous_rows(source: Path, tmp_path: Path):
    converted, summary = convert_online_retail(source, tmp_path / "input", pd.Timestamp("2012-01-01"))
    assert converted["order_id"].tolist() == ["489434", "C489449", "489450", "536365", "C536379", "581587"]
    assert summary.rows_read == {FIRST_FILE: 5, SECOND_FILE: 4}
    assert summary.overlap_rows_dropped == 1  # 536365 from the first file
    assert summary.rows_without_customer_dropped == 2  # 489460 and 536366
    assert summary.n_transactions == 6 and summary.n_customers == 5
    # Ids as text, from nullable integers and from floats alike, with no ".0".
    assert converted["customer_id"].tolist() == ["13085", "16321", "13085", "17850", "14527", "12680"]
    # Cancellations stay, as negative lines: quantity x price.
    assert converted["amount"].tolist() == [83.4, -10.2, 18.0, 15.3, -27.5, 14.85]
    assert converted["quantity"].tolist() == [12, -12, 1, 6, -1, 3]
    assert (summary.cancellation_lines, summary.negative_quantity_lines) == (2, 2)
    assert summary.non_product_lines == {"D": 1, "POST": 1}
    assert converted["ts"].iloc[0] == pd.Timestamp("2009-12-01 07:45:00")
    assert list(converted.columns) == ["customer_id", "order_id", "product_id", "ts", "amount", "quantity"]


def test_custscore_input_holds_nothing_at_or_after_the_as_of(source: Path, tmp_path: Path):
    as_of = pd.Timestamp("2010-12-01 08:26:00")  # the ts of order 536365 exactly
    converted, summary = convert_online_retail(source, tmp_path / "input", as_of)
    written = pd.read_parquet(tmp_path / "input" / "transactions.parquet")
    assert written["order_id"].tolist() == ["489434", "C489449", "489450"]
    assert written["ts"].max() < as_of
    assert summary.n_history_transactions == 3
    customers = pd.read_parquet(tmp_path / "input" / "customers.parquet")
    assert customers.to_dict("records") == [{"customer_id": "13085", "country": UK},
                                            {"customer_id": "16321", "country": "Australia"}]
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["customers.parquet", "transactions.parquet"]
    # The later rows are returned for the ground truth, never written for custscore.
    assert len(converted) == 6


def test_a_later_conversion_leaves_no_table_of_an_earlier_one(source: Path, tmp_path: Path):
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "transactions.csv").write_text("customer_id,order_id,ts,amount\n1,1,2012-01-01,5\n")
    convert_online_retail(source, tmp_path / "input", pd.Timestamp("2010-01-01"))
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["customers.parquet", "transactions.parquet"]


def test_country_is_the_one_on_most_rows_and_ties_go_alphabetically():
    rows = pd.DataFrame({"customer_id": ["1", "1", "1", "2", "2"],
                         "country": ["EIRE", UK, UK, "Germany", "France"]})
    assert main_country(rows).to_dict("records") == [{"customer_id": "1", "country": UK},
                                                     {"customer_id": "2", "country": "France"}]


def test_missing_folder_is_named_in_a_one_line_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere' / FIRST_FILE}.*--data-dir"):
        convert_online_retail(tmp_path / "nowhere", tmp_path / "input", pd.Timestamp("2011-06-01"))
