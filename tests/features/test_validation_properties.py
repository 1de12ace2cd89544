"""Property tests: whatever the mess, every row read is either accepted or quarantined."""

from __future__ import annotations

import csv
import random
import tempfile
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.validation import DUPLICATE_LINE_POLICIES, QUARANTINE_REASONS, ValidatedData, load_and_validate

CLOCK = datetime(2025, 1, 1)

customer_ids = st.sampled_from(["001", " 001 ", "1", "A", "", "0042"])
order_ids = st.sampled_from(["O1", "O2", "O3", ""])
timestamps = st.sampled_from([
    "2024-01-05", "2024-01-05T10:00:00", "2024-01-05T10:00:00+08:00", "2024-01-05 23:30:00Z",
    "2030-01-01", "", "yesterday", "2024-02-30",
])
amounts = st.sampled_from(["10", "-2.5", "0", "1e3", "nan", "inf", "abc", "", "1,5"])
categories = st.sampled_from(["a", "b", "two\nlines", ""])
transaction_rows = st.lists(
    st.tuples(customer_ids, order_ids, timestamps, amounts, st.sampled_from(["P1", "P2"]), categories),
    min_size=1,
    max_size=25,
)
interaction_rows = st.lists(
    st.tuples(customer_ids, timestamps, st.sampled_from(["ticket", "Complaint", ""]), amounts),
    max_size=10,
)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def run(directory: Path, tx: list[tuple], interactions: list[tuple]) -> ValidatedData:
    write_csv(directory / "transactions.csv", ["customer_id", "order_id", "ts", "amount", "product_id", "category"], tx)
    if interactions:
        write_csv(directory / "interactions.csv", ["customer_id", "ts", "kind", "cost"], interactions)
    return load_and_validate(directory, clock=CLOCK, max_quarantine_share=1.0)


@SETTINGS
@given(tx=transaction_rows, interactions=interaction_rows)
def test_accepted_plus_quarantined_equals_rows_read(tx, interactions):
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), tx, interactions)
    expected_read = {"transactions": len(tx)} | ({"interactions": len(interactions)} if interactions else {})
    for table, rep in result.report.items():
        assert rep.read == expected_read[table]
        assert rep.accepted + rep.quarantined == rep.read
        assert sum(rep.reasons.values()) == rep.quarantined
        assert result.tables[table].count().execute() == rep.accepted
        lines = result.quarantine.loc[result.quarantine["table"] == table, "line"]
        assert lines.is_unique  # one reason per row


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tx=transaction_rows, seed=st.integers(0, 1000))
def test_row_order_never_changes_the_outcome(tx, seed):
    shuffled = tx[:]
    random.Random(seed).shuffle(shuffled)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        first, second = run(Path(a), tx, []), run(Path(b), shuffled, [])
    assert first.data_hash == second.data_hash
    assert first.report_json() == second.report_json()


@SETTINGS
@given(tx=transaction_rows, interactions=interaction_rows)
def test_every_reason_is_a_documented_one(tx, interactions):
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), tx, interactions)
    assert set(result.quarantine["reason"]) <= set(QUARANTINE_REASONS)


keyed_rows = st.lists(
    st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["O1", "O2"]), st.sampled_from(["2024-01-05", "bad"]),
              st.sampled_from(["5", "-5", "7"]), st.sampled_from(["1", "2", " 1", ""])),
    min_size=1,
    max_size=20,
)


@SETTINGS
@given(tx=keyed_rows, policy=st.sampled_from(DUPLICATE_LINE_POLICIES))
def test_with_line_ids_accepted_lines_are_unique_and_unkeyed_ones_follow_the_policy(tx, policy):
    with tempfile.TemporaryDirectory() as tmp:
        write_csv(Path(tmp) / "transactions.csv", ["customer_id", "order_id", "ts", "amount", "line_id"], tx)
        result = load_and_validate(Path(tmp), clock=CLOCK, max_quarantine_share=1.0, duplicate_lines=policy)
        rep = result.report["transactions"]
        lines = result.tables["transactions"].execute()
    assert rep.accepted + rep.quarantined == rep.read == len(tx) and len(lines) == rep.accepted
    keyed = lines[lines["line_id"].notna()]
    assert not keyed.duplicated(["order_id", "line_id"]).any()  # one accepted row per order line
    unkeyed = lines[lines["line_id"].isna()]
    copies = int(unkeyed.duplicated().sum())
    assert rep.exact_duplicates_kept == (copies if policy == "keep" else 0)
    assert copies == 0 or policy == "keep"
