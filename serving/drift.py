"""Drift of a scoring run's inputs and scores against the champions' training reference.

Each champion keeps, from training, how its features and its score spread over the customers
it was validated on (`drift_profile_`, models/drift_profile.py). A scoring run counts its
customers with history into the same bins chunk by chunk (`DriftMeter.observing`: one array
of counts per column, so memory stays flat however many customers pass) and, after the last
chunk, compares the two distributions:

- PSI, the population stability index, sum over bins of (now - ref) x ln(now / ref), with the
  missing values as one more bin (and, for a categorical column, the categories the reference
  never saw as one more). The usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift worth
  a look, above 0.25 a shift that changes what the model sees (the defaults of `DriftSettings`).
- the missing share now and in the reference;
- categories new in this run and categories of the reference no scored customer has.

The scores measured are the models' own outputs (p_churn and expected revenue) before the level
anchor and any BG/NBD blend, as the reference was profiled: drift of what the trees see.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.build import has_transaction_history
from models.drift_profile import bin_index, category_counts

DRIFT_TABLE = "drift"
# A bin empty on one side would make PSI infinite; it counts as this share instead (a common floor).
EMPTY_BIN_SHARE = 1e-4
# New and vanished categories named in the table; the rest are counted.
CATEGORIES_NAMED = 10
LEVELS = ("ok", "warn", "severe")
# A feature with one value for every customer, in the reference and now (the share of all customers' revenue
# in last year's season): a property of the date, not of the population, so its PSI says nothing about
# drift. Stored with this level, never named in warnings nor acted on.
CONSTANT = "constant"
SCORE_SOURCES = {"p_churn": "churn", "expected_revenue": "value"}

DRIFT_SCHEMA = pa.schema([
    pa.field("name", pa.string()),  # a model feature, or a score (p_churn, expected_revenue)
    pa.field("kind", pa.string()),  # feature | score
    pa.field("psi", pa.float64()),
    pa.field("level", pa.string()),  # ok | warn | severe (DriftSettings thresholds) | constant (below)
    pa.field("missing_ref", pa.float64()),
    pa.field("missing_now", pa.float64()),
    pa.field("new_categories", pa.string()),  # comma-separated; empty for numeric columns and when none
    pa.field("vanished_categories", pa.string()),
    pa.field("customers", pa.int64()),  # customers with history measured in this run
])


class DriftSettings(BaseModel):
    """The `monitoring.drift` section: PSI thresholds and what severe drift does to a run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The rule of thumb of credit scoring, where PSI comes from: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant.
    psi_warn: Annotated[float, Field(gt=0)] = 0.1
    psi_severe: Annotated[float, Field(gt=0)] = 0.25
    # warn: publish and name the features; hold: publish nothing (readers keep the previous run);
    # retrain: the retrain-and-score flow retrains before publishing; a score-only run publishes and warns.
    on_severe: Literal["warn", "hold", "retrain"] = "warn"
    # Features and scores measured and stored but never named in warnings nor acted on: those that
    # move by design. The two tenure clocks grow by the time between the reference snapshot and the
    # run for every customer kept, so a base that ages shows PSI 0.5 there (the demo's does) on every
    # run: flagged by default, every scheduled run would alert about the calendar.
    ignore: tuple[str, ...] = ("days_since_first_order", "days_since_signup")

    @model_validator(mode="after")
    def _severe_above_warn(self) -> DriftSettings:
        if self.psi_severe < self.psi_warn:
            raise ValueError(f"psi_severe ({self.psi_severe}) must be at least psi_warn ({self.psi_warn})")
        return self


def psi(reference: np.ndarray | list[float], now: np.ndarray | list[float]) -> float:
    """Population stability index of two distributions over the same bins (shares that each add up to 1).

    A bin empty on both sides adds nothing; empty on one side, it counts as EMPTY_BIN_SHARE.
    """
    ref, cur = np.asarray(reference, dtype=float), np.asarray(now, dtype=float)
    used = (ref > 0) | (cur > 0)
    ref, cur = np.maximum(ref[used], EMPTY_BIN_SHARE), np.maximum(cur[used], EMPTY_BIN_SHARE)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def drift_level(value: float, settings: DriftSettings) -> str:
    """ok, warn (beyond psi_warn) or severe (beyond psi_severe)."""
    if value > settings.psi_severe:
        return "severe"
    return "warn" if value > settings.psi_warn else "ok"


