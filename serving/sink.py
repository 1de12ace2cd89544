"""Where scored runs go: the `ScoreSink` interface and the one place a sink is built.

A sink publishes a `ScoredRun` all or nothing (readers see the previous run until the new one
is complete), lists the runs it holds, and reads a run back as the contract's tables. The
Parquet store (serving/store.py) is the first implementation; another (a database, an API)
is one module implementing these methods, chosen in `open_sink`. Besides the contract's three
tables a run may carry further named tables (what changed since the last run, drift, and later
its backtest), published with it or attached afterwards, all or nothing as well.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa

from serving.scored_run import ScoredRun
from serving.store import PublishedRun, RunMetadata, ScoreStore


@runtime_checkable
class ScoreSink(Protocol):
    """Publishes scored runs all or nothing and reads them back (default run: the latest)."""

    def publish(self, metadata: RunMetadata, run: ScoredRun) -> PublishedRun:
        """Make the whole run visible at once, or nothing of it; a run_id published again replaces its run."""
        ...

    def list_runs(self) -> pd.DataFrame:
        """One row per published run, oldest first, with its metadata and row counts."""
        ...

    def run_metadata(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> PublishedRun:
        """The metadata of a run."""
        ...

    def read_scores(self, run_id: str | None = None, as_of: dt.date | str | None = None, segment: str | None = None,
                    customer_id: str | Iterable[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The score table of a run, optionally one segment or some customers."""
        ...

    def read_explanations(self, run_id: str | None = None, as_of: dt.date | str | None = None,
                          customer_id: str | Iterable[str] | None = None, score: str | None = None,
                          columns: list[str] | None = None) -> pd.DataFrame:
        """The explanations (one row per reason) of a run, all columns or `columns`."""
        ...

    def read_summary(self, run_id: str | None = None, as_of: dt.date | str | None = None) -> pd.DataFrame:
        """The segment and value-tier summary of a run."""
        ...

    def read_table(self, name: str, run_id: str | None = None, as_of: dt.date | str | None = None,
                   columns: list[str] | None = None) -> pd.DataFrame | None:
        """A further table of a run (`ScoredRun.tables`, or one attached later), all columns or `columns`;
        None when the run has none."""
        ...

    def attach_table(self, run_id: str, name: str, table: pa.Table | pd.DataFrame) -> PublishedRun:
        """Add or replace a further table of a published run, all or nothing (e.g. its backtest)."""
        ...

    def read_scores_page(self, run_id: str | None = None, *, segment: str | None = None, value_tier: str | None = None,
                         min_value: float | None = None, min_p_churn: float | None = None,
                         after_customer_id: str | None = None, limit: int = 100,
                         columns: list[str] | None = None) -> pd.DataFrame:
        """Up to `limit` score rows of a run (default: latest) ordered by customer_id (byte order), strictly after
        `after_customer_id`; `min_value` is a lower bound on clv, `min_p_churn` on p_churn (both inclusive)."""
        ...

    def customer_history(self, customer_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One score row per published run holding the customer, oldest run first, always with run_id and as_of."""
        ...


def open_sink(location: Path | str) -> ScoreStore:
    """The score sink at `location` (a folder: the Parquet store)."""
    return ScoreStore(location)
