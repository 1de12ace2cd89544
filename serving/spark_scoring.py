"""Score on Spark: each partition of a feature DataFrame is scored and explained where it lies.

`score_on_spark(features, models, settings, staging, workdir, run_id=..., as_of=...)` is
`serving.score_run.score_run` with Spark's tasks in place of the one machine's chunk loop:

- distributed (one Spark task per partition, `mapInPandas`): the champions, the scoring
  settings and the population's BG/NBD fit are broadcast once; each task cuts its partition into
  chunks of `scoring.chunk_size` customers and scores each with `serving.scoring.score_chunk`,
  the very function the one-machine path runs (prediction, exact TreeSHAP, reasons, texts), so
  the part files are byte for byte what the store keeps. It also counts its customers into the
  drift reference's bins and keeps the scorecard's few feature columns. Parts go to a run-scoped
  staging folder on any file system pyarrow writes (a local path or file:/, hdfs:/, s3a:/ or s3:/,
  gs:/); each task returns one small row per chunk naming its parts.
- on the driver, over the numbers only (about twenty numbers per customer, ~170 bytes): what
  needs the whole population at once, exactly as on one machine (`serving.score_run.finished_run`):
  the BG/NBD fit (before the job, on the population's four BTYD inputs), the level anchor and the
  blend, value tiers by Pareto share, strategy segments, the drift table, the account grades.
  Segments are population-wide cut-offs, so a task cannot decide them from its partition.

Nothing is visible to readers until the caller publishes the returned `ScoredRun` through its
sinks (the store first, then PostgreSQL, whose COPY reads the same parts): the store hard-links
the parts into a new run folder and switches its manifest only after every part is there. A job
killed part-way (an executor lost for good, the job cancelled, the driver gone) leaves only
files under staging; the previous run stays current, and the next run of the same id clears
its staging folder first. Only the parts named by the rows of the job's successful tasks are
used, so a retried or speculative task's files never mix into a run.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from features.build import to_feature_frame
from features.transactions import BTYD_INPUT_COLUMNS
from serving.drift import DriftMeter, merged_reference
from serving.payment_risk import PaymentRiskScoring
from serving.reference_adjustments import BtydReference
from serving.score_run import BtydInputsNeededError, btyd_horizons_of, finished_run, needs_btyd_reference
from serving.scorecard import scorecard_features
from serving.scored_run import ScoredRun
from serving.scoring import (
    SEGMENT_INPUT_COLUMNS,
    ScoringModels,
    ScoringResult,
    StageClock,
    score_chunk,
    warn_without_reference,
)
from serving.settings import ScoringSettings

if TYPE_CHECKING:
    import datetime as dt

    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

# One row per scored chunk: where its parts are and what the driver merges.
CHUNK_SCHEMA = ("partition int, chunk int, attempt int, rows long, numbers string, texts string, explanations string, "
                "cards string, drift binary, seconds string, cpu_seconds string")
PART_KINDS = ("numbers", "texts", "explanations", "cards")
# Schemes pyarrow names differently from Hadoop: s3a:/ and s3n:/ are Hadoop's connectors to the same buckets as s3:/.
HADOOP_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}
LOCAL_SCHEMES = ("", "file")
TASK_FOLDER = "_tasks"
JVM_PACKAGES = ("org.", "java.", "javax.", "scala.", "py4j.")
PYTHON_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit): ")


class SparkScoringError(RuntimeError):
    """The Spark job scoring a run failed or was cancelled: nothing of the run was published."""


@dataclass(frozen=True)
class TaskPlan:
    """What every task needs, broadcast once: the champions, the settings, where to write, the run's references."""

    models: ScoringModels
    settings: ScoringSettings
    run_id: str
    staging: str  # the run's staging folder (URI or local path)
    btyd_horizons: tuple[int, ...]
    btyd: BtydReference | None  # the population's BG/NBD fit without its inputs (columns_only)
    drift_reference: dict | None


def spark_job_group(run_id: str) -> str:
    """The Spark job group of a run's scoring job: `SparkContext.cancelJobGroup` on it stops the run, publishing nothing."""
    return f"custscore-scoring-{run_id}"