def profiles_of(models: Any) -> dict[str, dict | None]:
    """Each champion's drift reference (None for a model trained before references were kept)."""
    return {"churn": getattr(models.churn, "drift_profile_", None), "value": getattr(models.value, "drift_profile_", None)}


def not_measured_reason(models: Any) -> str | None:
    """One line saying why drift is not (fully) measured against these champions; None when it is."""
    missing = [f"{kind} champion v{getattr(models, f'{kind}_version')}" for kind, p in profiles_of(models).items() if p is None]
    if not missing:
        return None
    whole = len(missing) == 2
    return (f"drift {'not measured' if whole else 'measured for one model only'}: the {' and the '.join(missing)} "
            f"{'were' if whole else 'was'} trained before models kept a drift reference; the next retrain "
            "(custscore run --retrain, or the monthly flow) adds one")


def merged_reference(models: Any) -> dict | None:
    """One reference for the run: every feature of either champion (the churn champion's bins first), and both scores."""
    profiles = profiles_of(models)
    features: dict[str, dict] = {}
    scores: dict[str, dict] = {}
    for kind in ("churn", "value"):
        profile = profiles[kind]
        if profile is None:
            continue
        for name, column in profile["features"].items():
            features.setdefault(name, column)
        scores.update(profile["scores"])
    return {"features": features, "scores": scores} if features or scores else None


@dataclass
class _Counts:
    """A column's counts in this run, in the bins of its reference."""

    reference: dict
    bins: np.ndarray | None = None  # numeric: counts per bin
    categories: Counter = field(default_factory=Counter)  # categorical: rows per category, as text
    missing: int = 0
    rows: int = 0

    def __post_init__(self) -> None:
        if self.reference["kind"] == "numeric":
            self.bins = np.zeros(len(self.reference["edges"]) + 1, dtype=np.int64)

    def add(self, column: pd.Series) -> None:
        self.rows += len(column)
        self.missing += int(column.isna().sum())
        if self.bins is not None:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            known = values[~np.isnan(values)]
            self.bins += np.bincount(bin_index(known, self.reference["edges"]), minlength=len(self.bins))
        else:
            self.categories.update(category_counts(column))

    def merge(self, other: _Counts) -> None:
        """Add the counts of the same column taken elsewhere (another machine's share of the run)."""
        self.rows += other.rows
        self.missing += other.missing
        if self.bins is not None:
            self.bins += other.bins
        else:
            self.categories.update(other.categories)

    def row(self, name: str, kind: str, settings: DriftSettings) -> dict:
        ref = self.reference
        n = max(self.rows, 1)
        new: list[str] = []
        vanished: list[str] = []
        level = None
        if self.bins is not None:
            value = psi([*ref["shares"], ref["missing"]], [*(self.bins / n), self.missing / n])
            if _one_value(ref["shares"]) and _one_value(self.bins):
                level = CONSTANT
        else:
            known = set(ref["categories"])
            new = [c for c, _ in sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0])) if c not in known]
            vanished = [c for c, share in zip(ref["categories"], ref["shares"], strict=True)
                        if share > 0 and self.categories.get(c, 0) == 0]
            now = [self.categories.get(c, 0) / n for c in ref["categories"]]
            value = psi([*ref["shares"], 0.0, ref["missing"]], [*now, sum(self.categories[c] for c in new) / n, self.missing / n])
        return {"name": name, "kind": kind, "psi": value, "level": level or drift_level(value, settings),
                "missing_ref": float(ref["missing"]), "missing_now": self.missing / n,
                "new_categories": named(new), "vanished_categories": named(vanished), "customers": self.rows}


def _one_value(shares) -> bool:
    """At most one bin holds the known values: everyone has the same value."""
    return int(np.count_nonzero(np.asarray(shares, dtype=float))) <= 1


def named(categories: list[str]) -> str:
    """The first CATEGORIES_NAMED categories, comma-separated, and how many more."""
    text = ", ".join(categories[:CATEGORIES_NAMED])
    return text + (f" and {len(categories) - CATEGORIES_NAMED} more" if len(categories) > CATEGORIES_NAMED else "")


