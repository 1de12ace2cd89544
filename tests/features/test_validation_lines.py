"""Transactions are order lines: repeated products stay, exact copies follow the policy, line_id is a key."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.validation import DUPLICATE_LINE_POLICIES, ValidatedData, load_and_validate

CLOCK = datetime(2025, 1, 1)

# One wholesale order (O1) lists P1 three times at different quantities, P2 once and a
# return of P1; O2 is another customer's order. Revenue: 6 + 15 + 2.5 + 3 - 2.5 + 7 = 31.
ORDER_LINES = pd.DataFrame({
    "customer_id": ["C1", "C1", "C1", "C1", "C1", "C2"],
    "order_id": ["O1", "O1", "O1", "O1", "O1", "O2"],
    "ts": ["2024-03-01 10:00:00"] * 5 + ["2024-03-02 09:00:00"],
    "product_id": ["P1", "P1", "P1", "P2", "P1", "P1"],
    "quantity": [12.0, 30.0, 5.0, 1.0, -5.0, 14.0],
    "amount": [6.0, 15.0, 2.5, 3.0, -2.5, 7.0],
})


def validate(directory: Path, **kwargs) -> ValidatedData:
    kwargs.setdefault("clock", CLOCK)
    kwargs.setdefault("max_quarantine_share", 1.0)
    return load_and_validate(directory, **kwargs)


def write_table(directory: Path, frame: pd.DataFrame, fmt: str) -> Path:
    """transactions.csv or transactions.parquet with the frame's rows, in order."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"transactions.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def accepted(result: ValidatedData) -> pd.DataFrame:
    return result.tables["transactions"].execute()


