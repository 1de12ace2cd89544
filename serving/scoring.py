"""Score customers chunk by chunk: predictions, exact TreeSHAP reasons, valuation.

Each chunk of the feature table is predicted, explained and written to part files in a
work folder before the next one is read, so memory stays flat however many customers there
are. Only a few numeric columns per customer stay in memory: segmentation needs the whole
run (tiers are cumulative shares), and it runs on those after the last chunk.

Speed (measured in benchmarks/scoring_bench.py): reasons stay Arrow tables from selection to
the part files (sentences dictionary-encoded, no pandas round trip), and while one chunk's
reasons are formatted and written on a second thread, the next chunk is predicted and
explained on the first (LightGBM, numpy and Arrow release the GIL), so both cores stay busy.
Exact TreeSHAP comes from per-tree tables (models/treeshap.py, ~18x less CPU than LightGBM's
pred_contrib for these small trees) and is checked against LightGBM's own raw predictions,
which are computed once per chunk and shared with the predictions.
Given the run_id, the part files are written in the store's contract schemas (zstd), so
publishing links them into the run instead of reading and rewriting millions of texts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.build import has_transaction_history
from models.baselines import revenue_windows, value_baseline
from models.explain import check_additivity, contributions
from models.level import LevelAnchor
from models.reason_reference import ReasonReference, actionable, oriented
from models.valuation import clv, net_value
from serving.reason_encoding import reason_columns_table
from serving.reasons import DIRECTIONS, SCORE_KINDS, reasons_table
from serving.score_table import EXPLANATION_SCHEMA, SCORE_TEXTS_SCHEMA, conform
from serving.settings import BtydBlendConfig, ScoringSettings

# Part files are published as they are (hard links), so they are written as the store keeps them.
PART_COMPRESSION = "zstd"
# Rows per row group of a reason-text part: a reader wanting one customer's texts (the read API)
# reads one row group, so it stays small; compression hardly changes at this size.
TEXT_ROW_GROUP_ROWS = 512
# Columns whose min/max the part files keep: the store checks run_id by them, readers filter on
# the others. Statistics of long texts (each customer's JSON, each sentence) would serve no one.
SCORE_PART_STATISTICS = ("customer_id",)
EXPLANATION_PART_STATISTICS = ("run_id", "customer_id", "score", "direction", "rank", "feature")

log = logging.getLogger(__name__)

NEW_CUSTOMER_TEXT_EN = "No transaction before the scoring date: a new customer, not scored yet."
NEW_CUSTOMER_TEXT_ZH = "评分日前尚无任何交易记录：新客户，暂不评分。"
# Columns kept in memory for the whole run (segmentation and the summary need them).
# The explained boosters' raw scores and base values (RAW_SCORE_COLUMNS) ride along so that
# what changed since the previous run can be split exactly into feature contributions
# (serving/changes.py); the store keeps only the contract's columns.
RAW_SCORE_COLUMNS = ("churn_raw", "value_raw", "churn_base", "value_base")
SEGMENT_INPUT_COLUMNS = [
    "customer_id", "p_churn", "expected_revenue", "expected_margin", "cost_to_serve", "net_value", "clv",
    "value_p10", "value_p90", *RAW_SCORE_COLUMNS, "current_value", "trailing_net_value", "tenure_days", "is_new",
]


@dataclass(frozen=True)
class ScoringModels:
    """The champion models used for one scoring run and their registry versions."""

    churn: Any
    value: Any
    churn_version: str
    value_version: str

    @property
    def level_anchor(self) -> LevelAnchor | None:
        """The value model's level anchor, decided at training (None for a model trained without one)."""
        return getattr(self.value, "level_anchor_", None)

    def blend_weights(self, configured: BtydBlendConfig) -> tuple[float, float]:
        """BG/NBD's shares in the churn and value scores: the configured ones, else what the design search chose."""
        churn = configured.churn_weight if configured.churn_weight is not None else getattr(self.churn, "blend_weight_", 0.0)
        value = configured.value_weight if configured.value_weight is not None else getattr(self.value, "blend_weight_", 0.0)
        return float(churn), float(value)

    def reason_references(self) -> dict[str, ReasonReference | None]:
        """Each model's reference population for the unusual-reasons rule (None for a model trained without one)."""
        return {"churn": getattr(self.churn, "reason_reference_", None), "value": getattr(self.value, "reason_reference_", None)}