class DriftMeter:
    """Counts a run's customers with history into the reference's bins, chunk by chunk; the drift table at the end."""

    def __init__(self, reference: dict) -> None:
        self.features = {name: _Counts(column) for name, column in reference["features"].items()}
        self.scores = {name: _Counts(column) for name, column in reference["scores"].items()}
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    @classmethod
    def for_models(cls, models: Any) -> DriftMeter | None:
        """A meter for the champions' reference; None when neither champion has one."""
        reference = merged_reference(models)
        return None if reference is None else cls(reference)

    def observing(self, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """The chunks unchanged, each counted as it passes."""
        for chunk in chunks:
            self.add_features(chunk)
            yield chunk

    def add_features(self, chunk: pd.DataFrame) -> None:
        """Count the feature values of the chunk's customers with history (prospects are not scored)."""
        with self._timed():
            scored = chunk.loc[has_transaction_history(chunk)]
            for name, counts in self.features.items():
                counts.add(scored[name])

    def add_scores(self, numbers: pd.DataFrame) -> None:
        """Count the scores of the customers with history among `numbers` (a run's or a chunk's)."""
        with self._timed():
            scored = numbers.loc[~numbers["is_new"].astype(bool)]
            for name, counts in self.scores.items():
                counts.add(scored[name])

    def merge(self, other: DriftMeter) -> None:
        """Add what a meter of the same reference counted over other chunks (Spark tasks count their own partitions)."""
        if set(other.features) != set(self.features) or set(other.scores) != set(self.scores):
            raise ValueError("drift meters of different references cannot be merged: count every chunk against the same champions")
        for name, counts in self.features.items():
            counts.merge(other.features[name])
        for name, counts in self.scores.items():
            counts.merge(other.scores[name])
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds

    def table(self, settings: DriftSettings) -> pa.Table:
        """One row per feature, then per score (DRIFT_SCHEMA)."""
        rows = [c.row(name, "feature", settings) for name, c in self.features.items()]
        rows += [c.row(name, "score", settings) for name, c in self.scores.items()]
        return pa.Table.from_pylist(rows, schema=DRIFT_SCHEMA)

    def _timed(self):
        return _Stopwatch(self)


class _Stopwatch:
    """Adds a block's wall and thread CPU seconds to a meter (what drift adds to a run)."""

    def __init__(self, meter: DriftMeter) -> None:
        self.meter = meter

    def __enter__(self) -> None:
        self.started, self.cpu = time.perf_counter(), time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.meter.seconds += time.perf_counter() - self.started
        self.meter.cpu_seconds += time.thread_time() - self.cpu


def beyond(table: pa.Table | pd.DataFrame, level: str, settings: DriftSettings) -> pd.DataFrame:
    """Rows at `level` (warn includes severe) that are not ignored, largest PSI first."""
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    wanted = LEVELS[LEVELS.index(level):]
    return frame.loc[frame["level"].isin(wanted) & ~frame["name"].isin(settings.ignore)].sort_values("psi", ascending=False)


def severe_names(table: pa.Table | pd.DataFrame, settings: DriftSettings) -> list[str]:
    """Features and scores beyond psi_severe (ignored ones left out), largest PSI first."""
    return beyond(table, "severe", settings)["name"].tolist()


def drift_warnings(table: pa.Table | pd.DataFrame | None, settings: DriftSettings) -> list[str]:
    """The run summary's drift lines: features and scores beyond the thresholds, new categories (none: nothing to say)."""
    if table is None:
        return []
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    lines = []
    severe, moderate = beyond(frame, "severe", settings), beyond(frame, "warn", settings).query("level == 'warn'")
    if len(severe):
        lines.append(f"drift: {len(severe)} beyond PSI {settings.psi_severe:g} (severe, on_severe: {settings.on_severe}): "
                     f"{_listed(severe)}")
    if len(moderate):
        lines.append(f"drift: {len(moderate)} beyond PSI {settings.psi_warn:g}: {_listed(moderate)}")
    for row in frame.loc[(frame["new_categories"] != "") & ~frame["name"].isin(settings.ignore)].itertuples():
        lines.append(f"drift: {row.name} has categories the champions' training data did not have: {row.new_categories}")
    return lines


def _listed(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r.name} ({r.psi:.2f})" if math.isfinite(r.psi) else str(r.name) for r in rows.itertuples())
