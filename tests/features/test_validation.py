"""Input contract and validation: every rejected row is named, nothing is silently dropped."""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.contract import TABLES
from features.validation import (
    QUARANTINE_COLUMNS,
    InputContractError,
    QuarantineThresholdError,
    ValidatedData,
    load_and_validate,
)

CLOCK = datetime(2025, 1, 1)
TX_HEADER = "customer_id,order_id,ts,amount,product_id"
# Twenty clean rows so that one bad row stays under the default 5% quarantine limit.
CLEAN_TX = [f"C{i:03d},O{i},2024-03-{i % 28 + 1:02d},{10 + i}.5,P1" for i in range(20)]


def write(directory: Path, name: str, lines: list[str]) -> Path:
    """Write a CSV file from literal lines (header first)."""
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def validate(directory: Path, **kwargs) -> ValidatedData:
    kwargs.setdefault("clock", CLOCK)
    kwargs.setdefault("max_quarantine_share", 1.0)
    return load_and_validate(directory, **kwargs)


def accepted(result: ValidatedData, table: str) -> pd.DataFrame:
    return result.tables[table].execute()


def only_quarantined(result: ValidatedData) -> dict:
    assert len(result.quarantine) == 1, result.quarantine
    return result.quarantine.iloc[0].to_dict()


# ----------------------------------------------------------------------------- contract


def test_contract_lists_the_four_tables_with_transactions_required():
    assert set(TABLES) == {"transactions", "customers", "invoices", "interactions"}
    assert [name for name, spec in TABLES.items() if spec.required] == ["transactions"]
    assert TABLES["transactions"].required_columns == ("customer_id", "order_id", "ts", "amount")
    assert "paid_at" in TABLES["invoices"].optional_columns


# ----------------------------------------------------------------------------- clean data


def test_clean_transactions_are_all_accepted_with_normalised_types(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX])
    result = validate(tmp_path)
    rep = result.report["transactions"]
    assert (rep.read, rep.accepted, rep.quarantined, rep.reasons) == (20, 20, 0, {})
    schema = result.tables["transactions"].schema()
    assert schema["customer_id"].is_string() and schema["order_id"].is_string()
    assert schema["ts"].is_timestamp() and schema["amount"].is_floating()
    assert result.data_start == datetime(2024, 3, 1) and result.data_end == datetime(2024, 3, 20)
    assert result.quarantine.columns.tolist() == list(QUARANTINE_COLUMNS)


def test_customer_ids_keep_leading_zeros_and_lose_surrounding_spaces(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, " 007 ,O1,2024-01-01,5,P1", "0042,O2,2024-01-02,5,P1"])
    ids = sorted(accepted(validate(tmp_path), "transactions")["customer_id"])
    assert ids == ["0042", "007"]


def test_naive_timestamps_are_utc_and_offsets_are_converted(tmp_path):
    write(tmp_path, "transactions.csv", [
        TX_HEADER,
        "A,O1,2024-01-05T10:00:00,1,P1",
        "B,O2,2024-01-05T10:00:00+08:00,1,P1",
        "C,O3,2024-01-05T10:00:00Z,1,P1",
        "D,O4,2024-01-05 10:00:00-05:30,1,P1",
        "E,O5,2024-01-05,1,P1",
    ])
    frame = accepted(validate(tmp_path), "transactions").set_index("customer_id")["ts"]
    assert frame["A"] == pd.Timestamp("2024-01-05 10:00")
    assert frame["B"] == pd.Timestamp("2024-01-05 02:00")
    assert frame["C"] == pd.Timestamp("2024-01-05 10:00")
    assert frame["D"] == pd.Timestamp("2024-01-05 15:30")
    assert frame["E"] == pd.Timestamp("2024-01-05 00:00")
    assert frame.dt.tz is None


def test_negative_amounts_are_returns_not_errors(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,100,P1", "A,O1,2024-01-06,-40,P1"])
    result = validate(tmp_path)
    assert result.report["transactions"].quarantined == 0
    assert sorted(accepted(result, "transactions")["amount"]) == [-40.0, 100.0]


def test_margin_defaults_to_amount_times_rate_and_absent_optionals_stay_absent(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,100,P1"])
    result = validate(tmp_path, default_margin_rate=0.25)
    frame = accepted(result, "transactions")
    assert frame["margin"].tolist() == [25.0]
    assert "discount" not in result.present_columns("transactions")
    assert "category" not in frame.columns
    assert result.present_columns("invoices") == ()


def test_empty_margin_cells_are_filled_and_given_margins_kept(tmp_path):
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount,margin", "A,O1,2024-01-05,100,", "A,O2,2024-01-06,100,12",
    ])
    frame = accepted(validate(tmp_path), "transactions").sort_values("order_id")
    assert frame["margin"].tolist() == [30.0, 12.0]


