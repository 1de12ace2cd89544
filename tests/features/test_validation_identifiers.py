"""Identifiers are text a person can read: no control characters, and no word that means 'missing'."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.safe_csv import original_text
from features.validation import (
    QUARANTINE_REASONS,
    QuarantineThresholdError,
    ValidatedData,
    load_and_validate,
    printable,
)

CLOCK = datetime(2025, 1, 1)
COLUMNS = ["customer_id", "order_id", "ts", "amount", "product_id", "line_id"]


def clean_rows(n: int = 5) -> list[dict]:
    return [
        {"customer_id": f"C{i:03d}", "order_id": f"O{i}", "ts": f"2024-03-{i + 1:02d}",
         "amount": f"{10 + i}.5", "product_id": "P1", "line_id": "1"}
        for i in range(n)
    ]


def write_source(folder: Path, rows: list[dict], kind: str) -> Path:
    """transactions as CSV (every field quoted), Parquet with native ts and amount, or DuckDB."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        path = folder / "transactions.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            # Quoted, a carriage return is part of the field; bare, it would end the line.
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL)
            writer.writeheader()
            writer.writerows(rows)
        return folder
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame["amount"] = pd.to_numeric(frame["amount"])
    if kind == "parquet":
        frame.to_parquet(folder / "transactions.parquet", index=False)
        return folder
    database = folder / "source.duckdb"
    with duckdb.connect(str(database)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE transactions AS SELECT * FROM frame")
    return database


def validate(source: Path, **kwargs) -> ValidatedData:
    kwargs.setdefault("max_quarantine_share", 1.0)
    return load_and_validate(source, clock=CLOCK, **kwargs)


def accepted(result: ValidatedData) -> pd.DataFrame:
    return result.tables["transactions"].execute().sort_values("order_id").reset_index(drop=True)


# ----------------------------------------------------------------------------- control characters

CONTROL_CASES = [
    # (column, bad value, value as the quarantine shows it)
    ("customer_id", "C\x00001", "C\\x00001"),
    ("customer_id", "C0\n02", "C0\\x0a02"),
    ("customer_id", "\tC002", "\\x09C002"),
    ("customer_id", "C002\x7f", "C002\\x7f"),
    ("customer_id", "C\x85002", "C\\x85002"),
    ("order_id", "O\r2", "O\\x0d2"),
    ("order_id", "O\x1b[31m2", "O\\x1b[31m2"),
    ("product_id", "P\x001", "P\\x001"),
    ("line_id", "1\t", "1\\x09"),
]


@pytest.mark.parametrize("kind", ["csv", "parquet", "duckdb"])
@pytest.mark.parametrize(("column", "bad", "shown"), CONTROL_CASES)
def test_identifier_with_a_control_character_is_quarantined_with_its_escaped_value(tmp_path, kind, column, bad, shown):
    rows = clean_rows()
    rows.insert(2, {**clean_rows(3)[2], "order_id": "O99", column: bad})
    result = validate(write_source(tmp_path / kind, rows, kind))
    assert len(result.quarantine) == 1, result.quarantine
    row = result.quarantine.iloc[0]
    assert (row["reason"], row["column"], row["value"]) == ("invalid_characters", column, shown)
    # CSV: the header is line 1 and the bad record starts on line 4; Parquet and DuckDB: row 3
    assert row["line"] == (4 if kind == "csv" else 3)
    assert row["value"].isprintable()
    assert json.loads(row["raw"])[column] == bad  # the raw row keeps the exact text
    assert all(ch.isprintable() for ch in row["raw"])
    assert bad not in set(accepted(result)[column])
    rep = result.report["transactions"]
    assert (rep.read, rep.accepted, rep.reasons) == (6, 5, {"invalid_characters": 1})


def test_text_beside_identifiers_may_hold_control_characters(tmp_path):
    frame = pd.DataFrame(clean_rows()).assign(category=["a\tb", "x", "x", "x", "x"])
    frame.to_csv(tmp_path / "transactions.csv", index=False)
    result = validate(tmp_path)
    assert result.quarantine.empty
    assert "a\tb" in set(accepted(result)["category"])


def test_spaces_letters_and_symbols_are_no_control_characters(tmp_path):
    ids = ["C 001", "客户-002", "Ü'3", "=1+1", "@SUM(A1:A9)"]
    rows = [{**r, "customer_id": cid} for r, cid in zip(clean_rows(), ids, strict=True)]
    result = validate(write_source(tmp_path, rows, "csv"))
    assert result.quarantine.empty
    assert accepted(result)["customer_id"].tolist() == ids


def test_invalid_characters_comes_after_missing_ids_and_before_timestamps(tmp_path):
    assert QUARANTINE_REASONS.index("invalid_characters") == QUARANTINE_REASONS.index("missing_kind") + 1
    rows = clean_rows(3) + [
        {**clean_rows()[3], "customer_id": "", "order_id": "O\x00"},  # missing id first
        {**clean_rows()[4], "customer_id": "C\x00", "ts": "not a date"},  # then characters
    ]
    result = validate(write_source(tmp_path, rows, "csv"))
    assert result.quarantine["reason"].tolist() == ["missing_customer_id", "invalid_characters"]


def test_too_many_rows_with_control_characters_fail_in_one_printable_line(tmp_path):
    rows = clean_rows(3) + [{**clean_rows()[3], "customer_id": "C\x00\x01"}]
    source = write_source(tmp_path, rows, "csv")
    with pytest.raises(QuarantineThresholdError) as caught:
        load_and_validate(source, clock=CLOCK, max_quarantine_share=0.05)
    message = str(caught.value)
    assert message.isprintable()  # one line, no NUL: a terminal or log shows all of it
    assert (f"first: {source / 'transactions.csv'} line 5, column customer_id, value 'C\\x00\\x01' "
            "(invalid_characters)") in message


def test_every_quarantined_value_is_shown_printable_whatever_the_reason(tmp_path):
    rows = clean_rows(3) + [{**clean_rows()[3], "amount": "1\x002"}, {**clean_rows()[4], "ts": "2024-01-0\x1b1"}]
    result = validate(write_source(tmp_path, rows, "csv"))
    shown = result.quarantine[["reason", "value"]].values.tolist()
    assert shown == [["non_numeric_amount", "1\\x002"], ["bad_timestamp", "2024-01-0\\x1b1"]]
    assert json.loads(result.quarantine["raw"].iloc[0])["amount"] == "1\x002"


def test_printable_escapes_only_control_characters():
    assert printable("A\x00B\tC\x7fD\x9f E中ü\\x") == "A\\x00B\\x09C\\x7fD\\x9f E中ü\\x"


# ----------------------------------------------------------------------------- words meaning missing

MISSING_WORDS = ["null", "NULL", "None", "NaN", "nan", "N/A", " n/a ", "#N/A", "NA", "<NA>"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("word", MISSING_WORDS)
def test_a_customer_id_that_says_missing_is_missing(tmp_path, kind, word):
    rows = clean_rows()
    rows.insert(1, {**clean_rows(2)[1], "order_id": "O99", "customer_id": word})
    result = validate(write_source(tmp_path / kind, rows, kind))
    row = result.quarantine.iloc[0]
    assert len(result.quarantine) == 1
    assert (row["reason"], row["column"], row["line"]) == ("missing_customer_id", "customer_id", 3 if kind == "csv" else 2)
    assert row["value"] == word  # shown as found
    assert word.strip() not in set(accepted(result)["customer_id"])


def test_order_and_invoice_ids_that_say_missing_are_missing(tmp_path):
    rows = clean_rows(3) + [{**clean_rows()[3], "order_id": "NULL"}]
    write_source(tmp_path, rows, "csv")
    pd.DataFrame({
        "customer_id": ["C000", "C001"], "invoice_id": ["I1", "None"], "issued_at": ["2024-03-01"] * 2,
        "due_at": ["2024-04-01"] * 2, "amount": [10, 10],
    }).to_csv(tmp_path / "invoices.csv", index=False)
    result = validate(tmp_path)
    reasons = result.quarantine.set_index("table")[["reason", "line"]].to_dict("index")
    assert reasons == {"transactions": {"reason": "missing_order_id", "line": 5},
                       "invoices": {"reason": "missing_invoice_id", "line": 3}}


def test_ids_that_only_contain_a_missing_word_are_ids(tmp_path):
    ids = ["nullx", "NAN1", "Anna", "N/A2", "none-of-them"]
    rows = [{**r, "customer_id": cid} for r, cid in zip(clean_rows(), ids, strict=True)]
    result = validate(write_source(tmp_path, rows, "csv"))
    assert result.quarantine.empty
    assert accepted(result)["customer_id"].tolist() == ids


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_optional_ids_that_say_missing_are_empty_not_quarantined(tmp_path, kind):
    # Two identical lines of O1 whose line id says "null": they have no line id, so they are two
    # ordinary lines (kept), not a copy of line 1 (which a real line id would make them).
    rows = clean_rows(2) + [{**clean_rows()[0], "order_id": "O9", "product_id": "NULL", "line_id": "null"}] * 2
    result = validate(write_source(tmp_path / kind, rows, kind))
    assert result.quarantine.empty
    frame = accepted(result)
    nine = frame[frame["order_id"] == "O9"]
    assert len(nine) == 2 and nine["product_id"].isna().all() and nine["line_id"].isna().all()
    assert result.report["transactions"].exact_duplicates_kept == 1


# ----------------------------------------------------------------------------- quarantine file


def test_quarantine_csv_shows_formula_values_as_text_and_reads_back(tmp_path):
    rows = clean_rows(3) + [{**clean_rows()[3], "amount": "=1+1"}, {**clean_rows()[4], "customer_id": "C\x00"}]
    result = validate(write_source(tmp_path, rows, "csv"))
    written = result.write_quarantine(tmp_path / "quarantine.csv")
    back = pd.read_csv(written, dtype=str, keep_default_na=False)
    assert back["value"].tolist() == ["'=1+1", "C\\x00"]
    assert back["value"].map(original_text).tolist() == ["=1+1", "C\\x00"]
    assert back["line"].tolist() == ["5", "6"]  # numbers are not quoted
    assert pd.read_parquet(result.write_quarantine(tmp_path / "q.parquet"))["value"].tolist() == ["=1+1", "C\\x00"]
