"""CSV cells a spreadsheet shows as text: formula starts quoted, numbers and nulls untouched."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from features.safe_csv import original_text, safe_text, safe_text_frame, safe_text_table

# (text, cell written) for every start OWASP lists, the quote itself, and harmless texts
CELLS = [
    ("=1+1", "'=1+1"), ("+44 20", "'+44 20"), ("-x", "'-x"), ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\tC1", "'\tC1"), ("\rC1", "'\rC1"), ("'kept", "''kept"),
    ("C001", "C001"), ("a=b", "a=b"), ("", ""), ("客户", "客户"), (" =x", " =x"),
]


@pytest.mark.parametrize(("text", "cell"), CELLS)
def test_cells_starting_a_formula_get_one_quote_and_read_back(text, cell):
    assert safe_text(text) == cell
    assert original_text(cell) == text


def test_frame_quotes_text_columns_only_and_keeps_nulls():
    frame = pd.DataFrame({
        "customer_id": ["=1+1", "-x", None, "C1"],
        "net_value": [-12.5, 3.0, math.nan, -1.0],
        "orders": [-1, 0, 2, 3],
        "segment": pd.Categorical(["-new", "regular", None, "regular"]),
        "text": pd.array(["@a", None, "b", "+c"], dtype="string"),
    })
    safe = safe_text_frame(frame)

    def cells(name: str) -> list:
        return [None if pd.isna(v) else v for v in safe[name].astype(object)]

    assert cells("customer_id") == ["'=1+1", "'-x", None, "C1"]
    assert cells("segment") == ["'-new", "regular", None, "regular"]
    assert cells("text") == ["'@a", None, "b", "'+c"]
    pd.testing.assert_series_equal(safe["net_value"], frame["net_value"])
    pd.testing.assert_series_equal(safe["orders"], frame["orders"])
    assert frame["customer_id"].tolist()[0] == "=1+1"  # the caller's frame is not changed


def test_arrow_table_quotes_string_columns_and_its_csv_keeps_numbers():
    table = pa.table({"customer_id": ["=1+1", "ok", None], "net_value": [-12.5, 1.0, None],
                      "note": pa.array(["-1", "x", "y"], type=pa.large_string())})
    safe = safe_text_table(table)
    assert safe.column("customer_id").to_pylist() == ["'=1+1", "ok", None]
    assert safe.column("note").to_pylist() == ["'-1", "x", "y"]
    assert safe.column("net_value").to_pylist() == [-12.5, 1.0, None]
    sink = pa.BufferOutputStream()
    pacsv.write_csv(safe, sink)
    lines = sink.getvalue().to_pybytes().decode().splitlines()
    assert lines[1] == "\"'=1+1\",-12.5,\"'-1\""


def test_table_without_such_cells_is_returned_as_it_is():
    table = pa.table({"customer_id": ["C1", "C2"], "reason": ["no order for 90 days", None]})
    assert safe_text_table(table).equals(table)