def test_invoice_paid_amount_defaults_to_amount_when_paid(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,100,P1"])
    write(tmp_path, "invoices.csv", [
        "customer_id,invoice_id,issued_at,due_at,amount,paid_at,paid_amount",
        "A,I1,2024-01-05,2024-02-05,100,2024-01-20,",
        "A,I2,2024-01-05,2024-02-05,100,,",
        "A,I3,2024-01-05,2024-02-05,100,2024-01-20,60",
    ])
    frame = accepted(validate(tmp_path), "invoices").set_index("invoice_id")
    assert frame.loc["I1", "paid_amount"] == 100.0
    assert pd.isna(frame.loc["I2", "paid_amount"]) and pd.isna(frame.loc["I2", "paid_at"])
    assert frame.loc["I3", "paid_amount"] == 60.0


def test_interaction_kinds_are_lower_case_and_customer_attributes_typed(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "001,O1,2024-01-05,100,P1"])
    write(tmp_path, "customers.csv", [
        "customer_id,signup_date,industry,employees,zip", "001,2023-01-01,retail,250,01234",
    ])
    write(tmp_path, "interactions.csv", ["customer_id,ts,kind,cost", "001,2024-02-01,Complaint,15"])
    result = validate(tmp_path)
    assert accepted(result, "interactions")["kind"].tolist() == ["complaint"]
    customers = accepted(result, "customers")
    assert customers["employees"].tolist() == [250.0]
    assert customers["zip"].tolist() == ["01234"]  # a leading zero means a code, not a number
    assert customers["signup_date"].tolist() == [pd.Timestamp("2023-01-01")]


# ----------------------------------------------------------------------------- row rules

ROW_RULES = [
    # (bad line, reason, column, value as in the file)
    ("C900,O900,,5,P1", "missing_timestamp", "ts", None),
    ("C900,O900,05/01/2024 x,5,P1", "bad_timestamp", "ts", "05/01/2024 x"),
    (",O900,2024-01-05,5,P1", "missing_customer_id", "customer_id", None),
    ("C900,,2024-01-05,5,P1", "missing_order_id", "order_id", None),
    ("C900,O900,2024-01-05,,P1", "missing_amount", "amount", None),
    ("C900,O900,2024-01-05,12abc,P1", "non_numeric_amount", "amount", "12abc"),
    ("C900,O900,2024-01-05,NaN,P1", "non_finite_amount", "amount", "NaN"),
    ("C900,O900,2024-01-05,inf,P1", "non_finite_amount", "amount", "inf"),
    ("C900,O900,2025-06-01,5,P1", "future_timestamp", "ts", "2025-06-01"),
]


@pytest.mark.parametrize(("bad", "reason", "column", "value"), ROW_RULES)
def test_each_transaction_rule_quarantines_the_row_with_line_column_value(tmp_path, bad, reason, column, value):
    path = write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX[:5], bad, *CLEAN_TX[5:]])
    result = validate(tmp_path)
    row = only_quarantined(result)
    assert row["reason"] == reason and row["column"] == column
    assert row["line"] == 7  # header is line 1, five clean rows, then the bad one
    assert row["source"] == str(path) and row["table"] == "transactions"
    assert (pd.isna(row["value"]) and value is None) or row["value"] == value
    assert json.loads(row["raw"])["order_id"] == bad.split(",")[1] or reason == "missing_order_id"
    rep = result.report["transactions"]
    assert (rep.read, rep.accepted, rep.quarantined, rep.reasons) == (21, 20, 1, {reason: 1})