def run_staging(staging: str | Path, run_id: str) -> str:
    """The run's own folder under the staging root (a rerun clears it; other runs' folders are left alone)."""
    return f"{str(staging).rstrip('/')}/{run_id}"


def staging_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The file system and path of a staging location: a local path or file:/, hdfs:/, s3a:/ (as s3:/), gs:/..."""
    scheme = urlparse(uri).scheme
    if scheme in LOCAL_SCHEMES:
        return pafs.LocalFileSystem(), local_path(uri)
    if scheme in HADOOP_SCHEME_ALIASES:
        uri = HADOOP_SCHEME_ALIASES[scheme] + uri[len(scheme):]
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ValueError(f"staging path {uri}: pyarrow cannot write there ({str(exc).splitlines()[0]}); give a local path or a "
                         "file:/, hdfs:/, s3a:/ (s3:/), gs:/ or abfs:/ URI reachable from the driver and every executor") from None


def local_path(uri: str) -> str:
    """The local path of a plain path or a file:/ URI."""
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" else uri


def clear_staging(uri: str) -> None:
    """Remove what an earlier (perhaps killed) attempt of the run left under its staging folder, and create it."""
    fs, path = staging_filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
    fs.create_dir(path, recursive=True)


def remove_staging(uri: str) -> None:
    """Delete the run's staging folder once its run is published (the store keeps hard links or copies of its parts)."""
    fs, path = staging_filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


# ---------------------------------------------------------------------- the driver


def score_on_spark(
    features: DataFrame,
    models: ScoringModels,
    settings: ScoringSettings,
    staging: str | Path,
    workdir: Path,
    *,
    run_id: str,
    as_of: dt.date,
    btyd_inputs: Callable[[], pd.DataFrame] | None = None,
    progress: Callable[[int], None] | None = None,
    payment: PaymentRiskScoring | None = None,
) -> ScoredRun:
    """Score, explain, adjust and segment every customer of a Spark feature DataFrame (one row per customer).

    Same contract as `score_run`: `btyd_inputs` gives the population's BTYD inputs when the
    champions read BTYD columns. The parts are written under `run_staging(staging, run_id)`;
    parts on a remote file system are copied to `workdir` for the store, local ones are used in
    place. Publish the returned run through the sinks, then `remove_staging`. `payment`: the
    payment-risk part, its rows already collected by the caller (its tables join the run).
    """
    warn_without_reference(models, settings)
    horizons = btyd_horizons_of(models)
    reference = population_reference(features, models, settings, horizons, btyd_inputs)
    where = run_staging(staging, run_id)
    clear_staging(where)
    plan = TaskPlan(models, settings, run_id, where, tuple(horizons),
                    None if reference is None else reference.columns_only(), merged_reference(models))
    rows = scored_chunks(with_decimals_as_doubles(features), plan)
    result, cards, meter = collected(rows, plan, workdir)
    if progress:
        progress(len(result.numbers))
    log.info("scored %d customers on Spark in %d chunks", len(result.numbers), len(rows))
    return finished_run(result, models, settings, run_id=run_id, as_of=as_of, meter=meter, reference=reference,
                        scorecard_features=cards, payment=payment)


def population_reference(features: DataFrame, models: ScoringModels, settings: ScoringSettings, horizons: list[int],
                         btyd_inputs: Callable[[], pd.DataFrame] | None) -> BtydReference | None:
    """BG/NBD fitted on the population, on the driver, as `score_run` fits it; None when the run needs none.

    The champions' BTYD columns need the fit before the first chunk: from `btyd_inputs`. For the
    anchor or the blend alone, `score_run` takes the inputs from the feature chunks; here the same
    columns come from the feature DataFrame (four numbers per customer with an order).
    """
    if horizons:
        if btyd_inputs is None:
            raise BtydInputsNeededError(f"the champions read BTYD columns of horizons {horizons}: give score_on_spark the "
                                        "population's BTYD inputs (btyd_inputs)")
        return BtydReference(btyd_inputs())
    if not needs_btyd_reference(models, settings):
        return None
    inputs = features.where(features["days_since_first_order"].isNotNull()).select("customer_id", *BTYD_INPUT_COLUMNS)
    return BtydReference(to_feature_frame(inputs.toPandas()))


