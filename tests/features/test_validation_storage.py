"""Validation of typed Parquet read in place, and the run's work folder that holds validated data."""

from __future__ import annotations

import gc
import os
import subprocess
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.validation import InputContractError, ValidatedData, load_and_validate

CLOCK = datetime(2025, 1, 1)


def validate(directory: Path, **kwargs) -> ValidatedData:
    kwargs.setdefault("clock", CLOCK)
    kwargs.setdefault("max_quarantine_share", 1.0)
    return load_and_validate(directory, **kwargs)


def accepted(result: ValidatedData, table: str) -> pd.DataFrame:
    frame = result.tables[table].execute()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def write_parquet(path: Path, select_sql: str) -> Path:
    """Write a Parquet file with DuckDB, so that column types are exactly those of the SELECT."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
    return path


def as_text_parquet(typed: Path, text: Path) -> Path:
    """The same rows with every column stored as text: what validation parses from CSV."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{typed}')").fetchall()]
        casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in cols)
        text.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY (SELECT {casts} FROM read_parquet('{typed}')) TO '{text}' (FORMAT parquet)")
    return text


def assert_same_validation(typed: ValidatedData, text: ValidatedData) -> None:
    """Same report, accepted rows, data hash and quarantine (but for the file name)."""
    assert typed.report_json() == text.report_json()
    assert typed.data_hash == text.data_hash
    for table in typed.tables:
        pd.testing.assert_frame_equal(accepted(typed, table), accepted(text, table))
    columns = ["table", "line", "column", "value", "reason", "raw"]
    pd.testing.assert_frame_equal(typed.quarantine[columns], text.quarantine[columns])


# ----------------------------------------------------------------------------- typed Parquet

ids = st.sampled_from(["'001'", "' 001 '", "'A'", "''", "NULL", "'0042'"])
stamps = st.sampled_from([
    "TIMESTAMP '2024-01-05 10:00:00'", "TIMESTAMP '2024-01-05 10:00:00.25'", "NULL",
    "TIMESTAMP '2030-01-01'", "TIMESTAMPTZ '2024-01-05 10:00:00+08'",
])
amounts = st.sampled_from(["10.0", "-2.5", "0.1", "1e300", "'nan'::DOUBLE", "'inf'::DOUBLE", "NULL"])
discounts = st.sampled_from(["0.0", "-1.0", "NULL", "3.25"])
rows = st.lists(st.tuples(ids, st.sampled_from(["'O1'", "'O2'", "'O3'"]), stamps, amounts, discounts,
                          st.sampled_from(["'P1'", "'P2'"])), min_size=1, max_size=20)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, zone=st.booleans())
def test_typed_parquet_gives_what_the_same_rows_as_text_give(tmp_path_factory, rows, zone):
    """Native timestamps and doubles skip parsing; the outcome must not change in any way."""
    base = tmp_path_factory.mktemp("typed")
    ts_type = "TIMESTAMPTZ" if zone else "TIMESTAMP"
    values = ", ".join(
        f"({c}, {o}, CAST({t} AS {ts_type}), CAST({a} AS DOUBLE), CAST({d} AS DOUBLE), {p})"
        for c, o, t, a, d, p in rows
    )
    typed = write_parquet(
        base / "typed" / "transactions.parquet",
        f"SELECT * FROM (VALUES {values}) v(customer_id, order_id, ts, amount, discount, product_id)",
    )
    text = as_text_parquet(typed, base / "text" / "transactions.parquet")
    assert_same_validation(validate(typed.parent), validate(text.parent))


@pytest.mark.parametrize("column_type, value", [
    ("REAL", "0.1"), ("DECIMAL(10, 3)", "12.345"), ("TIMESTAMP_NS", "'2024-01-05 10:00:00.123456789'"),
    ("DATE", "'2024-01-05'"), ("BIGINT", "9007199254740993"),
])
def test_types_without_an_exact_shortcut_give_what_their_text_gives(tmp_path, column_type, value):
    """A float32 0.1 is 0.1, not 0.10000000149, and nanoseconds are cut as in text."""
    target = "ts" if column_type in ("TIMESTAMP_NS", "DATE") else "amount"
    ts = f"CAST({value} AS {column_type})" if target == "ts" else "TIMESTAMP '2024-01-05'"
    amount = f"CAST({value} AS {column_type})" if target == "amount" else "5.0"
    typed = write_parquet(
        tmp_path / "typed" / "transactions.parquet",
        f"SELECT 'C1' AS customer_id, 'O1' AS order_id, {ts} AS ts, {amount} AS amount",
    )
    text = as_text_parquet(typed, tmp_path / "text" / "transactions.parquet")
    typed_result, text_result = validate(typed.parent), validate(text.parent)
    assert_same_validation(typed_result, text_result)
    if column_type == "REAL":
        assert accepted(typed_result, "transactions")["amount"].tolist() == [0.1]