def test_data_end_marks_rows_after_it_as_future_even_before_the_clock(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-05-01,5,P1", "A,O2,2024-07-01,5,P1"])
    result = validate(tmp_path, data_end=datetime(2024, 6, 1))
    row = only_quarantined(result)
    assert (row["reason"], row["line"], row["value"]) == ("future_timestamp", 3, "2024-07-01")


def test_aware_clock_is_compared_in_utc(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-05-01T10:00:00,5,P1"])
    clock = datetime(2024, 5, 1, 15, 0, tzinfo=timezone(timedelta(hours=8)))  # 07:00 UTC
    assert only_quarantined(validate(tmp_path, clock=clock))["reason"] == "future_timestamp"


def test_dropped_exact_duplicates_keep_the_first_and_name_it(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,5,P1", "B,O2,2024-01-05,5,P1", " A,O1,2024-01-05T00:00:00,5.0,P1"])
    result = validate(tmp_path, duplicate_lines="drop_exact")
    row = only_quarantined(result)
    assert (row["reason"], row["line"], row["value"]) == ("exact_duplicate", 4, "same as line 2")
    assert len(accepted(result, "transactions")) == 2


def test_lines_of_one_order_with_the_same_product_are_all_kept(tmp_path):
    write(tmp_path, "transactions.csv", [
        TX_HEADER, "A,O1,2024-01-05,5,P1", "A,O1,2024-01-05,7,P1", "A,O1,2024-01-06,-5,P1", "A,O1,2024-01-05,5,P2",
    ])
    result = validate(tmp_path)
    assert result.quarantine.empty
    assert sorted(accepted(result, "transactions")["amount"]) == [-5.0, 5.0, 5.0, 7.0]


def test_without_product_id_identical_lines_of_one_order_are_kept_and_counted(tmp_path):
    write(tmp_path, "transactions.csv", [
        "customer_id,order_id,ts,amount", "A,O1,2024-01-05,5", "A,O1,2024-01-05,7", "A,O1,2024-01-05,7",
    ])
    result = validate(tmp_path)
    assert result.quarantine.empty and result.report["transactions"].exact_duplicates_kept == 1
    assert sorted(accepted(result, "transactions")["amount"]) == [5.0, 7.0, 7.0]


def test_one_reason_per_row_first_rule_wins(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, ",O1,garbage,abc,P1"])
    row = validate(tmp_path).quarantine.iloc[0]
    assert row["reason"] == "missing_customer_id"


INVOICE_HEADER = "customer_id,invoice_id,issued_at,due_at,amount,paid_at,paid_amount"
INVOICE_RULES = [
    ("C001,I9,2024-01-05,2024-01-01,10,,", "due_before_issued", "due_at", "2024-01-01"),
    ("C001,I9,2024-01-05,2024-02-05,10,2024-01-01,", "paid_before_issued", "paid_at", "2024-01-01"),
    ("C001,I9,2024-01-05,2024-02-05,10,2024-01-10,ten", "non_numeric_value", "paid_amount", "ten"),
    ("C001,I9,2024-01-05,2024-02-05,10,2030-01-10,", "future_timestamp", "paid_at", "2030-01-10"),
    ("C001,I9,,2024-02-05,10,,", "missing_timestamp", "issued_at", None),
    ("C001,I9,2024-01-05,soon,10,,", "bad_timestamp", "due_at", "soon"),
    ("C999,I9,2024-01-05,2024-02-05,10,,", "unknown_customer", "customer_id", "C999"),
    ("C001,I1,2024-01-05,2024-02-05,99,,", "conflicting_duplicate", "invoice_id", "I1"),
]


@pytest.mark.parametrize(("bad", "reason", "column", "value"), INVOICE_RULES)
def test_each_invoice_rule_quarantines_the_row(tmp_path, bad, reason, column, value):
    write(tmp_path, "transactions.csv", [TX_HEADER, "C001,O1,2024-01-05,5,P1"])
    write(tmp_path, "invoices.csv", [INVOICE_HEADER, "C001,I1,2024-01-05,2024-02-05,10,2024-01-20,10", bad])
    result = validate(tmp_path)
    rows = result.quarantine[result.quarantine["table"] == "invoices"]
    bad_row = rows[rows["line"] == 3].iloc[0]
    assert (bad_row["reason"], bad_row["column"]) == (reason, column)
    assert (pd.isna(bad_row["value"]) and value is None) or bad_row["value"] == value
    assert str(bad_row["source"]).endswith("invoices.csv")
    rep = result.report["invoices"]
    assert rep.read == 2 and rep.accepted + rep.quarantined == 2


def test_unknown_customer_uses_customers_table_when_present(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "C001,O1,2024-01-05,5,P1", "C002,O2,2024-01-05,5,P1"])
    write(tmp_path, "customers.csv", ["customer_id", "C001"])
    write(tmp_path, "interactions.csv", ["customer_id,ts,kind", "C001,2024-02-01,ticket", "C002,2024-02-01,ticket"])
    result = validate(tmp_path)
    row = only_quarantined(result)
    assert (row["table"], row["reason"], row["line"], row["value"]) == ("interactions", "unknown_customer", 3, "C002")
    assert result.report["transactions"].quarantined == 0  # transactions are not checked against customers


def test_unknown_customer_without_customers_table_means_no_accepted_transaction(tmp_path):
    # C002's only transaction is quarantined, so its ticket has no known customer
    write(tmp_path, "transactions.csv", [TX_HEADER, "C001,O1,2024-01-05,5,P1", "C002,O2,bad,5,P1"])
    write(tmp_path, "interactions.csv", ["customer_id,ts,kind", "C001,2024-02-01,ticket", "C002,2024-02-01,ticket"])
    result = validate(tmp_path)
    reasons = result.quarantine.set_index("table")["reason"].to_dict()
    assert reasons == {"transactions": "bad_timestamp", "interactions": "unknown_customer"}


def test_csv_lines_are_physical_lines_with_quoted_newlines_and_blank_lines(tmp_path):
    (tmp_path / "transactions.csv").write_text(
        "customer_id,order_id,ts,amount,category\n"
        'A,O1,2024-01-05,5,"two\nlines"\n'
        "\n"
        "A,O2,2024-01-05,oops,x\n",
        encoding="utf-8",
    )
    row = only_quarantined(validate(tmp_path))
    assert (row["reason"], row["line"]) == ("non_numeric_amount", 5)


def test_gzipped_csv_is_read(tmp_path):
    with gzip.open(tmp_path / "transactions.csv.gz", "wt") as handle:
        handle.write("\n".join([TX_HEADER, "A,O1,2024-01-05,5,P1", "A,O2,xx,5,P1"]) + "\n")
    row = only_quarantined(validate(tmp_path))
    assert (row["reason"], row["line"]) == ("bad_timestamp", 3)


# ----------------------------------------------------------------------------- threshold


def test_too_many_quarantined_rows_fail_with_a_clear_message_and_keep_the_result(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX[:8], "A,O1,bad,5,P1", "A,O2,bad,5,P1"])
    with pytest.raises(QuarantineThresholdError) as caught:
        load_and_validate(tmp_path, clock=CLOCK, max_quarantine_share=0.1)
    message = str(caught.value)
    assert "transactions" in message and "20.0%" in message and "10.0%" in message
    assert "bad_timestamp 2" in message and "max_quarantine_share" in message
    result = caught.value.result
    assert result.report["transactions"].quarantined == 2
    written = result.write_quarantine(tmp_path / "quarantine.csv")
    assert pd.read_csv(written)["line"].tolist() == [10, 11]