def with_decimals_as_doubles(features: DataFrame) -> DataFrame:
    """Decimal columns as doubles, as the DuckDB engine gives them: Spark SQL's day arithmetic can yield
    decimals, which reach pandas as Python objects no model reads."""
    from pyspark.sql.types import DecimalType

    decimal = {field.name for field in features.schema.fields if isinstance(field.dataType, DecimalType)}
    if not decimal:
        return features
    return features.select(*[features[name].cast("double").alias(name) if name in decimal else features[name]
                             for name in features.columns])


def scored_chunks(features: DataFrame, plan: TaskPlan) -> list[Any]:
    """Run the scoring job (job group `spark_job_group`); its chunk rows in partition and chunk order."""
    spark = features.sparkSession
    context = spark.sparkContext
    handle = context.broadcast(plan)
    context.setJobGroup(spark_job_group(plan.run_id), f"custscore: score and explain run {plan.run_id}", interruptOnCancel=True)
    try:
        rows = features.mapInPandas(partial(score_partition, handle), CHUNK_SCHEMA).collect()
    except Exception as exc:  # py4j and PySpark errors are pages long: one line, then what the store holds
        raise SparkScoringError(
            f"scoring run {plan.run_id} on Spark failed or was cancelled ({first_line(exc)}); nothing was published: readers "
            f"still see the previous run. Parts already written stay under {plan.staging} until the run is scored again"
        ) from None
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        handle.unpersist()
    return sorted(rows, key=lambda row: (row["partition"], row["chunk"]))


