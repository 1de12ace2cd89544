"""Duplicates among the rows that passed every rule: exact copies and conflicting rows of one key.

Only rows whose key (or, without a key, whose row hash) repeats are compared, exactly, so the
usual table with no duplicate costs one sort of 64-bit hashes. An exact copy is
``exact_duplicate`` (the first is kept, and a copy of a transaction line without a line id is
kept under ``duplicate_lines="keep"``); rows of one key with different values are all
``conflicting_duplicate``.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from features.contract import TABLES
from features.sql_text import quote_ident, quote_literal
from features.validation.checks import Checked, duplicate_key, key_filled
from features.validation.rules import CONFLICTING_DUPLICATE, EXACT_DUPLICATE


def _candidate_rows(chk: Checked, candidates: str) -> str:
    """FROM clause: accepted columns and row hash (__h) of the candidate rows only."""
    if chk.materialised:
        return f"(SELECT c.*, c.__hr AS __h FROM {chk.checked} c WHERE c.__rid IN (SELECT __rid FROM {candidates}))"
    # Read the Parquet file again, but only when some rows may be duplicates.
    return (
        f"({chk.normalised} SELECT p.__rid, {', '.join(chk.outputs)}, c.__hr AS __h FROM p "
        f"JOIN {chk.checked} c ON c.__rid = p.__rid WHERE p.__rid IN (SELECT __rid FROM {candidates}))"
    )


def find_duplicates(con: duckdb.DuckDBPyConnection, chk: Checked, drop_unkeyed_copies: bool) -> tuple[str, int]:
    """Temp table of the duplicates to quarantine among rule-passing rows, and the copies kept.

    A copy of a row that has a key is always quarantined; a copy of a row without one only
    when `drop_unkeyed_copies` (otherwise it stays accepted and is counted).
    """
    spec = TABLES[chk.src.table]
    cols = ", ".join(quote_ident(c) for c in chk.columns)
    key = duplicate_key(spec, chk.columns)
    candidates = _duplicate_candidates(con, chk, key)
    dups = f"__dup_{chk.src.table}"
    if key:
        partition = ", ".join(key)
        conflict = (f"{key_filled(key)} AND min(__h) OVER (PARTITION BY {partition}) <> "
                    f"max(__h) OVER (PARTITION BY {partition})")
        key_text = " || '|' || ".join(f"coalesce(CAST({k} AS VARCHAR), '')" for k in key)
        key_names = ",".join(spec.key)
    else:
        conflict, key_text, key_names = "false", "''", ""
    if not con.execute(f"SELECT count(*) FROM {candidates}").fetchall()[0][0]:
        con.execute(
            f'CREATE OR REPLACE TEMP TABLE {dups} (__rid BIGINT, reason VARCHAR, "column" VARCHAR, '
            "value VARCHAR, __first BIGINT, __kept BOOLEAN)"
        )
        con.execute(f"DROP TABLE IF EXISTS {candidates}")
        return dups, 0
    # Exact comparison, but only over the few rows whose hashes collide (see candidates).
    # __first is the row id of the first copy; it becomes a line number in the quarantine.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {dups} AS
        SELECT __rid,
               CASE WHEN __rn > 1 THEN '{EXACT_DUPLICATE}' ELSE '{CONFLICTING_DUPLICATE}' END AS reason,
               CASE WHEN __rn > 1 THEN '(whole row)' ELSE {quote_literal(key_names)} END AS "column",
               CASE WHEN __rn > 1 THEN NULL ELSE __key END AS value,
               CASE WHEN __rn > 1 THEN __first END AS __first,
               NOT __conflict AND NOT __keyed AND {"false" if drop_unkeyed_copies else "true"} AS __kept
        FROM (
            SELECT __rid,
                   row_number() OVER (PARTITION BY {cols} ORDER BY __rid) AS __rn,
                   min(__rid) OVER (PARTITION BY {cols}) AS __first,
                   coalesce({conflict}, false) AS __conflict,
                   coalesce({key_filled(key)}, false) AS __keyed,
                   {key_text} AS __key
            FROM {_candidate_rows(chk, candidates)}
        )
        WHERE __rn > 1 OR __conflict
        """
    )
    con.execute(f"DROP TABLE IF EXISTS {candidates}")
    kept = con.execute(f"SELECT count(*) FROM {dups} WHERE __kept").fetchall()[0][0]
    if kept:
        con.execute(f"DELETE FROM {dups} WHERE __kept")
    return dups, int(kept)


def _duplicate_candidates(con: duckdb.DuckDBPyConnection, chk: Checked, key: list[str]) -> str:
    """Rows that may be duplicates: their key (or, for a row without a key, its row hash) repeats."""
    # Grouping by 64-bit hashes is much cheaper than windows over every column of every row;
    # a hash collision only adds a candidate, which the exact pass then clears. Two copies of
    # a row share its key, so with a key one grouping finds exact and conflicting duplicates.
    candidates = f"__cand_{chk.src.table}"
    by = "coalesce(__hk, __hr)" if key else "__hr"
    repeated = _repeated_hashes(con, chk.checked, by)
    if len(repeated):
        hashes = f"__rep_{chk.src.table}"
        con.register(hashes, pd.DataFrame({"h": repeated}))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {candidates} AS SELECT __rid FROM {chk.checked} "
            f"WHERE {by} IN (SELECT h FROM {hashes})"
        )
        con.unregister(hashes)
    else:  # the usual case: no repeated hash, no need to scan the rows again
        con.execute(f"CREATE OR REPLACE TEMP TABLE {candidates} (__rid BIGINT)")
    return candidates


def _repeated_hashes(con: duckdb.DuckDBPyConnection, checked: str, by: str) -> np.ndarray:
    """Hash values that occur more than once among the rule-passing rows."""
    # Sorting the 64-bit hashes in numpy takes about a seventh of the CPU of DuckDB's
    # GROUP BY over millions of distinct values, and less memory than its hash table.
    hashes = np.asarray(con.execute(f"SELECT {by} AS h FROM {checked} WHERE __rule IS NULL").fetchnumpy()["h"])
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