@dataclass
class ScoringResult:
    """Numbers of a whole run (small) and the part files holding its texts (large)."""

    numbers: pd.DataFrame
    score_parts: list[Path]
    explanation_parts: list[Path]
    # Busy seconds per scoring stage, summed over chunks (stages on two threads overlap in wall time).
    timings: dict[str, float] = field(default_factory=dict)
    # CPU seconds of the thread running each stage (LightGBM's worker threads in predict/shap not included).
    cpu_timings: dict[str, float] = field(default_factory=dict)


class StageClock:
    """Thread-safe busy seconds (wall) and thread CPU seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the wall time and the calling thread's CPU time of the block to `name`."""
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.thread_time() - cpu


@dataclass
class _ExplainedChunk:
    """One chunk after prediction and SHAP: what formatting and writing the part files need."""

    index: int
    numbers: pd.DataFrame  # SEGMENT_INPUT_COLUMNS (model order), customers with history first, then prospects
    history_ids: np.ndarray
    prospect_ids: np.ndarray
    shap: list[tuple[str, np.ndarray, pd.DataFrame, list[str]]]  # (score, actionable contributions, X, names)
    references: dict[str, ReasonReference | None] = field(default_factory=dict)  # per score: the model's reference population


def has_history(features: pd.DataFrame) -> np.ndarray:
    """True where the customer has a transaction line before the as-of date: scored (prospects are not)."""
    return has_transaction_history(features)


