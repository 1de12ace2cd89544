"""A scored run: the score table of the contract, its explanations and its segment summary.

What `score_run` returns and every `ScoreSink` publishes. Its interface is tables
(`scores()`, `explanations()`, `score_batches()`), so a sink never matches files by position.
Behind it, a run scored in chunks keeps the large reason texts in the Parquet files scoring
wrote chunk by chunk (flat memory at millions of customers) and only the numbers in memory;
a run built from whole tables (`from_tables`) keeps them in memory. The Parquet store takes the
files as they are (hard links); another sink reads the batches. Tables beyond the contract's three
(`tables`: the changes since the last run, drift) travel with the run and are published with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.score_table import (
    EXPLANATION_SCHEMA,
    SCORE_SCHEMA,
    SCORE_TEXT_COLUMNS,
    SCORE_TEXTS_SCHEMA,
    ContractError,
    conform,
)

Part = Path | pa.Table


@dataclass
class ScoredRun:
    """The tables of one scoring run; `text_parts` hold, read in order, the texts of the rows of `numbers`."""

    run_id: str | None
    numbers: pa.Table  # every score column but the texts, one row per customer (columns the run stamps may be absent)
    text_parts: list[Part]  # customer_id + SCORE_TEXT_COLUMNS
    explanation_parts: list[Part]  # EXPLANATION_SCHEMA (run_id may be absent)
    summary: pa.Table | None = None  # SUMMARY_SCHEMA without run_id, or None
    # Further tables of the run (what changed since the last run, drift...), published with it under
    # their names (lower-case identifiers); a sink stamps run_id on their rows where it is missing.
    tables: dict[str, pa.Table] = field(default_factory=dict)
    # Busy and thread-CPU seconds per scoring stage (empty for a run built from tables).
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, scores: pd.DataFrame | pa.Table, explanations: pd.DataFrame | pa.Table | None = None,
                    summary: pd.DataFrame | pa.Table | None = None, *, run_id: str | None = None) -> ScoredRun:
        """A run from whole tables in the contract's columns (run_id, as_of and the model versions may be left out)."""
        table = _arrow(scores)
        missing = [c for c in SCORE_TEXT_COLUMNS if c not in table.column_names]
        if missing:
            raise ContractError(f"scores: missing column(s) {missing}; a scored run has the reason texts of every customer")
        texts = table.select(["customer_id", *SCORE_TEXT_COLUMNS])
        numbers = table.drop_columns(list(SCORE_TEXT_COLUMNS))
        return cls(run_id, numbers, [texts], [] if explanations is None else [_arrow(explanations)],
                   None if summary is None else _arrow(summary))

    @property
    def num_rows(self) -> int:
        """Customers in the run."""
        return self.numbers.num_rows

    def score_batches(self) -> Iterator[pa.Table]:
        """The score table one scoring chunk at a time: numbers and texts of the same customers side by side."""
        offset = 0
        for part in self.text_parts:
            texts = read_part(part)
            numbers = self.numbers.slice(offset, texts.num_rows)
            if not texts.column("customer_id").cast(pa.string()).equals(numbers.column("customer_id").cast(pa.string())):
                raise ContractError(f"run {self.run_id}: the texts of rows {offset}..{offset + texts.num_rows - 1} belong to "
                                    "other customers than the numbers; score the run again")
            offset += texts.num_rows
            yield _side_by_side(numbers, texts)
        if offset != self.numbers.num_rows:
            raise ContractError(f"run {self.run_id}: the texts cover {offset} customers, the numbers {self.numbers.num_rows}")

    def scores(self) -> pa.Table:
        """The whole score table (the contract's columns this run has)."""
        batches = list(self.score_batches())
        return pa.concat_tables(batches) if batches else _side_by_side(self.numbers, SCORE_TEXTS_SCHEMA.empty_table())

    def explanations(self, columns: list[str] | None = None) -> pa.Table:
        """Every reason row of the run, all columns or `columns` (each part read for those only)."""
        tables = [conform(read_part(p), _without_run_id(p), where=f"run {self.run_id} explanations")
                  for p in self.explanation_parts] if columns is None else \
            [read_part(p, columns).select(columns) for p in self.explanation_parts]
        if tables:
            return pa.concat_tables(tables)
        empty = EXPLANATION_SCHEMA.empty_table()
        return empty if columns is None else empty.select(columns)


def read_part(part: Part, columns: list[str] | None = None) -> pa.Table:
    """A part as a table (all columns or `columns`), read from its file when it is one."""
    if isinstance(part, Path):
        return pq.read_table(part, columns=columns)
    return part if columns is None else part.select(columns)


def _without_run_id(part: Part) -> pa.Schema:
    names = pq.read_schema(part).names if isinstance(part, Path) else part.column_names
    return EXPLANATION_SCHEMA if "run_id" in names else pa.schema([f for f in EXPLANATION_SCHEMA if f.name != "run_id"])


def _side_by_side(numbers: pa.Table, texts: pa.Table) -> pa.Table:
    order = [c for c in SCORE_SCHEMA.names if c in numbers.column_names or c in SCORE_TEXT_COLUMNS]
    return pa.table({c: texts.column(c) if c in SCORE_TEXT_COLUMNS else numbers.column(c) for c in order})


def _arrow(table: pd.DataFrame | pa.Table) -> pa.Table:
    return table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)

