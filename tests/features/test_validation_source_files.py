"""Input files a hostile or careless user may hand over: each bad row stays a row, each bad file one line."""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.io.source_files import shown
from features.validation import (
    QUARANTINE_REASONS,
    InputContractError,
    ValidatedData,
    load_and_validate,
)

CLOCK = datetime(2025, 1, 1)
HEADER = b"customer_id,order_id,ts,amount,category\n"


def clean_lines(first: int, n: int) -> list[bytes]:
    return [f"C{i:03d},O{i},2024-03-{i % 28 + 1:02d},{10 + i}.5,shoes\n".encode() for i in range(first, first + n)]


def write_bytes(folder: Path, name: str, lines: list[bytes], *, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = b"".join(lines)
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def validate(source: Path, **kwargs) -> ValidatedData:
    """Validate a folder, a DuckDB file, or the folder of a table file."""
    kwargs.setdefault("max_quarantine_share", 1.0)
    if source.name.lower().startswith("transactions."):
        source = source.parent
    return load_and_validate(source, clock=CLOCK, **kwargs)


def accepted_orders(result: ValidatedData) -> list[str]:
    return sorted(result.tables["transactions"].execute()["order_id"])


def check_counts(result: ValidatedData, table: str, read: int, accepted: int) -> None:
    report = result.report[table]
    assert (report.read, report.accepted, report.quarantined) == (read, accepted, read - accepted)


# ----------------------------------------------------------------------------- undecodable bytes


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_an_undecodable_byte_quarantines_its_row_with_line_column_and_the_byte_escaped(tmp_path, gz):
    # A quoted newline (lines 4-5) before the bad row and a bad timestamp after it: the
    # quarantine must still give physical lines of the original file.
    lines = [HEADER, *clean_lines(0, 2), b'C900,O900,2024-03-01,5,"two\nlines"\n',
             b"C901,O901,2024-03-02,1\xff5,shoes\n", *clean_lines(2, 2), b"C902,O902,soon,7,shoes\n",
             *clean_lines(4, 20)]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines, gz=gz))
    rows = result.quarantine.set_index("line")
    assert rows.loc[6, ["column", "value", "reason"]].tolist() == ["amount", "1\\xff5", "undecodable_text"]
    assert json.loads(rows.loc[6, "raw"]) == {"customer_id": "C901", "order_id": "O901", "ts": "2024-03-02",
                                              "amount": "1\\xff5", "category": "shoes"}
    assert rows.loc[9, ["column", "reason"]].tolist() == ["ts", "bad_timestamp"]
    assert "O901" not in accepted_orders(result) and "O900" in accepted_orders(result)
    check_counts(result, "transactions", read=27, accepted=25)


def test_every_kind_of_broken_utf8_is_a_row_and_text_in_other_scripts_is_accepted(tmp_path):
    broken = [b"\xe9", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"]  # latin-1, cut, surrogate...
    lines = [HEADER, *clean_lines(0, 30)]
    lines += [b"C9%02d,O9%02d,2024-03-01,5,sh" % (i, i) + bad + b"oes\n" for i, bad in enumerate(broken)]
    lines += ["C950,O950,2024-03-01,5,chaussures d'été 鞋\n".encode()]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines))
    assert result.quarantine["reason"].tolist() == ["undecodable_text"] * len(broken)
    assert result.quarantine["line"].tolist() == list(range(32, 32 + len(broken)))
    assert result.quarantine["value"].iloc[0] == "sh\\xe9oes"
    assert "O950" in accepted_orders(result)
    check_counts(result, "transactions", read=36, accepted=31)


def test_a_byte_cut_off_at_the_end_of_the_file_is_a_row(tmp_path):
    lines = [HEADER, *clean_lines(0, 30), b"C999,O999,2024-03-01,5,sh\xe2\x82"]  # no newline, half a character
    result = validate(write_bytes(tmp_path, "transactions.csv", lines))
    assert result.quarantine[["line", "reason"]].values.tolist() == [[32, "undecodable_text"]]
    check_counts(result, "transactions", read=31, accepted=30)


