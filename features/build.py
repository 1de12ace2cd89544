"""Build the point-in-time feature table as of a date: one Ibis expression, executed on DuckDB.

`build_features_expr` returns the Ibis expression (run it on any Ibis backend, or stream it
with `to_pyarrow_batches`); `build_features` executes it into pandas. The columns are the
families' of features/catalog.py (`feature_columns`); families whose table or optional column
is absent are absent from the output, not zero-filled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial

import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, field_validator

from features.catalog import TRANSACTION_FAMILIES, feature_columns, select_listed, transaction_columns
from features.families.attributes import attribute_features, prospect_ids
from features.families.breadth import breadth_tables
from features.families.cost_to_serve import cost_to_serve
from features.families.payments import PAYMENT_AMOUNT_COLUMNS, payment_feature_columns, payment_features
from features.families.season_share import season_share_columns, season_shares
from features.families.service import service_feature_columns, service_features
from features.families.tenure_ratios import tenure_ratio_features
from features.tables import columns_of, to_naive_utc
from features.transactions import join_on_customer, season_horizons, transaction_aggregates

logger = logging.getLogger(__name__)


class FeatureSpec(BaseModel):
    """A named, versioned feature set: windows and options that decide the feature columns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custscore"
    version: int = 1
    # Trailing windows in days for every windowed feature (sorted, duplicates dropped).
    windows_days: tuple[int, ...] = (30, 90, 180, 365)
    # Add revenue_change_pct_{W}d_vs_year_ago for the windows shorter than a year.
    year_ago: bool = True
    # dso_days divides open invoices by what was invoiced over this many days.
    dso_window_days: int = 365
    # Join the customers table's columns as attr_<column> and days_since_signup.
    include_attributes: bool = True
    # Add recency and lifetime volume relative to tenure (features/families/tenure_ratios.py).
    tenure_ratios: bool = True
    # Coming horizons (the label horizons) whose window of a year ago gets season features:
    # the customer's revenue, order days and share of the year in it, and the population's share
    # (transactions.py, seasonal.py). Only horizons under 365 days give columns; empty: none.
    season_horizons_days: tuple[int, ...] = ()

    @field_validator("windows_days")
    @classmethod
    def _windows_positive_unique_sorted(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        """Windows must be positive whole days; duplicates are dropped and the order is ascending."""
        if not windows or any(w <= 0 for w in windows):
            raise ValueError(f"windows_days must be non-empty positive whole days, got {windows!r}")
        return tuple(sorted(set(windows)))

    @field_validator("season_horizons_days")
    @classmethod
    def _horizons_positive_unique_sorted(cls, horizons: tuple[int, ...]) -> tuple[int, ...]:
        """Horizons must be positive whole days; duplicates are dropped and the order is ascending."""
        if any(h <= 0 for h in horizons):
            raise ValueError(f"season_horizons_days must be positive whole days, got {horizons!r}")
        return tuple(sorted(set(horizons)))


def feature_set_name(spec: FeatureSpec) -> str:
    """The name logged with runs, e.g. 'custscore-v1', or 'custscore-v1-season-90d' with season columns for 90 days.

    The season columns depend on the label horizons, not only on the version: the name says
    which were built, so runs with the same name have the same columns.
    """
    seasons = season_horizons(spec.season_horizons_days)
    suffix = "-season-" + "-".join(f"{h}d" for h in seasons) if seasons else ""
    return f"{spec.name}-v{spec.version}{suffix}"


def transaction_features(transactions: ir.Table, as_of: datetime, spec: FeatureSpec, *, moments: ir.Table | None = None) -> ir.Table:
    """One row per customer with any visible transaction row: customer_id + the transaction families' columns."""
    windows = spec.windows_days
    table, rows = transaction_aggregates(transactions, as_of, windows, spec.year_ago, moments=moments, seasons=spec.season_horizons_days)
    count_columns: list[str] = []
    for items in breadth_tables(rows, as_of, windows):
        table = join_on_customer(table, items)
        count_columns += [c for c in items.columns if c != "customer_id"]
    # A customer with no purchase row bought zero categories and products: a true zero.
    table = table.mutate(**{c: table[c].fill_null(0) for c in count_columns})
    derived: dict[str, ir.Value] = {}
    for family in TRANSACTION_FAMILIES:
        if family.derive is not None:
            derived.update(family.derive(table, spec))
    table = table.mutate(**derived)
    return select_listed(table, transaction_columns(spec, rows.columns), where="transaction features")


def _fill_true_zeros(table: ir.Table, columns: list[str]) -> ir.Table:
    """Customers without invoices or interactions have zero counts and amounts: a true zero."""
    present = [c for c in columns if c in table.columns]
    return table.mutate(**{c: table[c].fill_null(0) for c in present}) if present else table


# Every customer with a transaction line before as_of has a lifetime revenue (0 when the lines
# are $0 or cancel out); a prospect joined from the customers table has none.
HISTORY_MARKER = "revenue_sum_lifetime"


def has_transaction_history(features: pd.DataFrame) -> np.ndarray:
    """True where the customer has any transaction line before as_of (an order, a $0 line or a return).

    These are the customers scored and trained on; prospects (customers table only) have no
    history. Frames without the marker column fall back to has_orders, then to recency.
    """
    if HISTORY_MARKER in features.columns:
        return features[HISTORY_MARKER].notna().to_numpy()
    if "has_orders" in features.columns:
        return features["has_orders"].fillna(0).to_numpy() > 0
    return features["days_since_last_order"].notna().to_numpy()


def _customer_base(tables: Mapping[str, ir.Table], transaction_table: ir.Table, as_of: datetime, include_prospects: bool) -> ir.Table:
    """Customers with a transaction line before as_of (orders or not), plus (if asked) customers without any."""
    if not include_prospects or "customers" not in tables:
        return transaction_table
    # An outer join, not a union of ids joined back: the union made DuckDB run the transaction
    # aggregates a second time just for their customer ids.
    prospects = prospect_ids(tables["customers"], as_of).rename(_prospect_id="customer_id")
    joined = transaction_table.outer_join(prospects, transaction_table.customer_id == prospects._prospect_id)
    table = joined.mutate(customer_id=joined.customer_id.fill_null(joined._prospect_id)).drop("_prospect_id")
    return table.mutate(has_orders=table.has_orders.fill_null(0))


def build_features_expr(
    tables: Mapping[str, ir.Table],
    as_of: datetime,
    spec: FeatureSpec,
    *,
    include_prospects: bool = False,
    moments: ir.Table | None = None,
    ordered: bool = True,
    population: ir.Table | None = None,
) -> ir.Table:
    """The Ibis expression of the feature table as of `as_of` (customer_id + feature columns).

    `moments` is `features.transactions.order_moments` of the whole transactions table, when
    the caller has it already (a training set materialises it once for all its snapshots).
    `ordered`: rows sorted by customer_id; without it they come in no fixed order.
    `population`: rows (ts, amount) of every customer, for the population season shares when
    `tables` hold only some customers (a hash partition, a sample); default: the moments, else
    the transactions.
    """
    if "transactions" not in tables:
        raise ValueError(f"build_features: the transactions table is required; tables given: {sorted(tables)}")
    as_of = to_naive_utc(as_of)
    windows = spec.windows_days
    transaction_table = transaction_features(tables["transactions"], as_of, spec, moments=moments)
    if spec.tenure_ratios:
        transaction_table = transaction_table.mutate(**tenure_ratio_features(transaction_table))
    table = _customer_base(tables, transaction_table, as_of, include_prospects)
    zero_columns: list[str] = []
    if "invoices" in tables and payment_feature_columns(windows, tables["invoices"].columns):
        table = join_on_customer(table, payment_features(tables["invoices"], as_of, windows, spec.dso_window_days))
        zero_columns += list(PAYMENT_AMOUNT_COLUMNS)
    if "interactions" in tables:
        table = join_on_customer(table, service_features(tables["interactions"], as_of, windows))
        zero_columns += service_feature_columns(windows, tables["interactions"].columns)
    table = _fill_true_zeros(table, zero_columns)
    table = table.mutate(**cost_to_serve(table, spec))
    if spec.include_attributes and "customers" in tables:
        table = join_on_customer(table, attribute_features(tables["customers"], as_of))
    if season_share_columns(spec.season_horizons_days):
        rows = population if population is not None else moments if moments is not None else tables["transactions"]
        table = table.cross_join(season_shares(rows, as_of, spec.season_horizons_days))
    table = select_listed(table, feature_columns(spec, columns_of(tables)), where="features")
    return table.order_by("customer_id") if ordered else table


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """Attribute columns holding text: they become pandas `category` for LightGBM."""
    return [
        c
        for c in frame.columns
        if c.startswith("attr_") and not pd.api.types.is_numeric_dtype(frame[c]) and not isinstance(frame[c].dtype, pd.CategoricalDtype)
    ]


SIGNIFICANT_DIGITS = 12
# Below this magnitude a feature is the residue of terms that cancel (purchases and their
# returns: 0.1 + 0.2 - 0.3), not an amount, share or count of days.
NOISE_FLOOR = 1e-9


def round_float_noise(values: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Round to `digits` significant digits, and magnitudes below NOISE_FLOOR (and -0.0) to 0.0.

    DuckDB sums doubles in parallel in no fixed order, so the same data can give sums that
    differ in the last bits from one run to the next; rounding far below any business
    precision makes reruns give identical features (and so identical scores). Relative
    rounding alone cannot do that for sums that cancel: one run gives 0.0, the next -0.0 or
    3e-15, which LightGBM sends down another branch than 0 and the reasons print as "-0".
    """
    values = np.where(np.abs(values) < NOISE_FLOOR, 0.0, values)
    finite = np.isfinite(values) & (values != 0)
    magnitude = np.zeros_like(values)
    magnitude[finite] = np.floor(np.log10(np.abs(values[finite])))
    scale = np.power(10.0, digits - 1 - magnitude)
    return np.where(finite, np.round(values * scale) / scale, values)


def to_feature_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Give executed features their model dtypes (text attributes as `category`) and stable floats."""
    for column in categorical_columns(frame):
        frame[column] = frame[column].astype("category")
    for column in frame.columns[frame.dtypes == np.float64]:
        frame[column] = round_float_noise(frame[column].to_numpy())
    return frame


def build_features(
    tables: Mapping[str, ir.Table],
    as_of: datetime,
    spec: FeatureSpec,
    *,
    include_prospects: bool = False,
    moments: ir.Table | None = None,
    population: ir.Table | None = None,
) -> pd.DataFrame:
    """One row per customer with a transaction line before `as_of` (and prospects if asked): customer_id + feature columns."""
    expr = build_features_expr(tables, as_of, spec, include_prospects=include_prospects, moments=moments,
                               population=population)
    frame = expr.to_pyarrow().to_pandas()
    logger.info("built %d features for %d customers as of %s", frame.shape[1] - 1, len(frame), as_of)
    return to_feature_frame(frame)


def iter_feature_batches(
    tables: Mapping[str, ir.Table],
    as_of: datetime,
    spec: FeatureSpec,
    *,
    include_prospects: bool = False,
    batch_rows: int = 100_000,
    partitions: int = 1,
) -> Iterator[pd.DataFrame]:
    """The feature table in chunks of `batch_rows` customers (the last one smaller), so memory stays flat.

    On DuckDB the customers come in no fixed order: sorting the finished table kept all of it
    in DuckDB (0.7-1.0 GB at 1M customers) for as long as the chunks were being scored;
    unsorted, a 1M scoring run peaks lower and ends sooner (benchmarks/README.md, "Scoring 1M customers").
    Each customer's features are the same in any order. With `partitions` > 1 the customers
    are split by a hash of their id into that many queries, streamed one after another; the
    next one runs on DuckDB's threads while the caller works through the batches of the one
    before (see `_overlapped_batches`).
    """
    backend = next(iter(tables.values()))._find_backend()
    if backend.name != "duckdb":
        expr = build_features_expr(tables, as_of, spec, include_prospects=include_prospects)
        for batch in expr.to_pyarrow_batches(chunk_size=batch_rows):
            yield to_feature_frame(batch.to_pandas())
        return
    # ibis 12's to_pyarrow_batches calls a method DuckDB 2.0 removed; stream from DuckDB directly.
    # Each query is compiled when it is started (about a second of Python each), not all up front.
    # The population season shares read every customer's rows, whichever partition is queried.
    queries = [partial(_compiled_features, backend, part, as_of, spec, include_prospects, tables["transactions"])
               for part in customer_partitions(tables, partitions)]
    for table in _rebatched(_overlapped_batches(backend.con, queries, batch_rows), batch_rows):
        yield to_feature_frame(table.to_pandas())


def _rebatched(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last one smaller) from record batches of any size.

    An unordered DuckDB stream hands out batches as its threads finish them, many smaller
    than asked for; scoring pays a fixed cost per chunk, so the chunks are refilled.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            piece = batch.slice(0, rows - held)
            pending.append(piece)
            held += piece.num_rows
            batch = batch.slice(piece.num_rows)
            if held == rows:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


def _compiled_features(backend, tables: Mapping[str, ir.Table], as_of: datetime, spec: FeatureSpec,
                       include_prospects: bool, population: ir.Table) -> str:
    expr = build_features_expr(tables, as_of, spec, include_prospects=include_prospects, ordered=False,
                               population=population)
    return str(backend.compile(expr))


def customer_partitions(tables: Mapping[str, ir.Table], partitions: int) -> list[dict[str, ir.Table]]:
    """The tables split into `partitions` disjoint sets of customers (by a hash of customer_id)."""
    if partitions <= 1:
        return [dict(tables)]
    return [{name: t.filter((t.customer_id.hash() % partitions + partitions) % partitions == part)
             for name, t in tables.items()} for part in range(partitions)]


def _overlapped_batches(con, queries: list[Callable[[], str]], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of each query in turn, the next query executing while these are consumed.

    `queries` are functions returning the SQL, compiled when their turn comes.
    A feature query is one blocking aggregation: nothing streams before it has seen every row.
    Started on its own cursor in a helper thread as soon as the previous query's result is
    ready, the next aggregation runs on DuckDB's threads (outside the GIL) while the caller
    scores; DuckDB's memory cap is shared by both queries. If the caller stops early, the
    query running ahead is interrupted rather than waited for. One query runs on `con` itself,
    with no thread (a cursor would not see the connection's TEMP tables and views).
    """
    if len(queries) == 1:
        yield from con.sql(queries[0]()).to_arrow_reader(batch_rows)
        return

    stopped = threading.Event()

    def start(cursor, sql: Callable[[], str]):
        text = sql()
        if stopped.is_set():
            return iter(()), None
        reader = cursor.sql(text).to_arrow_reader(batch_rows)
        return reader, next(iter(reader), None)

    cursors = [con.cursor() for _ in queries]
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="custscore-features") as pool:
            ahead = 0
            ready = pool.submit(start, cursors[ahead], queries[ahead])
            try:
                for i in range(len(queries)):
                    reader, first = ready.result()
                    if i + 1 < len(queries):
                        ahead = i + 1
                        ready = pool.submit(start, cursors[ahead], queries[ahead])
                    if first is not None:
                        yield first
                        yield from reader
            finally:
                stopped.set()
                if not ready.done():
                    cursors[ahead].interrupt()
    finally:
        for cursor in cursors:
            cursor.close()
