"""Training sets: features and labels stacked over several snapshot dates before the scoring date.

Snapshots T1 < ... < Tn are spaced `step_days` apart and the latest one is scoring_date -
horizon, so every label window [Ti, Ti + horizon) ends on or before the scoring date and is
observed. The latest `n_validation_snapshots` are marked `is_validation` for out-of-time
validation (never a random split).

Churn (90 days by default) and value (365 days) have different horizons. With
`targets="all"` (the default) the snapshots use the longer horizon so every row carries every
label: both models train on the same customers and snapshots and are validated on the same
out-of-time snapshot, which keeps their scores comparable and the training set single. The
price is that churn trains on older behaviour than it could; `targets="churn"` builds a set
with the churn horizon only (snapshots up to scoring_date - 90 days, only label_churn), and
`targets="value"` one with the value labels only, for when that freshness matters.

On DuckDB the customer sample and the order moments of its transactions are computed once, as
temp tables dropped at the end (on Spark, cached tables released at the end), and every
snapshot's feature and label queries read them. The
population season shares (features/families/season_share.py) read every customer, also when training on a
sample: from the order moments when there is no sample, else from the daily revenue of the
whole data, made once (exact because snapshots are midnights).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import ibis.expr.types as ir
import pandas as pd

from features.build import FeatureSpec, build_features, to_feature_frame
from features.families.season_share import daily_revenue, season_share_columns
from features.labels import build_labels
from features.tables import to_naive_utc
from features.transactions import order_moments

logger = logging.getLogger(__name__)

CHURN_LABELS = ["label_churn", "label_churn_order_days"]
VALUE_LABELS = ["label_revenue", "label_margin", "label_cost_to_serve", "label_value_order_days"]


class InsufficientHistoryError(ValueError):
    """The data does not reach far enough back for the horizon, the snapshots and the minimum history."""


def history_needed_days(horizon_days: int, n_snapshots: int, step_days: int, min_history_days: int) -> int:
    """Days between data start and scoring date needed for n snapshots with their label windows."""
    return min_history_days + (n_snapshots - 1) * step_days + horizon_days


# A training set needs one snapshot to learn from and one to validate on, out of time.
MIN_SNAPSHOTS = 2
# When the configured minimum history leaves fewer than the validation snapshots + 1, the first
# snapshot may come this soon after the data starts: customers then have short histories, but a
# model trained on them beats refusing to train (CDNOW holds one year, 182-day horizons need half of it).
MIN_HISTORY_FLOOR_DAYS = 60


@dataclass(frozen=True)
class SnapshotPlan:
    """The snapshot dates a training set uses, and how they differ from the configured ones."""

    dates: tuple[datetime, ...]
    n_validation: int
    requested: int
    requested_validation: int
    min_history_days: int
    requested_min_history_days: int

    @property
    def shortened(self) -> bool:
        """Fewer snapshots, fewer validation snapshots or a shorter minimum history than configured."""
        return (len(self.dates) < self.requested or self.n_validation < self.requested_validation
                or self.min_history_days < self.requested_min_history_days)

    def describe(self) -> str:
        """One line for the run summary and MLflow."""
        text = (f"{len(self.dates)} snapshot(s) {self.dates[0]:%Y-%m-%d}..{self.dates[-1]:%Y-%m-%d}, "
                f"{self.n_validation} held out for validation")
        if self.shortened:
            text += (f" (configured {self.requested} with {self.requested_validation} held out; the history "
                     f"holds fewer, first snapshot {self.min_history_days} days after the data starts)")
        return text


def _insufficient(scoring_date: datetime, data_start: datetime, required: int, horizon_days: int, step_days: int,
                 min_history_days: int) -> InsufficientHistoryError:
    """The error that says how much history `required` snapshots need and how much there is."""
    needed = history_needed_days(horizon_days, required, step_days, min_history_days)
    available = (scoring_date - data_start).total_seconds() / 86_400
    return InsufficientHistoryError(
        f"not enough history for {required} snapshot(s): need {needed} days of history before the scoring "
        f"date {scoring_date:%Y-%m-%d} ({min_history_days} days of minimum history + {required - 1} x "
        f"{step_days} days between snapshots + a {horizon_days}-day label horizon), but the data has "
        f"{available:.0f} days (from {data_start:%Y-%m-%d} to {scoring_date:%Y-%m-%d}); provide older "
        "history, or lower the horizon, step_days or the number of snapshots"
    )


def _candidate_dates(scoring_date: datetime, horizon_days: int, n_snapshots: int, step_days: int) -> list[datetime]:
    # Midnight snapshots keep windows on whole days; flooring keeps every label window observed.
    latest = (scoring_date - timedelta(days=horizon_days)).replace(hour=0, minute=0, second=0, microsecond=0)
    return [latest - timedelta(days=step_days * k) for k in range(n_snapshots - 1, -1, -1)]


def plan_snapshots(
    scoring_date: datetime,
    *,
    data_start: datetime,
    horizon_days: int,
    n_snapshots: int,
    step_days: int,
    min_history_days: int,
    n_validation_snapshots: int = 1,
) -> SnapshotPlan:
    """The snapshots that fit the history: as many of the configured ones as fit, down to MIN_SNAPSHOTS.

    Snapshots Tn + horizon <= scoring_date, spaced step_days apart, T1 >= data_start +
    min_history_days. When fewer than n_validation_snapshots + 1 fit, the minimum history
    shrinks to MIN_HISTORY_FLOOR_DAYS (never below, and never above the configured one) and the
    validation snapshots to what leaves one snapshot to train on. Below MIN_SNAPSHOTS,
    InsufficientHistoryError says how much history is needed and how much there is.
    """
    scoring_date, data_start = to_naive_utc(scoring_date), to_naive_utc(data_start)
    if n_snapshots < 1 or step_days < 1 or horizon_days < 1 or min_history_days < 0 or n_validation_snapshots < 1:
        raise ValueError(
            f"plan_snapshots: n_snapshots ({n_snapshots}), step_days ({step_days}), horizon_days "
            f"({horizon_days}) and n_validation_snapshots ({n_validation_snapshots}) must be >= 1 and "
            f"min_history_days ({min_history_days}) >= 0"
        )
    candidates = _candidate_dates(scoring_date, horizon_days, n_snapshots, step_days)
    history = min_history_days
    dates = [d for d in candidates if d >= data_start + timedelta(days=history)]
    if len(dates) < n_validation_snapshots + 1 and history > MIN_HISTORY_FLOOR_DAYS:
        history = MIN_HISTORY_FLOOR_DAYS
        dates = [d for d in candidates if d >= data_start + timedelta(days=history)]
    required = min(MIN_SNAPSHOTS, n_snapshots)
    if len(dates) < required:
        raise _insufficient(scoring_date, data_start, required, horizon_days, step_days, history)
    n_validation = max(1, min(n_validation_snapshots, len(dates) - 1))
    plan = SnapshotPlan(tuple(dates), n_validation, n_snapshots, n_validation_snapshots, history, min_history_days)
    if plan.shortened:
        logger.warning("training snapshots: %s", plan.describe())
    return plan


def search_snapshot_dates(plan: SnapshotPlan, *, data_start: datetime, horizon_days: int, n_snapshots: int,
                          step_days: int) -> list[datetime]:
    """Snapshots for the design search whose label windows end by the first validation snapshot.

    At scoring, the model's latest snapshot lies one horizon before the scoring date, so the
    customers scored are a horizon older than any it learnt from. Candidates of the design
    search trained on these snapshots face the validation snapshots across the same gap, so the
    search sees what ageing does to each design. The earliest may come MIN_HISTORY_FLOOR_DAYS
    after the data starts; empty when the history is too short for even one.
    """
    first_validation = plan.dates[-plan.n_validation]
    earliest = to_naive_utc(data_start) + timedelta(days=MIN_HISTORY_FLOOR_DAYS)
    return [d for d in _candidate_dates(first_validation, horizon_days, n_snapshots, step_days) if d >= earliest]


def data_start_of(tables: Mapping[str, ir.Table]) -> datetime:
    """Timestamp of the first transaction."""
    first = tables["transactions"].ts.min().to_pyarrow().as_py()
    if first is None:
        raise ValueError("build_training_set: the transactions table is empty; nothing to train on")
    return to_naive_utc(first)


def label_columns_for(targets: Literal["all", "churn", "value"]) -> list[str]:
    """Label columns a training set for `targets` carries."""
    return {"all": CHURN_LABELS + VALUE_LABELS, "churn": CHURN_LABELS, "value": VALUE_LABELS}[targets]


def snapshot_rows(
    tables: Mapping[str, ir.Table],
    as_of: datetime,
    *,
    spec: FeatureSpec,
    churn_horizon_days: int,
    value_horizon_days: int,
    labels: list[str],
    data_end: datetime,
    moments: ir.Table | None = None,
    population: ir.Table | None = None,
) -> pd.DataFrame:
    """Features and labels of one snapshot: customers with a transaction line before as_of (the scored population).

    `population`: rows (ts, amount) of every customer for the population season shares, when
    `tables` are a sample (see `build_features_expr`).
    """
    features = build_features(tables, as_of, spec, moments=moments, population=population)
    label_frame = build_labels(
        tables, as_of, churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
        data_end=data_end, moments=moments,
    )
    missing = [c for c in labels if c not in label_frame.columns]
    if missing:
        raise ValueError(f"snapshot {as_of:%Y-%m-%d}: labels {missing} are not observed by {data_end:%Y-%m-%d}")
    rows = features.merge(label_frame[["customer_id", *labels]], on="customer_id", how="inner", validate="one_to_one")
    rows.insert(1, "as_of", pd.Timestamp(as_of))
    return rows


HASH_BUCKETS = 1_000_000


def sample_customers(tables: Mapping[str, ir.Table], max_customers: int) -> dict[str, ir.Table]:
    """Keep a deterministic hash sample of about `max_customers` customers in every table."""
    ids = tables["transactions"].select("customer_id").distinct()
    n_customers = int(ids.count().to_pyarrow().as_py())
    if n_customers <= max_customers:
        return dict(tables)
    cutoff = int(HASH_BUCKETS * max_customers / n_customers)
    keep = ids.filter((ids.customer_id.hash() % HASH_BUCKETS).abs() < cutoff)
    logger.info("training on a hash sample of about %d of %d customers", max_customers, n_customers)
    return {name: table.semi_join(keep, "customer_id") for name, table in tables.items()}


@contextmanager
def materialised(
    tables: Mapping[str, ir.Table], *, copy_tables: bool, population: ir.Table | None = None
) -> Iterator[tuple[dict[str, ir.Table], ir.Table, ir.Table | None]]:
    """The order moments of the transactions (and the tables, when `copy_tables`) as DuckDB temp tables, made once.

    Every snapshot of a training set reads the same (sampled) tables; computing the sample and
    the moments once instead of inside every snapshot's query is most of the training-set cost.
    Copy the tables only when they are a sample (an expression, not stored data). `population`
    (transactions of every customer) is reduced to its daily revenue, the third table yielded
    (None without it). The temp tables get unique names and are dropped on exit. On Spark the
    same tables are cached instead (`_spark_cached`); on other backends nothing is materialised
    and the expressions are returned as they are.
    """
    backend = tables["transactions"]._find_backend()
    daily = None if population is None else daily_revenue(population)
    if backend.name == "pyspark":
        with _spark_cached(tables, copy_tables=copy_tables, daily=daily) as cached:
            yield cached
        return
    if backend.name != "duckdb":
        yield dict(tables), order_moments(tables["transactions"]), daily
        return
    run = uuid.uuid4().hex[:12]
    created: list[str] = []

    def create(name: str, expr: ir.Table) -> ir.Table:
        table_name = f"_custscore_training_{run}_{name}"
        backend.con.execute(f'CREATE TEMP TABLE "{table_name}" AS {backend.compile(expr)}')
        created.append(table_name)
        return backend.table(table_name)

    try:
        kept = {name: create(name, table) for name, table in tables.items()} if copy_tables else dict(tables)
        moments = create("moments", order_moments(kept["transactions"]))
        yield kept, moments, None if daily is None else create("daily_revenue", daily)
    finally:
        for table_name in created:
            backend.con.execute(f'DROP TABLE IF EXISTS temp.main."{table_name}"')


@contextmanager
def _spark_cached(
    tables: Mapping[str, ir.Table], *, copy_tables: bool, daily: ir.Table | None
) -> Iterator[tuple[dict[str, ir.Table], ir.Table, ir.Table | None]]:
    """On Spark, the same tables as `materialised` makes on DuckDB, cached in the executors' memory (spilling to disk).

    Without the cache every snapshot's query would read the input files, sample and group the
    order moments again. Released on exit.
    """
    cached: list[ir.Table] = []

    def cache(expr: ir.Table) -> ir.Table:
        table = expr.cache()
        cached.append(table)
        return table

    try:
        kept = {name: cache(table) for name, table in tables.items()} if copy_tables else dict(tables)
        moments = cache(order_moments(kept["transactions"]))
        yield kept, moments, None if daily is None else cache(daily)
    finally:
        for table in cached:
            table.release()


def _snapshot_frames(
    tables: Mapping[str, ir.Table],
    moments: ir.Table,
    *,
    scoring_date: datetime,
    spec: FeatureSpec,
    churn_horizon_days: int,
    value_horizon_days: int,
    n_snapshots: int,
    step_days: int,
    n_validation_snapshots: int,
    min_history_days: int,
    targets: Literal["all", "churn", "value"],
    population: ir.Table | None = None,
) -> tuple[SnapshotPlan, list[pd.DataFrame]]:
    """The snapshots that fit before `scoring_date` (the end of the data), and their features and labels."""
    horizon = {"all": max(churn_horizon_days, value_horizon_days), "churn": churn_horizon_days, "value": value_horizon_days}[targets]
    plan = plan_snapshots(
        scoring_date,
        data_start=data_start_of(tables),
        horizon_days=horizon,
        n_snapshots=n_snapshots,
        step_days=step_days,
        min_history_days=min_history_days,
        n_validation_snapshots=n_validation_snapshots,
    )
    labels = label_columns_for(targets)
    return plan, [
        snapshot_rows(
            tables, as_of, spec=spec, churn_horizon_days=churn_horizon_days,
            value_horizon_days=value_horizon_days, labels=labels, data_end=scoring_date, moments=moments,
            population=population,
        )
        for as_of in plan.dates
    ]


def _search_frame(tables: Mapping[str, ir.Table], moments: ir.Table, plan: SnapshotPlan, *, scoring_date: datetime,
                  spec: FeatureSpec, churn_horizon_days: int, value_horizon_days: int, n_snapshots: int,
                  step_days: int, targets: Literal["churn", "value"],
                  population: ir.Table | None = None) -> pd.DataFrame | None:
    """The design search's training rows (snapshots a horizon before validation), or None when none fit."""
    horizon = churn_horizon_days if targets == "churn" else value_horizon_days
    dates = search_snapshot_dates(plan, data_start=data_start_of(tables), horizon_days=horizon,
                                  n_snapshots=max(n_snapshots - plan.n_validation, 1), step_days=step_days)
    if not dates:
        logger.info("design search: no snapshot fits a %d-day horizon before %s; it validates next to training",
                    horizon, plan.dates[-plan.n_validation])
        return None
    frames = [
        snapshot_rows(tables, as_of, spec=spec, churn_horizon_days=churn_horizon_days,
                      value_horizon_days=value_horizon_days, labels=label_columns_for(targets),
                      data_end=scoring_date, moments=moments, population=population)
        for as_of in dates
    ]
    return _stacked(frames, dates, 0, targets)