def counts(result: ValidatedData) -> tuple[int, int, int, int]:
    rep = result.report["transactions"]
    assert rep.read == rep.accepted + rep.quarantined
    return rep.read, rep.accepted, rep.quarantined, rep.exact_duplicates_kept


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("policy", DUPLICATE_LINE_POLICIES)
def test_an_order_with_a_repeated_product_keeps_every_line_and_its_revenue(tmp_path, fmt, policy):
    write_table(tmp_path, ORDER_LINES, fmt)
    result = validate(tmp_path, duplicate_lines=policy)
    assert result.quarantine.empty
    assert counts(result) == (6, 6, 0, 0)
    lines = accepted(result)
    assert lines["amount"].sum() == pytest.approx(31.0) == ORDER_LINES["amount"].sum()
    assert sorted(lines.loc[lines["product_id"] == "P1", "quantity"]) == [-5.0, 5.0, 12.0, 14.0, 30.0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exact_copies_of_a_line_are_kept_and_counted_under_keep(tmp_path, fmt):
    # Line 2 (CSV line 3) appears three times: two copies of it.
    frame = pd.concat([ORDER_LINES, ORDER_LINES.iloc[[1, 1]]], ignore_index=True)
    write_table(tmp_path, frame, fmt)
    result = validate(tmp_path, duplicate_lines="keep")
    assert result.quarantine.empty
    assert counts(result) == (8, 8, 0, 2)
    assert result.report["transactions"].reasons == {}
    assert accepted(result)["amount"].sum() == pytest.approx(31.0 + 2 * 15.0)
    assert result.report_json()["transactions"]["exact_duplicates_kept"] == 2


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exact_copies_of_a_line_are_quarantined_under_drop_exact(tmp_path, fmt):
    frame = pd.concat([ORDER_LINES, ORDER_LINES.iloc[[1, 1]]], ignore_index=True)
    path = write_table(tmp_path, frame, fmt)
    result = validate(tmp_path, duplicate_lines="drop_exact")
    assert counts(result) == (8, 6, 2, 0)
    first = "line 3" if fmt == "csv" else "row 2"
    expected_lines = [8, 9] if fmt == "csv" else [7, 8]
    got = result.quarantine[["source", "line", "column", "value", "reason"]].values.tolist()
    assert got == [[str(path), n, "(whole row)", f"same as {first}", "exact_duplicate"] for n in expected_lines]
    assert json.loads(result.quarantine["raw"].iloc[0])["order_id"] == "O1"
    assert accepted(result)["amount"].sum() == pytest.approx(31.0)


def test_the_policy_changes_the_data_hash_and_both_formats_agree(tmp_path):
    frame = pd.concat([ORDER_LINES, ORDER_LINES.iloc[[1]]], ignore_index=True)
    write_table(tmp_path / "csv", frame, "csv")
    write_table(tmp_path / "pq", frame, "parquet")
    hashes = {
        (fmt, policy): validate(tmp_path / fmt, duplicate_lines=policy).data_hash
        for fmt in ("csv", "pq") for policy in DUPLICATE_LINE_POLICIES
    }
    assert hashes[("csv", "keep")] == hashes[("pq", "keep")] != hashes[("csv", "drop_exact")] == hashes[("pq", "drop_exact")]


# ----------------------------------------------------------------------------- line_id


def with_line_ids(frame: pd.DataFrame, line_ids: list[str]) -> pd.DataFrame:
    return frame.assign(line_id=line_ids)


@pytest.mark.parametrize("policy", DUPLICATE_LINE_POLICIES)
def test_with_line_id_two_values_for_one_line_quarantine_every_copy(tmp_path, policy):
    # O1 line 2 is given twice with different quantities; line ids repeat across orders (O2 line 1).
    frame = with_line_ids(ORDER_LINES, ["1", "2", "2", "3", "4", "1"])
    path = write_table(tmp_path, frame, "csv")
    result = validate(tmp_path, duplicate_lines=policy)
    assert counts(result) == (6, 4, 2, 0)
    got = result.quarantine[["source", "line", "column", "value", "reason"]].values.tolist()
    assert got == [[str(path), n, "order_id,line_id", "O1|2", "conflicting_duplicate"] for n in (3, 4)]
    assert accepted(result)["amount"].sum() == pytest.approx(31.0 - 15.0 - 2.5)


@pytest.mark.parametrize("policy", DUPLICATE_LINE_POLICIES)
def test_with_line_id_an_exact_copy_of_a_line_is_quarantined_whatever_the_policy(tmp_path, policy):
    frame = with_line_ids(ORDER_LINES, ["1", "2", "3", "4", "5", "1"])
    frame = pd.concat([frame, frame.iloc[[1]]], ignore_index=True)
    write_table(tmp_path, frame, "parquet")
    result = validate(tmp_path, duplicate_lines=policy)
    assert counts(result) == (7, 6, 1, 0)
    row = result.quarantine.iloc[0]
    assert (row["line"], row["column"], row["value"], row["reason"]) == (7, "(whole row)", "same as row 2", "exact_duplicate")
    assert accepted(result)["amount"].sum() == pytest.approx(31.0)


@pytest.mark.parametrize(("policy", "expected"), [("keep", (4, 4, 0, 1)), ("drop_exact", (4, 3, 1, 0))])
def test_rows_with_an_empty_line_id_have_no_key_and_follow_the_policy(tmp_path, policy, expected):
    (tmp_path / "transactions.csv").write_text(
        "customer_id,order_id,ts,amount,product_id,line_id\n"
        "C1,O1,2024-03-01,5,P1,\n"
        "C1,O1,2024-03-01,9,P1,\n"
        "C1,O1,2024-03-01,5,P1,\n"
        "C1,O1,2024-03-01,5,P1,1\n",
        encoding="utf-8",
    )
    result = validate(tmp_path, duplicate_lines=policy)
    assert counts(result) == expected
    assert result.quarantine["reason"].tolist() == ["exact_duplicate"] * expected[2]


def test_line_id_is_an_optional_text_column_of_the_accepted_table(tmp_path):
    write_table(tmp_path, with_line_ids(ORDER_LINES, ["001", "002", "003", "004", "005", "001"]), "csv")
    lines = accepted(validate(tmp_path)).sort_values(["order_id", "line_id"])
    assert lines["line_id"].tolist() == ["001", "002", "003", "004", "005", "001"]


# ----------------------------------------------------------------------------- other tables


def test_other_tables_still_quarantine_exact_copies_under_keep(tmp_path):
    write_table(tmp_path, ORDER_LINES, "csv")
    (tmp_path / "interactions.csv").write_text(
        "customer_id,ts,kind\nC1,2024-03-05,ticket\nC1,2024-03-05,ticket\n", encoding="utf-8"
    )
    (tmp_path / "invoices.csv").write_text(
        "customer_id,invoice_id,issued_at,due_at,amount\n"
        "C1,I1,2024-03-01,2024-03-31,31\nC1,I1,2024-03-01,2024-03-31,31\n", encoding="utf-8"
    )
    result = validate(tmp_path, duplicate_lines="keep")
    got = result.quarantine[["table", "line", "reason"]].values.tolist()
    assert got == [["invoices", 3, "exact_duplicate"], ["interactions", 3, "exact_duplicate"]]
    assert all(rep.exact_duplicates_kept == 0 for rep in result.report.values())


def test_an_unknown_policy_is_a_one_line_error_naming_the_choices(tmp_path):
    write_table(tmp_path, ORDER_LINES, "csv")
    with pytest.raises(ValueError) as caught:
        validate(tmp_path, duplicate_lines="drop_all")
    message = str(caught.value)
    assert "\n" not in message and "'drop_all'" in message and "keep, drop_exact" in message


def test_a_duckdb_table_with_line_ids_gives_what_the_csv_gives(tmp_path):
    frame = with_line_ids(ORDER_LINES, ["1", "2", "2", "3", "4", "1"]).astype({"quantity": str, "amount": str})
    write_table(tmp_path / "csv", frame, "csv")
    with duckdb.connect(str(tmp_path / "src.duckdb")) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE transactions AS SELECT * FROM frame")
    from_csv, from_db = validate(tmp_path / "csv"), validate(tmp_path / "src.duckdb")
    assert from_csv.report_json() == from_db.report_json()
    assert from_csv.data_hash == from_db.data_hash