def test_a_header_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = write_bytes(tmp_path, "transactions.csv", [b"customer_id,order_id,ts,amount,cat\xe9gorie\n",
                                                      *clean_lines(0, 3)])
    with pytest.raises(InputContractError, match="header line is not UTF-8") as caught:
        validate(tmp_path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- fields too long


def test_a_10_mb_field_quarantines_its_row_and_shows_only_its_start(tmp_path):
    huge = b"x" * 10_000_000
    lines = [HEADER, *clean_lines(0, 10), b"C500,O500,2024-03-01,5," + huge + b"\n", *clean_lines(10, 10)]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines))
    row = result.quarantine.iloc[0]
    assert (len(result.quarantine), row["line"], row["column"], row["reason"]) == (1, 12, "category", "field_too_long")
    assert row["value"] == "x" * 80 + "... (10,000,000 bytes)"
    assert len(row["raw"]) < 500 and json.loads(row["raw"])["order_id"] == "O500"
    assert "O500" not in accepted_orders(result)
    check_counts(result, "transactions", read=21, accepted=20)


def test_the_field_limit_counts_utf8_bytes_and_is_configurable(tmp_path):
    lines = [HEADER, *clean_lines(0, 20), b"C600,O600,2024-03-01,5,abcdefghij\n",
             "C601,O601,2024-03-01,5,ééééé\n".encode(), "C602,O602,2024-03-01,5,éééééé\n".encode()]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines), max_field_bytes=10)
    # 'abcdefghij' and 'ééééé' are 10 bytes: within the limit; 'éééééé' is 12.
    assert result.quarantine[["line", "column", "reason"]].values.tolist() == [[24, "category", "field_too_long"]]
    assert {"O600", "O601"} <= set(accepted_orders(result))


def test_a_line_of_several_long_fields_each_within_the_limit_is_accepted(tmp_path):
    # 2 x 1.5 MB: the line is over DuckDB's default line limit (2 MB), each field under ours.
    long_text = b"y" * 1_500_000
    lines = [HEADER.replace(b"category", b"category,channel"),
             b"C700,O700,2024-03-01,5," + long_text + b"," + long_text + b"\n",
             b"C701,O701,2024-03-01,5,shoes,web\n"]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines), max_field_bytes=2_000_000)
    assert result.quarantine.empty and accepted_orders(result) == ["O700", "O701"]


def test_a_ragged_line_in_a_file_that_needed_cleaning_names_its_original_line(tmp_path):
    lines = [HEADER, b"C1,O1,2024-03-01,5,sh\xe9\n", b"C2,O2,2024-03-01,5,shoes,extra\n"]
    with pytest.raises(InputContractError, match="line 3 has 6 fields where the header has 5"):
        validate(write_bytes(tmp_path, "transactions.csv", lines))


def test_new_reasons_are_listed_first(tmp_path):
    assert QUARANTINE_REASONS[:2] == ("undecodable_text", "field_too_long")


# ----------------------------------------------------------------------------- header-only optional tables


def test_a_header_only_optional_csv_table_is_absent_with_a_warning(tmp_path):
    write_bytes(tmp_path, "transactions.csv", [HEADER, *clean_lines(0, 5)])
    customers = write_bytes(tmp_path, "customers.csv", [b"customer_id,region\n"])
    invoices = write_bytes(tmp_path, "invoices.csv", [b"customer_id,invoice_id,issued_at,due_at,amount\r\n"])
    result = validate(tmp_path)
    assert set(result.tables) == {"transactions"} and set(result.report) == {"transactions"}
    assert len(result.warnings) == 2
    for path, table in ((customers, "customers"), (invoices, "invoices")):
        [warning] = [w for w in result.warnings if str(path) in w]
        assert warning.startswith(f"{table} table, file {path}") and "treated as absent" in warning


def test_a_header_only_customers_table_leaves_invoices_checked_against_transactions(tmp_path):
    write_bytes(tmp_path, "transactions.csv", [HEADER, *clean_lines(0, 5)])
    write_bytes(tmp_path, "customers.csv", [b"customer_id\n"])
    write_bytes(tmp_path, "invoices.csv", [b"customer_id,invoice_id,issued_at,due_at,amount\n",
                                           b"C001,I1,2024-03-01,2024-03-31,5\n", b"C999,I2,2024-03-01,2024-03-31,5\n"])
    result = validate(tmp_path)
    assert result.quarantine[["line", "reason"]].values.tolist() == [[3, "unknown_customer"]]