def test_quarantine_share_at_the_limit_passes(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX[:9], "A,O1,bad,5,P1"])
    result = load_and_validate(tmp_path, clock=CLOCK, max_quarantine_share=0.1)
    assert result.report["transactions"].quarantined == 1


def test_report_json_and_quarantine_parquet(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,5,P1", "A,O2,bad,5,P1"])
    result = validate(tmp_path)
    assert json.loads(json.dumps(result.report_json())) == {
        "transactions": {"read": 2, "accepted": 1, "quarantined": 1, "reasons": {"bad_timestamp": 1},
                         "exact_duplicates_kept": 0, "warnings": []}
    }
    back = pd.read_parquet(result.write_quarantine(tmp_path / "q.parquet"))
    assert back[["line", "column", "value", "reason"]].values.tolist() == [[3, "ts", "bad", "bad_timestamp"]]


# ----------------------------------------------------------------------------- file-level errors


def test_missing_transactions_file_names_the_directory_and_expected_columns(tmp_path):
    write(tmp_path, "orders.csv", ["a,b", "1,2"])
    with pytest.raises(InputContractError) as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "transactions.csv" in message and "orders.csv" in message
    assert "customer_id, order_id, ts, amount" in message


def test_missing_required_column_names_file_expected_and_found(tmp_path):
    path = write(tmp_path, "transactions.csv", ["customer_id,order_id,timestamp,amount", "A,O1,2024-01-05,5"])
    with pytest.raises(InputContractError) as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert str(path) in message and "missing: ts" in message
    assert "Found columns: customer_id, order_id, timestamp, amount" in message
    assert "required: customer_id, order_id, ts, amount" in message


def test_missing_required_column_of_optional_table_is_an_error(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,5,P1"])
    path = write(tmp_path, "invoices.csv", ["customer_id,invoice_id,amount", "A,I1,5"])
    with pytest.raises(InputContractError, match="issued_at, due_at") as caught:
        validate(tmp_path)
    assert str(path) in str(caught.value)


def test_header_only_file_is_an_empty_table_error(tmp_path):
    path = write(tmp_path, "transactions.csv", [TX_HEADER])
    with pytest.raises(InputContractError, match="no rows") as caught:
        validate(tmp_path)
    assert str(path) in str(caught.value) and "Found columns: customer_id" in str(caught.value)


def test_file_that_is_not_parquet_is_a_format_error(tmp_path):
    path = tmp_path / "transactions.parquet"
    path.write_text("customer_id,order_id\nA,O1\n")
    with pytest.raises(InputContractError, match="cannot be read as PARQUET") as caught:
        validate(tmp_path)
    assert str(path) in str(caught.value)


def test_two_files_for_one_table_is_an_error(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,5,P1"])
    pd.DataFrame({"customer_id": ["A"], "order_id": ["O1"], "ts": ["2024-01-05"], "amount": [5.0]}).to_parquet(
        tmp_path / "transactions.parquet"
    )
    with pytest.raises(InputContractError, match="two or more files") as caught:
        validate(tmp_path)
    assert "transactions.csv" in str(caught.value) and "transactions.parquet" in str(caught.value)


def test_ragged_csv_is_a_file_error_naming_the_file(tmp_path):
    lines = [TX_HEADER] + [f"A,O{i},2024-01-05,5,P1" for i in range(50)] + ["A,O99,2024-01-05,5,P1,extra,fields"]
    path = write(tmp_path, "transactions.csv", lines)
    with pytest.raises(InputContractError) as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert str(path) in message and "Line: 52" in message and "A,O99,2024-01-05,5,P1,extra,fields" in message


def test_leading_lines_are_never_skipped_as_preamble(tmp_path):
    # a widest-row sniffer would take the last line for the header and drop the rest
    write(tmp_path, "transactions.csv", [TX_HEADER, "A,O1,2024-01-05,5,P1", "B,O2,2024-01-05,5,P1,extra"])
    with pytest.raises(InputContractError, match="Line: 3"):
        validate(tmp_path)


def test_semicolon_csv_is_read(tmp_path):
    write(tmp_path, "transactions.csv", ["customer_id;order_id;ts;amount", "A;O1;2024-01-05;5,5"])
    row = only_quarantined(validate(tmp_path))
    assert (row["reason"], row["value"]) == ("non_numeric_amount", "5,5")


def test_file_errors_write_nothing(tmp_path):
    write(tmp_path, "transactions.csv", ["customer_id,amount", "A,5"])
    database = tmp_path / "out" / "work.duckdb"
    database.parent.mkdir()
    with pytest.raises(InputContractError):
        validate(tmp_path, database=database)
    assert list(database.parent.iterdir()) == []


def test_missing_path_and_unknown_source_kind_are_errors(tmp_path):
    with pytest.raises(InputContractError, match="does not exist"):
        validate(tmp_path / "nowhere")
    other = write(tmp_path, "data.txt", ["x"])
    with pytest.raises(InputContractError, match="not a directory"):
        validate(other)


# ----------------------------------------------------------------------------- sources agree


def _messy_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["001", "002", "002", "003", "004", "004"],
        "order_id": ["O1", "O2", "O2", "O3", "O4", "O4"],
        "ts": ["2024-01-05 10:00:00", "2024-01-06T08:00:00+02:00", "2024-01-06T08:00:00+02:00", "bad",
               "2024-02-01", "2024-02-01"],
        "amount": ["10.5", "-3", "-3", "4", "5", "6"],
        "product_id": ["P1", "P1", "P1", "P1", "P1", "P1"],
        "line_id": ["1", "1", "1", "1", "1", "1"],  # O2's second row is a copy, O4's rows conflict
    })


def test_csv_parquet_and_duckdb_sources_give_the_same_accepted_data(tmp_path):
    frame = _messy_frame()
    (tmp_path / "csv").mkdir()
    (tmp_path / "pq").mkdir()
    frame.to_csv(tmp_path / "csv" / "transactions.csv", index=False)
    frame.to_parquet(tmp_path / "pq" / "transactions.parquet", index=False)
    typed = frame.assign(amount=pd.to_numeric(frame["amount"]))  # typed columns too
    with duckdb.connect(str(tmp_path / "src.duckdb")) as con:
        con.register("frame", typed)
        con.execute("CREATE TABLE transactions AS SELECT * FROM frame")
    results = {
        "csv": validate(tmp_path / "csv"),
        "parquet": validate(tmp_path / "pq"),
        "duckdb": validate(tmp_path / "src.duckdb"),
    }
    tables = {k: accepted(r, "transactions").sort_values(["order_id", "amount"]).reset_index(drop=True)
              for k, r in results.items()}
    pd.testing.assert_frame_equal(tables["csv"], tables["parquet"])
    pd.testing.assert_frame_equal(tables["csv"], tables["duckdb"])
    assert len({r.data_hash for r in results.values()}) == 1
    assert {k: r.report_json() for k, r in results.items()}["csv"] == results["duckdb"].report_json()
    # Parquet and DuckDB have no lines: their `line` is the 1-based row number
    assert results["parquet"].line_kind["transactions"] == "row"
    lines = {k: sorted(r.quarantine["line"]) for k, r in results.items()}
    assert lines == {"csv": [4, 5, 6, 7], "parquet": [3, 4, 5, 6], "duckdb": [3, 4, 5, 6]}


def test_row_order_changes_neither_hash_nor_accepted_rows(tmp_path):
    rows = [*CLEAN_TX, CLEAN_TX[3], "C001,O1,2024-03-02,99.5,P1", "X,O77,bad,1,P1"]
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a", "transactions.csv", [TX_HEADER, *rows])
    write(tmp_path / "b", "transactions.csv", [TX_HEADER, *shuffled])
    first, second = validate(tmp_path / "a"), validate(tmp_path / "b")
    assert first.data_hash == second.data_hash
    key = ["customer_id", "order_id", "amount"]
    pd.testing.assert_frame_equal(
        accepted(first, "transactions").sort_values(key).reset_index(drop=True),
        accepted(second, "transactions").sort_values(key).reset_index(drop=True),
    )
    assert first.report_json() == second.report_json()


def test_changed_content_changes_the_hash(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX])
    before = validate(tmp_path).data_hash
    write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX[:-1], CLEAN_TX[-1].replace(".5", ".6")])
    assert validate(tmp_path).data_hash != before