def build_training_set(
    tables: Mapping[str, ir.Table],
    scoring_date: datetime,
    *,
    spec: FeatureSpec,
    churn_horizon_days: int = 90,
    value_horizon_days: int = 365,
    n_snapshots: int = 4,
    step_days: int = 90,
    n_validation_snapshots: int = 1,
    min_history_days: int = 180,
    targets: Literal["all", "churn", "value"] = "all",
    data_end: datetime | None = None,
    max_customers: int | None = None,
) -> pd.DataFrame:
    """Stack features + labels over snapshots before `scoring_date`; the latest ones are `is_validation`.

    `data_end` (default: the scoring date) is the end of the observed data; every label window
    must end on or before it. `max_customers` trains on a fixed hash sample of about that many
    customers (the same customers in every snapshot and every run), so training cost stops
    growing with the customer base while scoring still covers everyone.
    """
    return build_training_sets(
        tables, scoring_date, spec=spec, churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
        n_snapshots=n_snapshots, step_days=step_days, n_validation_snapshots=n_validation_snapshots,
        min_history_days=min_history_days, targets=(targets,), data_end=data_end, max_customers=max_customers,
    )[targets]


def build_training_sets(
    tables: Mapping[str, ir.Table],
    scoring_date: datetime,
    *,
    spec: FeatureSpec,
    churn_horizon_days: int = 90,
    value_horizon_days: int = 365,
    n_snapshots: int = 4,
    step_days: int = 90,
    n_validation_snapshots: int = 1,
    min_history_days: int = 180,
    targets: Sequence[Literal["all", "churn", "value"]] = ("churn", "value"),
    data_end: datetime | None = None,
    max_customers: int | None = None,
    search_sets: bool = False,
) -> dict[str, pd.DataFrame]:
    """`build_training_set` for each of `targets`, reading one customer sample and one set of order moments.

    Sampling the customers and computing their order moments reads every table in full (about
    7 s at 1M customers); doing it once for both model kinds halves that cost. With
    `search_sets`, each of "churn" and "value" also gets `<kind>_search`: the design search's
    training rows, snapshots a horizon before the validation ones (`search_snapshot_dates`),
    where the history holds any.
    """
    scoring_date = to_naive_utc(scoring_date)
    data_end = scoring_date if data_end is None else min(to_naive_utc(data_end), scoring_date)
    if n_validation_snapshots < 1:
        raise ValueError(f"build_training_set: n_validation_snapshots must be >= 1, got {n_validation_snapshots}")
    sampled = sample_customers(tables, max_customers) if max_customers is not None else dict(tables)
    is_sample = sampled["transactions"] is not tables["transactions"]
    # Without a sample the moments are every customer's: the season shares read them.
    everyone = tables["transactions"] if is_sample and season_share_columns(spec.season_horizons_days) else None
    sets: dict[str, pd.DataFrame] = {}
    with materialised(sampled, copy_tables=is_sample, population=everyone) as (kept, moments, population):
        for kind in targets:
            plan, frames = _snapshot_frames(
                kept, moments, scoring_date=data_end, spec=spec, churn_horizon_days=churn_horizon_days,
                value_horizon_days=value_horizon_days, n_snapshots=n_snapshots, step_days=step_days,
                n_validation_snapshots=n_validation_snapshots, min_history_days=min_history_days, targets=kind,
                population=population,
            )
            sets[kind] = _stacked(frames, list(plan.dates), plan.n_validation, kind)
            del frames  # one kind's snapshot frames at a time
            if search_sets and kind != "all":
                search = _search_frame(kept, moments, plan, scoring_date=data_end, spec=spec,
                                       churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
                                       n_snapshots=n_snapshots, step_days=step_days, targets=kind,
                                       population=population)
                if search is not None:
                    sets[f"{kind}_search"] = search
    return sets


def _stacked(frames: list[pd.DataFrame], dates: list[datetime], n_validation_snapshots: int,
             targets: Literal["all", "churn", "value"]) -> pd.DataFrame:
    """The snapshots as one frame, the latest `n_validation_snapshots` marked `is_validation`."""
    training = pd.concat(frames, ignore_index=True).copy()  # one block, not hundreds of fragments
    training["is_validation"] = (training["as_of"] >= pd.Timestamp(dates[-n_validation_snapshots])
                                 if n_validation_snapshots else False)
    # Categories differ between snapshots; concat makes them text again, so cast back.
    training = to_feature_frame(training)
    logger.info(
        "training set: %d rows over %d snapshots (%d validation), labels %s", len(training), len(dates),
        n_validation_snapshots, label_columns_for(targets),
    )
    return training