def test_header_only_optional_parquet_and_duckdb_tables_are_absent_with_a_warning(tmp_path):
    write_bytes(tmp_path, "transactions.csv", [HEADER, *clean_lines(0, 5)])
    pd.DataFrame({"customer_id": pd.Series([], dtype=str), "ts": pd.Series([], dtype="datetime64[us]"),
                  "kind": pd.Series([], dtype=str)}).to_parquet(tmp_path / "interactions.parquet")
    result = validate(tmp_path)
    assert "interactions" not in result.tables and "interactions.parquet" in result.warnings[0]
    database = tmp_path / "source.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE transactions AS SELECT 'C1' AS customer_id, 'O1' AS order_id, "
                    "TIMESTAMP '2024-03-01' AS ts, 5.0 AS amount")
        con.execute("CREATE TABLE customers (customer_id VARCHAR, region VARCHAR)")
    result = validate(database)
    assert set(result.tables) == {"transactions"} and "main.customers" in result.warnings[0]


def test_a_header_only_transactions_table_stays_an_error(tmp_path):
    write_bytes(tmp_path, "transactions.csv", [HEADER])
    write_bytes(tmp_path, "customers.csv", [b"customer_id\n", b"C1\n"])
    with pytest.raises(InputContractError, match="transactions table.*the table has no rows"):
        validate(tmp_path)


def test_a_header_only_optional_table_with_a_wrong_header_is_still_an_error(tmp_path):
    write_bytes(tmp_path, "transactions.csv", [HEADER, *clean_lines(0, 5)])
    write_bytes(tmp_path, "invoices.csv", [b"customer_id,invoice_id\n"])
    with pytest.raises(InputContractError, match="required column"):
        validate(tmp_path)


# ----------------------------------------------------------------------------- columns that mean the same


@pytest.mark.parametrize("header", [b"customer_id,order_id,ts,amount, AMOUNT\n", b"customer_id,order_id,ts,amount,Amount\n"])
def test_case_duplicate_csv_columns_are_one_line_naming_the_file_and_both(tmp_path, header):
    second = header.decode().rstrip("\n").split(",")[-1]
    path = write_bytes(tmp_path, "transactions.csv", [header, b"C1,O1,2024-03-01,5,6\n"])
    with pytest.raises(InputContractError) as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"transactions table, file {path}: columns 'amount' and {second!r} both mean 'amount'")
    assert "\n" not in message and "Binder" not in message and "as many fields" not in message


def test_case_duplicate_parquet_columns_are_refused_not_renamed(tmp_path):
    # DuckDB would read the second as 'AMOUNT_1' and silently ignore it.
    table = pa.table({"customer_id": ["C1"], "order_id": ["O1"], "ts": ["2024-03-01"], "amount": [5.0]})
    table = table.append_column("AMOUNT", pa.array([6.0]))
    pq.write_table(table, tmp_path / "transactions.parquet")
    with pytest.raises(InputContractError, match="columns 'amount' and 'AMOUNT' both mean 'amount'"):
        validate(tmp_path)


# ----------------------------------------------------------------------------- links and echoed content


SECRET = "root:x:0:0:SECRET-CONTENT:/root:/bin/bash"


def outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text("\n".join([SECRET, "daemon:x:1:1:SECRET-CONTENT-2,,:/usr/sbin:/bin/sh"]) + "\n")
    return secret


@pytest.mark.parametrize("name", ["transactions.csv", "customers.parquet"])
def test_a_link_leaving_the_data_folder_is_refused_without_echoing_its_target(tmp_path, name):
    data = tmp_path / "data"
    write_bytes(data, "transactions.csv", [HEADER, *clean_lines(0, 5)]) if name != "transactions.csv" else data.mkdir()
    link = data / name
    os.symlink(outside_file(tmp_path), link)
    with pytest.raises(InputContractError) as caught:
        validate(data)
    message = str(caught.value)
    assert message.startswith(f"{name.split('.')[0]} table, file {link}: a symbolic link that leads out of the data folder")
    assert "SECRET" not in message and "bash" not in message and "\n" not in message


