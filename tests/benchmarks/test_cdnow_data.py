"""CDNOW conversion to the input contract: counts, ids kept as text, one table only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.cdnow.data import (
    SAMPLE_CUSTOMERS,
    SAMPLE_SHA256,
    SAMPLE_TRANSACTIONS,
    SHIPPED_SAMPLE,
    convert_cdnow,
    file_sha256,
    load_transactions,
    read_cdnow,
)


def test_shipped_sample_is_the_published_file():
    assert file_sha256(SHIPPED_SAMPLE) == SAMPLE_SHA256


def test_convert_sample_gives_published_counts_and_only_a_transactions_table(tmp_path: Path):
    summary = convert_cdnow(SHIPPED_SAMPLE, tmp_path / "data")
    assert (summary.n_customers, summary.n_transactions) == (SAMPLE_CUSTOMERS, SAMPLE_TRANSACTIONS)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["transactions.csv"]
    back = load_transactions(summary.transactions_path)
    assert list(back.columns) == ["customer_id", "order_id", "ts", "amount", "quantity"]
    assert back["customer_id"].str.len().eq(5).all()  # "00004", leading zeros kept
    assert back["order_id"].is_unique
    assert back["ts"].min() == pd.Timestamp("1997-01-01")
    assert back["ts"].max() == pd.Timestamp("1998-06-30")
    assert back["amount"].sum() == pytest.approx(read_cdnow(SHIPPED_SAMPLE)["dollars"].sum())


def test_master_format_with_header_is_read_with_text_ids(tmp_path: Path):
    master = tmp_path / "CDNOW_master.txt"
    master.write_text(" customer_id  date number_of_cds  dollar_value\r\n"
                      " 00001 19970101  1   11.77\r\n 00002 19970112  5   77.00\r\n")
    frame = read_cdnow(master)
    assert frame["customer_id"].tolist() == ["00001", "00002"]
    assert frame["date"].tolist() == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]
    assert frame["dollars"].tolist() == [11.77, 77.0]


def test_unparseable_file_is_rejected_with_its_path(tmp_path: Path):
    bad = tmp_path / "bad.txt"
    bad.write_text(" 00001 1997-01-01 1 11.77\n")
    with pytest.raises(ValueError, match="bad.txt"):
        read_cdnow(bad)