def trailing_net_value(features: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Realised margin minus cost to serve of the trailing window as long as the horizon.

    The counterpart of the predicted net_value, from features as of the scoring date. If
    that window is not built, the nearest one (ties to the longer) is scaled by H / W, as the
    value baseline does; NaN when no window has both columns.
    """
    windows = {w: c for w, c in revenue_windows(features.columns).items()
               if f"margin_sum_{w}d" in features.columns and f"cost_to_serve_{w}d" in features.columns}
    if not windows:
        return np.full(len(features), np.nan)
    w = min(windows, key=lambda d: (abs(d - horizon_days), -d))
    margin = features[f"margin_sum_{w}d"].to_numpy(dtype=float)
    cost = features[f"cost_to_serve_{w}d"].to_numpy(dtype=float)
    return (margin - cost) * (horizon_days / w)


def raw_scores(features: pd.DataFrame, models: ScoringModels) -> dict[str, np.ndarray]:
    """Raw scores of the two explained boosters: predictions start from them, SHAP is checked against them."""
    return {"churn": models.churn.predict_raw(features[models.churn.feature_names_]),
            "value": models.value.predict_raw(features[models.value.feature_names_])}


def predict_chunk(features: pd.DataFrame, models: ScoringModels, settings: ScoringSettings,
                  raw: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Predicted churn probability, value, interval, net value and CLV of customers with history."""
    raw = raw if raw is not None else raw_scores(features, models)
    X_value = features[models.value.feature_names_]
    out = pd.DataFrame({"customer_id": features["customer_id"].to_numpy()})
    out["p_churn"] = models.churn.proba_from_raw(raw["churn"])
    value = models.value.predict(X_value, revenue_raw=raw["value"]).reset_index(drop=True)
    out = pd.concat([out, value], axis=1)
    out["net_value"] = net_value(out["expected_margin"].to_numpy(), out["cost_to_serve"].to_numpy())
    out["clv"] = clv(out["net_value"].to_numpy(), settings.value_horizon_days, settings.annual_discount_rate)
    out["current_value"] = value_baseline(features, settings.value_horizon_days)
    out["trailing_net_value"] = trailing_net_value(features, settings.value_horizon_days)
    out["tenure_days"] = features["days_since_first_order"].to_numpy(dtype=float)
    out["is_new"] = False
    return out


def explained_booster(kind: str, model: Any) -> tuple[Any, float]:
    """The booster whose contributions explain a score, and the sign that turns them to push the score itself."""
    if kind == "churn":
        return model.booster_, model.risk_sign
    return model.boosters_["revenue"], 1.0


def checked_contributions(
    features: pd.DataFrame, models: ScoringModels, settings: ScoringSettings,
    raw: dict[str, np.ndarray] | None = None,
) -> list[tuple[str, np.ndarray, pd.DataFrame, list[str]]]:
    """(score, actionable contributions, X, feature names) of both models, additivity checked.

    The check compares against LightGBM's own raw prediction (`raw`, or computed here), so an
    error in the TreeSHAP tables of models/treeshap.py cannot pass unnoticed.
    """
    raw = raw if raw is not None else raw_scores(features, models)
    out = []
    for kind, model in (("churn", models.churn), ("value", models.value)):
        booster, sign = explained_booster(kind, model)
        X = features[model.feature_names_]
        contrib = contributions(booster, X)
        check_additivity(contrib, raw[kind], atol=settings.additivity_atol * max(1.0, float(np.abs(contrib).max())))
        out.append((kind, oriented(actionable(contrib, X), sign), X, list(model.feature_names_)))
    return out


def _plain_strings(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns decoded to their plain values (as the part files store them)."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


def prospects_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Rows for customers without any transaction line: no model output, marked new, with a reason in words."""
    n = len(features)
    nothing = np.full(n, np.nan)
    # One constructor call: inserting columns one by one re-copies the (Arrow string) column index each time.
    columns = {"customer_id": features["customer_id"].to_numpy()}
    columns |= {column: nothing for column in SEGMENT_INPUT_COLUMNS[1:-4]}
    columns |= {"current_value": np.zeros(n), "trailing_net_value": nothing, "tenure_days": nothing, "is_new": np.ones(n, dtype=bool),
                "reasons": "{}", "reason_text_en": NEW_CUSTOMER_TEXT_EN, "reason_text_zh": NEW_CUSTOMER_TEXT_ZH}
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def with_raw_scores(numbers: pd.DataFrame, models: ScoringModels, raw: dict[str, np.ndarray],
                    shap: list[tuple[str, np.ndarray, pd.DataFrame, list[str]]]) -> pd.DataFrame:
    """The numbers with each explained booster's raw score and base value, oriented as its reasons are.

    Oriented raw = base + the sum of every feature's contribution (SHAP additivity), so the
    change of a customer's raw score between two runs is the sum of its contributions' changes.
    """
    for kind, contrib, _, _ in shap:
        _, sign = explained_booster(kind, models.churn if kind == "churn" else models.value)
        numbers[f"{kind}_raw"] = sign * np.asarray(raw[kind], dtype=float)
        numbers[f"{kind}_base"] = contrib[:, -1]
    return numbers


def predict_and_explain(
    features: pd.DataFrame, models: ScoringModels, settings: ScoringSettings, index: int, clock: StageClock
) -> _ExplainedChunk:
    """Numbers and checked contributions of one chunk (the CPU-heavy half, LightGBM threads)."""
    features = features.reset_index(drop=True)
    known = has_history(features)
    scored = features.loc[known].reset_index(drop=True) if not known.all() else features
    frames, shap = [], []
    if len(scored):
        with clock.stage("predict"):
            raw = raw_scores(scored, models)
            frames.append(predict_chunk(scored, models, settings, raw))
        with clock.stage("shap"):
            shap = checked_contributions(scored, models, settings, raw)
        frames[0] = with_raw_scores(frames[0], models, raw, shap)
    prospect_ids = features.loc[~known, "customer_id"].to_numpy()
    if len(prospect_ids):
        frames.append(prospects_frame(features.loc[~known])[SEGMENT_INPUT_COLUMNS])
    numbers = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SEGMENT_INPUT_COLUMNS)
    return _ExplainedChunk(index, numbers, scored["customer_id"].to_numpy(), prospect_ids, shap, models.reason_references())


def format_reasons(explained: _ExplainedChunk, settings: ScoringSettings, clock: StageClock,
                   run_id: str | None = None) -> tuple[pa.Table, pa.Table]:
    """Reason texts per customer (history rows, then prospects) and the long explanations table.

    Texts come in SCORE_TEXTS_SCHEMA; explanations in EXPLANATION_SCHEMA when `run_id` is
    given (so the store can take the part files as they are), else without run_id.
    """
    k = settings.scoring.reasons_per_direction
    n = len(explained.history_ids)
    with clock.stage("reasons"):
        tables = [reasons_table(c, X, names, score=kind, k=k, distinct_facts=settings.scoring.distinct_reasons,
                                reference=explained.references.get(kind), unusual_percentile=settings.scoring.unusual_reasons.percentile,
                                plain_reading=True)
                  for kind, c, X, names in explained.shap]
    with clock.stage("reason_columns"):
        history = reason_columns_table(tables, n, k=k) if n else None
        texts = _texts_table(explained.history_ids, history, explained.prospect_ids)
    with clock.stage("explanations_table"):
        explanations = _long_explanations(tables, explained.history_ids)
        if run_id is None:
            explanations = _plain_strings(explanations)
        else:
            explanations = _contract_part(_with_run_id(explanations, run_id), EXPLANATION_SCHEMA, where=f"explanations of chunk {explained.index}")
    return texts, explanations


def _texts_table(history_ids: np.ndarray, history: pa.Table | None, prospect_ids: np.ndarray) -> pa.Table:
    """customer_id and the three text columns: customers with history, then prospects (new, no reasons)."""
    ids = pa.array(np.concatenate([history_ids, prospect_ids]) if len(prospect_ids) else history_ids).cast(pa.string())
    columns = {}
    for name, prospect_text in (("reasons", "{}"), ("reason_text_en", NEW_CUSTOMER_TEXT_EN), ("reason_text_zh", NEW_CUSTOMER_TEXT_ZH)):
        pieces = [] if history is None else history.column(name).chunks
        if len(prospect_ids):
            pieces = [*pieces, pa.repeat(pa.scalar(prospect_text, pa.string()), len(prospect_ids))]
        columns[name] = pa.chunked_array(pieces, type=pa.string())
    return pa.Table.from_arrays([pa.chunked_array([ids]), *columns.values()], schema=SCORE_TEXTS_SCHEMA)


def _with_run_id(explanations: pa.Table, run_id: str) -> pa.Table:
    if explanations.num_columns == 0:
        return EXPLANATION_SCHEMA.empty_table()
    run_ids = pa.DictionaryArray.from_arrays(pa.array(np.zeros(explanations.num_rows, dtype=np.int32)), pa.array([run_id], pa.string()))
    return explanations.add_column(0, "run_id", run_ids)


def _long_explanations(tables: list[pa.Table], history_ids: np.ndarray) -> pa.Table:
    """Reason rows of both scores with customer_id in place of the chunk row position.

    The repeated texts (score, direction, feature, family) stay dictionary-encoded, one
    dictionary per column for the chunk: the part file stores each distinct text once instead
    of hashing and compressing ~1.2M strings per column per 100k customers.
    """
    if not tables:
        return pa.table({})
    table = pa.concat_tables([_with_dictionary_labels(t) for t in tables]).unify_dictionaries().combine_chunks()
    ids = pa.array(history_ids).take(table.column("row"))
    return table.drop_columns(["row"]).add_column(0, "customer_id", ids).select(
        [c for c in EXPLANATION_SCHEMA.names if c != "run_id"])


def _with_dictionary_labels(table: pa.Table) -> pa.Table:
    """score, direction, feature and family of one reasons table as dictionary columns."""
    direction = pc.equal(table.column("direction"), DIRECTIONS[1]).combine_chunks().to_numpy(zero_copy_only=False).astype(np.int32)
    score = pc.index_in(table.column("score"), value_set=pa.array(SCORE_KINDS)).combine_chunks().fill_null(-1)
    columns = {
        "score": _dictionary(score.to_numpy(zero_copy_only=False).astype(np.int32), SCORE_KINDS, table.column("score")),
        "direction": pa.DictionaryArray.from_arrays(pa.array(direction), pa.array(DIRECTIONS, pa.string())),
        "feature": table.column("feature").combine_chunks().dictionary_encode(),
    }
    for name in ("family",):
        column = table.column(name).combine_chunks()
        columns[name] = column if pa.types.is_dictionary(column.type) else column.dictionary_encode()
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _dictionary(codes: np.ndarray, labels: tuple[str, ...], plain: pa.ChunkedArray) -> pa.Array:
    """Codes into `labels` as a dictionary column; the plain column itself when a value is not a label."""
    if (codes < 0).any():
        return plain.combine_chunks().dictionary_encode()
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels, pa.string()))


def _contract_part(table: pa.Table, schema: pa.Schema, *, where: str) -> pa.Table:
    """The table in the contract's columns and types, dictionary-encoded strings kept as dictionaries.

    The part file is written without the Arrow schema (see _write_part), so readers and the
    store see the contract's plain string columns.
    """
    fields = []
    for wanted in schema:
        typ = table.schema.field(wanted.name).type if wanted.name in table.column_names else None
        keep = typ is not None and pa.types.is_dictionary(typ) and typ.value_type == wanted.type == pa.string()
        fields.append(wanted if not keep else pa.field(wanted.name, typ))
    if all(f.type == s.type for f, s in zip(fields, schema, strict=True)):
        return conform(table, schema, where=where)
    plain = conform(table.select([f.name for f in fields]), pa.schema([f for f in fields if not pa.types.is_dictionary(f.type)]), where=where)
    columns = [table.column(f.name) if pa.types.is_dictionary(f.type) else plain.column(f.name) for f in fields]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def score_all(
    chunks: Iterable[pd.DataFrame],
    models: ScoringModels,
    settings: ScoringSettings,
    workdir: Path,
    progress: Callable[[int], None] | None = None,
    *,
    run_id: str | None = None,
) -> ScoringResult:
    """Score every chunk, writing texts to part files and keeping only the numbers in memory.

    Predicting and explaining chunk i+1 overlaps formatting and writing chunk i on a second
    thread; at most two chunks are in flight, so memory stays flat. With the `run_id` the
    run will be published under, the part files are in the store's contract schemas
    (the Parquet sink links them instead of rewriting them).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    warn_without_reference(models, settings)
    clock = StageClock()
    numbers: list[pd.DataFrame] = []
    score_parts: list[Path] = []
    explanation_parts: list[Path] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="custscore-reasons") as writer:
        pending: Future | None = None
        for i, features in enumerate(chunks):
            explained = predict_and_explain(features, models, settings, i, clock)
            if pending is not None:
                _collect(pending.result(), numbers, score_parts, explanation_parts, progress)
            pending = writer.submit(_finish_chunk, explained, settings, workdir, clock, run_id)
        if pending is not None:
            _collect(pending.result(), numbers, score_parts, explanation_parts, progress)
    all_numbers = pd.concat(numbers, ignore_index=True) if numbers else pd.DataFrame(columns=SEGMENT_INPUT_COLUMNS)
    if all_numbers["customer_id"].duplicated().any():
        dup = all_numbers.loc[all_numbers["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise ValueError(f"customer {dup!r} was scored twice: the feature table must have one row per customer")
    return ScoringResult(all_numbers, score_parts, explanation_parts, dict(clock.seconds), dict(clock.cpu_seconds))


def score_chunk(features: pd.DataFrame, models: ScoringModels, settings: ScoringSettings, index: int, workdir: Path,
                clock: StageClock, *, run_id: str | None = None) -> tuple[pd.DataFrame, Path, Path]:
    """One chunk start to end on the calling thread: its numbers, its texts part and its explanations part.

    The same two halves `score_all` overlaps on two threads, for callers that get their
    parallelism elsewhere (each Spark task scores its own partition, serving/spark_scoring.py).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    return _finish_chunk(predict_and_explain(features, models, settings, index, clock), settings, workdir, clock, run_id)


def warn_without_reference(models: ScoringModels, settings: ScoringSettings) -> None:
    """Say once per run when unusual-reason ranking is configured but a champion has no reference population."""
    if settings.scoring.unusual_reasons.percentile is None:
        return
    for kind, reference in models.reason_references().items():
        if reference is None:
            log.warning("the %s champion was trained without a reference population: its reasons are ranked by "
                        "contribution alone, usual values included; retrain (custscore run --retrain) to apply "
                        "scoring.unusual_reasons", kind)


def _finish_chunk(explained: _ExplainedChunk, settings: ScoringSettings, workdir: Path,
                  clock: StageClock, run_id: str | None = None) -> tuple[pd.DataFrame, Path, Path]:
    """Format one chunk's reasons and write its part files (runs on the writer thread)."""
    texts, explanations = format_reasons(explained, settings, clock, run_id)
    with clock.stage("write_parts"):
        i = explained.index
        score_part = _write_part(texts, workdir / f"scores-{i:05d}.parquet", statistics=SCORE_PART_STATISTICS, dictionary=False,
                                 row_group_rows=TEXT_ROW_GROUP_ROWS)
        explanation_part = _write_part(explanations, workdir / f"explanations-{i:05d}.parquet", statistics=EXPLANATION_PART_STATISTICS)
    return explained.numbers[SEGMENT_INPUT_COLUMNS], score_part, explanation_part


def _collect(finished: tuple[pd.DataFrame, Path, Path], numbers: list, score_parts: list, explanation_parts: list,
             progress: Callable[[int], None] | None) -> None:
    chunk_numbers, score_part, explanation_part = finished
    numbers.append(chunk_numbers)
    score_parts.append(score_part)
    explanation_parts.append(explanation_part)
    if progress:
        progress(len(chunk_numbers))


def _write_part(frame: pd.DataFrame | pa.Table, path: Path, *, statistics: Sequence[str] | None = None,
                dictionary: bool = True, row_group_rows: int | None = None) -> Path:
    """Write one part file: statistics only for `statistics` columns (None: all), dictionary pages if `dictionary`.

    Dictionary-encoded columns are written as they are (no re-hashing of their strings) and
    without the Arrow schema, so readers get the plain strings the dictionaries stand for.
    """
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    encoded = any(pa.types.is_dictionary(t) for t in table.schema.types)
    wanted = list(statistics) if statistics is not None else True
    # A new file, never an overwrite: an older part of this name may be hard-linked into a published run.
    path.unlink(missing_ok=True)
    pq.write_table(table, path, compression=PART_COMPRESSION, store_schema=not encoded, row_group_size=row_group_rows,
                   write_statistics=[c for c in wanted if c in table.column_names] if wanted is not True else True,
                   use_dictionary=dictionary or [c for c in table.column_names if pa.types.is_dictionary(table.schema.field(c).type)])
    return path