def test_a_link_within_the_data_folder_and_a_linked_data_folder_are_followed(tmp_path):
    data = tmp_path / "data"
    write_bytes(data / "versions", "transactions-v2.csv", [HEADER, *clean_lines(0, 5)])
    os.symlink(Path("versions") / "transactions-v2.csv", data / "transactions.csv")
    os.symlink(data, tmp_path / "current")
    assert len(accepted_orders(validate(data))) == 5
    assert len(accepted_orders(validate(tmp_path / "current"))) == 5


def test_a_file_read_by_mistake_shows_at_most_the_start_of_one_line(tmp_path):
    # A ragged line of 100,000 characters: the error names the line and shows its start only.
    long_line = "C1,O1,2024-03-01,5,shoes," + "z" * 100_000 + "\n"
    path = write_bytes(tmp_path, "transactions.csv", [HEADER, *clean_lines(0, 5), long_line.encode()])
    with pytest.raises(InputContractError) as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert str(path) in message and "Line: 7" in message
    assert len(message) < 1_000 and "z" * 200 not in message


def test_a_huge_or_unprintable_header_is_shown_escaped_and_cut(tmp_path):
    path = write_bytes(tmp_path, "transactions.csv", [b"customer_id,order\x1b[31m_id," + b"w" * 50_000 + b"\n",
                                                      b"C1,O1,x\n"])
    with pytest.raises(InputContractError, match="required column") as caught:
        validate(tmp_path)
    message = str(caught.value)
    assert str(path) in message and "order\\x1b[31m_id" in message and "\x1b" not in message
    assert len(message) < 1_000


def test_shown_escapes_controls_and_bytes_and_cuts_long_text():
    assert shown("a\x00b\udce9") == "a\\x00b\\xe9"
    assert shown("q" * 100, 10) == "q" * 10 + "... (100 characters)"


def test_a_10_mb_quoted_field_of_short_lines_is_found_too(tmp_path):
    huge = b'"' + b"note line\n" * 1_000_000 + b'"'  # 10 MB in 1,000,000 short lines
    lines = [HEADER, *clean_lines(0, 20), b"C800,O800,2024-03-01,5," + huge + b"\n", *clean_lines(20, 2),
             b"C801,O801,2024-03-01,5,\"say \"\"hi\"\"\nthere\"\n", b"C802,O802,later,5,shoes\n"]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines))
    rows = result.quarantine[["line", "column", "reason"]].values.tolist()
    assert rows == [[22, "category", "field_too_long"], [1_000_027, "ts", "bad_timestamp"]]
    check_counts(result, "transactions", read=25, accepted=23)


def test_a_stray_quote_costs_a_scan_but_changes_nothing(tmp_path):
    lines = [HEADER, b'C1,O1,2024-03-01,5,12" pipe\n', *clean_lines(0, 20)]
    result = validate(write_bytes(tmp_path, "transactions.csv", lines), max_field_bytes=50)
    assert result.quarantine.empty and len(accepted_orders(result)) == 21


def test_blank_lines_keep_their_meaning_in_a_cleaned_one_column_file(tmp_path):
    write_bytes(tmp_path, "transactions.csv", [HEADER, *clean_lines(0, 5)])
    write_bytes(tmp_path, "customers.csv", [b"customer_id\n", b"C000\n", b"\n", b"C\xff1\n", b"C001\n"])
    result = validate(tmp_path)
    assert result.quarantine[["line", "reason"]].values.tolist() == [[3, "missing_customer_id"],
                                                                    [4, "undecodable_text"]]
    check_counts(result, "customers", read=4, accepted=2)


def test_the_quarantine_limit_error_shows_only_the_start_of_a_long_value(tmp_path):
    from features.validation import QuarantineThresholdError

    lines = [HEADER, b"C1,O1,2024-03-01," + b"9" * 500_000 + b"x,shoes\n", *clean_lines(0, 3)]
    with pytest.raises(QuarantineThresholdError) as caught:
        load_and_validate(write_bytes(tmp_path, "transactions.csv", lines).parent, clock=CLOCK)
    message = str(caught.value)
    assert "line 2, column amount, value '" + "9" * 80 + "... (500,001 characters)' (non_numeric_amount)" in message
    assert len(message) < 1_000