def test_typed_parquet_quarantine_names_row_column_value_and_reason(tmp_path):
    write_parquet(
        tmp_path / "transactions.parquet",
        "SELECT * FROM (VALUES ('C1', 'O1', TIMESTAMP '2024-01-05', 10.0, 'P1'), "
        "('C1', 'O2', TIMESTAMP '2024-01-05', 'nan'::DOUBLE, 'P1'), "
        "('C2', 'O3', TIMESTAMP '2024-01-06', 7.0, 'P1'), "
        "('C1', 'O1', TIMESTAMP '2024-01-05', 10.0, 'P1')) v(customer_id, order_id, ts, amount, product_id)",
    )
    result = validate(tmp_path, duplicate_lines="drop_exact")
    got = result.quarantine[["line", "column", "value", "reason"]].values.tolist()
    assert got == [[2, "amount", "nan", "non_finite_amount"], [4, "(whole row)", "same as row 1", "exact_duplicate"]]
    assert result.quarantine["source"].tolist() == [str(tmp_path / "transactions.parquet")] * 2
    assert sorted(accepted(result, "transactions")["order_id"]) == ["O1", "O3"]


def test_data_hash_changes_with_one_accepted_value_and_not_with_row_order(tmp_path):
    rows = "('C1', 'O1', TIMESTAMP '2024-01-05', 10.0), ('C2', 'O2', TIMESTAMP '2024-01-06', 7.0)"
    other = "('C1', 'O1', TIMESTAMP '2024-01-05', 10.0), ('C2', 'O2', TIMESTAMP '2024-01-06', 7.5)"
    swapped = "('C2', 'O2', TIMESTAMP '2024-01-06', 7.0), ('C1', 'O1', TIMESTAMP '2024-01-05', 10.0)"
    hashes = {}
    for name, values in {"rows": rows, "other": other, "swapped": swapped}.items():
        write_parquet(tmp_path / name / "transactions.parquet",
                      f"SELECT * FROM (VALUES {values}) v(customer_id, order_id, ts, amount)")
        hashes[name] = validate(tmp_path / name).data_hash
    assert hashes["rows"] == hashes["swapped"] != hashes["other"]


# ----------------------------------------------------------------------------- work folder


def clean_transactions(folder: Path, amount: float = 10.0) -> Path:
    return write_parquet(
        folder / "transactions.parquet",
        f"SELECT 'C' || i AS customer_id, 'O' || i AS order_id, TIMESTAMP '2024-01-05' AS ts, "
        f"CAST({amount} AS DOUBLE) AS amount FROM range(20) t(i)",
    )


def test_rewriting_a_parquet_source_after_validation_does_not_change_the_validated_rows(tmp_path):
    source = clean_transactions(tmp_path / "data")
    result = validate(source.parent, work_dir=tmp_path / "work")
    clean_transactions(tmp_path / "data", amount=99.0)  # the upstream job rewrites the file
    assert accepted(result, "transactions")["amount"].unique().tolist() == [10.0]


def test_work_folder_holds_the_data_and_goes_when_the_result_is_released(tmp_path):
    source = clean_transactions(tmp_path / "data")
    work = tmp_path / "work"
    result = validate(source.parent, work_dir=work, memory_limit="300MB")
    folders = list(work.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith(f"validated-{os.getpid()}-")
    limit = result.con.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.startswith(("286", "300"))  # DuckDB shows MiB
    del result
    gc.collect()
    assert list(work.iterdir()) == []


def test_work_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    source = clean_transactions(tmp_path / "data")
    work = tmp_path / "work"
    dead_pid = _a_dead_pid()
    (work / f"validated-{dead_pid}-old").mkdir(parents=True)
    (work / f"validated-{os.getppid()}-running").mkdir()
    result = validate(source.parent, work_dir=work)
    names = sorted(p.name for p in work.iterdir())
    assert f"validated-{dead_pid}-old" not in names
    assert f"validated-{os.getppid()}-running" in names
    assert result.report["transactions"].accepted == 20


def _a_dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_malformed_line_found_while_reading_leaves_no_work_folder(tmp_path):
    (tmp_path / "data").mkdir()
    # Far enough down the file that the first look at it (one row) does not reach it.
    good = "".join(f"C{i},O{i},2024-01-05,5\n" for i in range(300_000))
    (tmp_path / "data" / "transactions.csv").write_text(
        "customer_id,order_id,ts,amount\n" + good + "B,O2,2024-01-05,5,extra\n")
    with pytest.raises(InputContractError, match="as many fields"):
        validate(tmp_path / "data", work_dir=tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


def test_csv_tables_are_stored_in_the_work_database(tmp_path):
    (tmp_path / "data").mkdir()
    lines = ["customer_id,order_id,ts,amount"] + [f"C{i},O{i},2024-01-05,{i}.5" for i in range(20)]
    (tmp_path / "data" / "transactions.csv").write_text("\n".join(lines) + "\n")
    result = validate(tmp_path / "data", work_dir=tmp_path / "work")
    kinds = dict(result.con.con.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_name = 'transactions'"
    ).fetchall())
    assert kinds == {"transactions": "BASE TABLE"}
    assert result.con.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0].startswith(
        str(tmp_path / "work"))
    assert len(accepted(result, "transactions")) == 20