def test_conflicting_customer_rows_are_quarantined_and_their_invoices_unknown(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, "C001,O1,2024-01-05,5,P1", "C002,O2,2024-01-05,5,P1"])
    write(tmp_path, "customers.csv", ["customer_id,industry", "C001,retail", "C002,retail", "C002,steel"])
    write(tmp_path, "invoices.csv", [INVOICE_HEADER, "C002,I1,2024-01-05,2024-02-05,10,,"])
    result = validate(tmp_path)
    reasons = result.quarantine[["table", "line", "reason"]].values.tolist()
    assert reasons == [
        ["customers", 3, "conflicting_duplicate"],
        ["customers", 4, "conflicting_duplicate"],
        ["invoices", 2, "unknown_customer"],
    ]


def test_accepted_tables_can_live_in_a_database_file(tmp_path):
    write(tmp_path, "transactions.csv", [TX_HEADER, *CLEAN_TX])
    database = tmp_path / "work.duckdb"
    result = validate(tmp_path, database=database)
    assert accepted(result, "transactions").shape[0] == 20
    result.con.disconnect()
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM transactions").fetchall() == [(20,)]


def test_zero_byte_file_is_an_empty_file_error(tmp_path):
    (tmp_path / "transactions.csv").write_bytes(b"")
    with pytest.raises(InputContractError, match="file is empty") as caught:
        validate(tmp_path)
    assert str(tmp_path / "transactions.csv") in str(caught.value)


def test_duckdb_file_without_transactions_table_is_an_error(tmp_path):
    database = tmp_path / "src.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE customers AS SELECT '001' AS customer_id")
    with pytest.raises(InputContractError, match="no transactions table") as caught:
        validate(database)
    assert str(database) in str(caught.value)


def test_typed_parquet_timestamps_and_numbers_are_normalised(tmp_path):
    pd.DataFrame({
        "customer_id": ["001", "002"],
        "order_id": ["O1", "O2"],
        "ts": pd.to_datetime(["2024-01-05 10:00", "2024-01-05 10:00"]).tz_localize("Asia/Shanghai"),
        "amount": [10.25, -3.0],
    }).to_parquet(tmp_path / "transactions.parquet", index=False)
    frame = accepted(validate(tmp_path), "transactions").sort_values("customer_id")
    assert frame["ts"].tolist() == [pd.Timestamp("2024-01-05 02:00")] * 2
    assert frame["amount"].tolist() == [10.25, -3.0]
    assert frame["customer_id"].tolist() == ["001", "002"]