def first_line(exc: BaseException) -> str:
    """The line that says what went wrong in a (Java or Python) error, cut to 300 characters.

    A task's Python error reaches the driver as a page of Java and Python stack: its own line
    (`TypeError: ...`) is the one worth showing, else the first line.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if PYTHON_ERROR_LINE.match(line) and not line.startswith(JVM_PACKAGES)]
    return (raised[0] if raised else lines[0] if lines else type(exc).__name__)[:300]


def collected(rows: list[Any], plan: TaskPlan, workdir: Path) -> tuple[ScoringResult, list[pd.DataFrame], DriftMeter | None]:
    """The run's numbers and part files from the chunk rows, the scorecard columns and the merged drift counts."""
    fs, _ = staging_filesystem(plan.staging)
    local = urlparse(plan.staging).scheme in LOCAL_SCHEMES
    numbers = [pq.read_table(row["numbers"], filesystem=fs).to_pandas() for row in rows]
    cards = [pq.read_table(row["cards"], filesystem=fs).to_pandas() for row in rows]
    texts = [_driver_file(fs, row["texts"], workdir, local) for row in rows]
    explanations = [_driver_file(fs, row["explanations"], workdir, local) for row in rows]
    all_numbers = pd.concat(numbers, ignore_index=True) if numbers else pd.DataFrame(columns=SEGMENT_INPUT_COLUMNS)
    if all_numbers["customer_id"].duplicated().any():
        dup = all_numbers.loc[all_numbers["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise ValueError(f"customer {dup!r} was scored twice: the feature DataFrame must have one row per customer")
    seconds, cpu = _summed(rows, "seconds"), _summed(rows, "cpu_seconds")
    meter = None
    if plan.drift_reference is not None:
        meter = DriftMeter(plan.drift_reference)
        for row in rows:
            meter.merge(pickle.loads(row["drift"]))  # written by this run's own tasks
    return ScoringResult(all_numbers, texts, explanations, seconds, cpu), cards, meter


def _driver_file(fs: pafs.FileSystem, path: str, workdir: Path, local: bool) -> Path:
    """A part as a local file the store can link: itself when staging is local, else a copy in `workdir`."""
    if local:
        return Path(path)
    target = workdir / "spark-parts" / Path(path).parent.name / Path(path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(target), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return target


def _summed(rows: list[Any], column: str) -> dict[str, float]:
    total: dict[str, float] = {}
    for row in rows:
        for stage, value in json.loads(row[column]).items():
            total[stage] = total.get(stage, 0.0) + value
    return total


# ---------------------------------------------------------------------- the tasks


def score_partition(handle: Any, batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """One Spark task: its partition in chunks, each scored by `score_chunk`, its parts written to staging."""
    from pyspark import TaskContext

    plan: TaskPlan = handle.value
    context = TaskContext.get()
    partition, attempt = context.partitionId(), context.attemptNumber()
    fs, root = staging_filesystem(plan.staging)
    for index, chunk in enumerate(rechunked(batches, plan.settings.scoring.chunk_size)):
        # attempt and a random suffix: a retried or speculative task never overwrites a part another attempt named
        name = f"part-{partition:05d}-{index:05d}-a{attempt}-{uuid.uuid4().hex[:6]}"
        with task_folder(fs, root, name) as folder:
            row = score_one_chunk(chunk, plan, index, folder, partial(placed, fs, root, name))
        yield pd.DataFrame({"partition": [partition], "chunk": [index], "attempt": [attempt], **{k: [v] for k, v in row.items()}})


def score_one_chunk(chunk: pd.DataFrame, plan: TaskPlan, index: int, folder: Path,
                    place: Callable[[str, Path], str]) -> dict[str, Any]:
    """Score one chunk as `score_run` does (scorecard columns, BTYD columns, drift counts, then `score_chunk`).

    `place(kind, file)` puts a finished part where the driver reads it and says where; the
    chunk's row (rows, the four parts, drift counts, stage seconds) is returned.
    """
    chunk = to_feature_frame(chunk.reset_index(drop=True))
    cards = scorecard_features(chunk)
    if plan.btyd_horizons:
        chunk = plan.btyd.with_columns(chunk, list(plan.btyd_horizons))
    meter = DriftMeter(plan.drift_reference) if plan.drift_reference is not None else None
    if meter is not None:
        meter.add_features(chunk)
    clock = StageClock()
    numbers, texts, explanations = score_chunk(chunk, plan.models, plan.settings, index, folder, clock, run_id=plan.run_id)
    files = {"numbers": written(numbers, folder / "numbers.parquet"), "texts": texts, "explanations": explanations,
             "cards": written(cards, folder / "cards.parquet")}
    return {"rows": len(numbers), **{kind: place(kind, files[kind]) for kind in PART_KINDS},
            "drift": pickle.dumps(meter) if meter is not None else b"",
            "seconds": json.dumps(clock.seconds), "cpu_seconds": json.dumps(clock.cpu_seconds)}


def rechunked(batches: Iterable[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """Spark's Arrow batches (10,000 rows by default) regrouped into chunks of `size` rows (the last one smaller)."""
    pending: list[pd.DataFrame] = []
    held = 0
    for batch in batches:
        if not len(batch):
            continue
        pending.append(batch)
        held += len(batch)
        while held >= size:
            frame = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)
            yield frame.iloc[:size]
            rest = frame.iloc[size:]
            pending, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(pending, ignore_index=True)


@contextmanager
def task_folder(fs: pafs.FileSystem, root: str, name: str) -> Iterator[Path]:
    """Scratch space for one chunk's files, removed after: under the staging folder when it is local (parts then move by
    one rename), else a temporary folder of the executor."""
    path = Path(root) / TASK_FOLDER / name if isinstance(fs, pafs.LocalFileSystem) else Path(tempfile.mkdtemp(prefix="custscore-spark-"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def written(frame: pd.DataFrame, path: Path) -> Path:
    """A small frame (a chunk's numbers or scorecard columns) as a Parquet file."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")
    return path


def placed(fs: pafs.FileSystem, root: str, name: str, kind: str, source: Path) -> str:
    """Move (local staging: one rename) or copy a finished part to `<root>/<kind>/<name>.parquet`; its path there."""
    target = f"{root}/{kind}/{name}.parquet"
    if isinstance(fs, pafs.LocalFileSystem):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return target
    fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    pafs.copy_files(str(source), target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    return target
