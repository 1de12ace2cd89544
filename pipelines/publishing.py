"""Score with the champions (serving.score_run) and publish the run to the score sink all or nothing; file output helpers."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.build import FeatureSpec, feature_columns, iter_feature_batches, round_float_noise
from features.safe_csv import safe_text_frame
from features.tables import columns_of
from features.transactions import btyd_inputs_expr
from pipelines import prospects, run_report, tracking
from pipelines.arguments import FRAME_SUFFIXES, check_output_suffix
from pipelines.backtesting import backtest_after_publishing
from pipelines.drift import check_drift
from pipelines.faults import writing
from pipelines.payment_scoring import payment_scoring_for, with_payment_champion
from pipelines.progress import counted, staged
from pipelines.runs import Run
from pipelines.sinks import NamedSink, configured_sinks, publish_after_store
from pipelines.tasks import IO_RETRIES, feature_spec, midnight
from serving.changes import previous_run_id, side_of_sink, with_changes
from serving.payment_risk import PaymentRiskScoring
from serving.score_run import score_run
from serving.scored_run import ScoredRun
from serving.scoring import ScoringModels
from serving.store import RunMetadata

log = logging.getLogger(__name__)
SCORE_STAGE = "score, explain and segment"
NOTHING_PUBLISHED = "nothing was published: readers still see the previous run"


class NoChampionError(LookupError):
    """Scoring was asked for before any model earned the champion alias."""


def write_frame(frame: pd.DataFrame, output: Path) -> Path:
    """Write a frame to .parquet or .csv, chosen by the file's suffix.

    CSV text cells that a spreadsheet would run as formulas get a leading ``'`` (features.safe_csv).
    """
    output = Path(output)
    check_output_suffix(output, FRAME_SUFFIXES, "output")
    with writing(output, "the file", "the file is incomplete: delete it"):
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            safe_text_frame(frame).to_csv(output, index=False)
    return output


def scoring_models(champions: dict[str, tracking.Champion | None], training: dict | None = None) -> ScoringModels:
    """The two champions as scoring models, or a clear error saying why there are none."""
    missing = [kind for kind, c in champions.items() if c is None]
    if missing:
        reasons = [f"{tracking.model_name(k)} v{training[k]['version']} was trained but not promoted: "
                   f"{training[k]['reason']}" for k in missing if training and k in training]
        raise NoChampionError(
            f"no champion for {', '.join(tracking.model_name(k) for k in missing)}, so nothing to score with. "
            + (" ".join(reasons) + ". A model must beat its rule baseline out of time before it scores "
               "customers; see the run in the MLflow UI, and check the data and the training settings "
               "(snapshots, horizons) in the config."
               if reasons else "Train first: `custscore train`, or `custscore run`, which trains when there is no champion.")
        )
    return ScoringModels(champions["churn"].model, champions["value"].model,
                         champions["churn"].version, champions["value"].version)


class ChampionFeaturesMissingError(NoChampionError):
    """The champions use feature columns this run's data and configuration do not build."""


def check_champion_features(run: Run, models: ScoringModels) -> None:
    """Stop before scoring when a champion needs columns the feature table will not have."""
    built = set(feature_columns(feature_spec(run.cfg), columns_of(run.data.tables)))
    for kind, model, version in (("churn", models.churn, models.churn_version),
                                 ("value", models.value, models.value_version)):
        # BTYD columns are added to each chunk after the feature query (features.btyd).
        missing = [c for c in model.feature_names_ if c not in built and not c.startswith("btyd_")]
        if missing:
            raise ChampionFeaturesMissingError(
                f"the champion {tracking.model_name(kind)} v{version} uses {len(missing)} feature columns this "
                f"run does not build, e.g. {missing[:5]}: the data's tables or the feature settings "
                "(features.windows_days, tenure_ratios, btyd, seasonal, the label horizons, features.attributes: attr_ columns "
                "this run excludes) changed since it was trained. Retrain with "
                "`custscore run --retrain`, or score with the settings it was trained with."
            )


def run_id_for(run: Run, models: ScoringModels, champions: dict, payment: PaymentRiskScoring | None = None) -> str:
    """Same as-of, data, models and settings give the same run id, so a rerun replaces its run.

    The models are their versions and the MLflow runs behind them: a new registry numbers its
    first models v1 again, and its runs must not replace the runs of the lineage before it.
    """
    key = {
        "as_of": run.as_of.isoformat(), "data": run.data.data_hash,
        "churn": models.churn_version, "value": models.value_version,
        "mlflow_runs": {kind: c.run_id for kind, c in sorted(champions.items())},
        # How the work is split (chunks, feature-query partitions) does not change a score, so not the run either.
        "settings": run.cfg.model_dump(mode="json", include={"labels", "valuation", "scoring", "segments", "features"},
                                       exclude={"scoring": {"chunk_size", "feature_partitions"},
                                                "features": feature_settings_at_default(run.cfg.features)}),
    }
    if payment is not None and payment.scores:  # a run without payment risk keeps the id it had before it existed
        key["payment"] = {"version": payment.version, "settings": run.cfg.payment_risk.model_dump(mode="json")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{run.as_of:%Y%m%d}-{digest}"


# Feature settings that joined the configuration later: a run that leaves them at their defaults
# keeps the run id it had before they could be set (a rerun still replaces its run).
LATER_FEATURE_SETTINGS = ("name", "version", "year_ago", "dso_window_days", "include_attributes")


def feature_settings_at_default(features: FeatureSpec) -> set[str]:
    """The later feature settings that are at their defaults, left out of the run id."""
    return {name for name in LATER_FEATURE_SETTINGS if getattr(features, name) == FeatureSpec.model_fields[name].default}


def feature_chunks(run: Run) -> Iterator[pd.DataFrame]:
    """The feature table as of the run's date, streamed from DuckDB in chunks of `scoring.chunk_size` customers."""
    return iter_feature_batches(run.data.tables, midnight(run.as_of), feature_spec(run.cfg),
                                include_prospects=True, batch_rows=run.cfg.scoring.chunk_size,
                                partitions=run.cfg.scoring.feature_partitions)


def btyd_population_inputs(run: Run) -> pd.DataFrame:
    """BG/NBD + Gamma-Gamma inputs of every customer with an order before the run's date (BtydFeatures puts them in customer order).

    Rounded as the feature table is: DuckDB's parallel sums differ in their last bits from one
    run to the next, and the likelihood's optimum would carry that into every BTYD output.
    """
    inputs = btyd_inputs_expr(run.data.tables["transactions"], midnight(run.as_of)).to_pyarrow().to_pandas()
    for column in inputs.columns.drop("customer_id"):
        inputs[column] = round_float_noise(inputs[column].to_numpy(dtype=float))
    return inputs


def score_sink(run: Run) -> list[NamedSink]:
    """Every sink the run is published to: the home's Parquet store first, then PostgreSQL when configured."""
    return configured_sinks(run.cfg, run.paths)


@task(name="score-and-explain", cache_policy=NO_CACHE)
@staged(SCORE_STAGE)
def score_task(run: Run, models: ScoringModels, workdir: Path, run_id: str,
               payment: PaymentRiskScoring | None = None) -> ScoredRun:
    """Predict, explain, value and segment every customer, chunk by chunk."""
    done = {"n": 0}

    def progress(n: int) -> None:
        done["n"] += n
        log.info("scored %d customers", done["n"])
        counted(SCORE_STAGE, done["n"])

    if run.cfg.engine.name == "spark":
        return score_on_spark_engine(run, models, workdir, run_id, progress, payment)
    return score_run(feature_chunks(run), models, run.cfg.scoring_settings(), workdir, run_id=run_id, as_of=run.as_of,
                     btyd_inputs=lambda: btyd_population_inputs(run), progress=progress, payment=payment)


def spark_staging(run: Run) -> str:
    """Where Spark's tasks write a run's parts: under engine.spark.work_path (shared storage on a cluster), else the home."""
    return f"{(run.cfg.engine.spark.work_path or str(run.paths.root / 'work' / 'spark')).rstrip('/')}/staging"


def remove_spark_staging(run: Run, run_id: str) -> None:
    """Spark's parts of a published run: the sinks hold their own copies (links or rows) now."""
    from serving.spark_scoring import remove_staging, run_staging

    remove_staging(run_staging(spark_staging(run), run_id))


def customers_at_most(run: Run) -> int:
    """An upper bound of the feature table's rows, for sizing partitions without running the feature query twice.

    The table has the customers with a transaction plus the prospects of the customers table.
    """
    tables = run.data.tables
    bound = tables["transactions"].customer_id.nunique().execute()
    if "customers" in tables:
        bound += tables["customers"].count().execute()
    return int(bound)


def score_on_spark_engine(run: Run, models: ScoringModels, workdir: Path, run_id: str, progress,
                          payment: PaymentRiskScoring | None) -> ScoredRun:
    """Score and explain in Spark's tasks, over the feature table left distributed (serving.spark_scoring).

    The feature DataFrame gets about one scoring chunk per partition and at least two per core
    Spark offers, so every core has work and no task holds more than a chunk or two. Payment
    risk is not in the tasks yet: its rows are collected on the driver from the feature table
    streamed in chunks (a second pass over the features).
    """
    # Imported here: pyspark is an optional extra, loaded only when the engine is spark.
    from features.build import build_features_expr
    from features.engines.spark import spark_frame
    from serving.spark_scoring import score_on_spark

    expr = build_features_expr(run.data.tables, midnight(run.as_of), feature_spec(run.cfg), include_prospects=True)
    spark = expr._find_backend()._session
    partitions = max(2 * spark.sparkContext.defaultParallelism, -(-customers_at_most(run) // run.cfg.scoring.chunk_size))
    if payment is not None:
        for _ in payment.observing(feature_chunks(run)):
            pass
    return score_on_spark(spark_frame(expr, partitions), models, run.cfg.scoring_settings(), spark_staging(run), workdir,
                          run_id=run_id, as_of=run.as_of, btyd_inputs=lambda: btyd_population_inputs(run),
                          progress=progress, payment=payment)


@task(name="publish", cache_policy=NO_CACHE, **IO_RETRIES)
@staged("publish")
def publish_task(run: Run, champions, scored: ScoredRun, run_id: str) -> dict:
    """Publish scores, explanations, summary and metadata in one atomic step."""
    metadata = run_metadata(run, champions, run_id)
    sinks = score_sink(run)
    published = publish_scored(sinks, run.paths.store, metadata, scored)
    if run.cfg.engine.name == "spark":
        remove_spark_staging(run, run_id)
    summary = scored.summary.to_pandas()
    return {
        "run_id": run_id, "as_of": run.as_of.isoformat(), "rows": published.score_rows,
        "explanation_rows": published.explanation_rows, "store": published_to(run, sinks),
        "summary": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "models": metadata.extra["models"],
    }


def published_to(run: Run, sinks: list[NamedSink]) -> str:
    """Where the run went, for the summary: the store's folder, and each further sink (URLs redacted)."""
    return " and ".join([str(run.paths.store), *(named.label for named in sinks[1:])])


def publish_scored(sinks: list[NamedSink], where: Path, metadata: RunMetadata, scored: ScoredRun):
    """Publish to every sink, the store first, each all or nothing; the store's published run.

    A full disk is one line naming the store's folder `where` and its free space; a later sink
    failing is one line naming it and saying the store has the run (SinkPublishError).
    """
    with writing(where, "the published run in the store", NOTHING_PUBLISHED):
        published = sinks[0].sink.publish(metadata, scored)
    publish_after_store(sinks, metadata, scored, published)
    return published


def score_and_publish(run: Run, champions: dict, training: dict | None = None) -> dict:
    """Score every customer with the champions and publish the run (the scoring half of a flow)."""
    models = scoring_models(champions, training)
    check_champion_features(run, models)
    payment = payment_scoring_for(run)
    run_id = run_id_for(run, models, champions, payment)
    workdir = run.paths.root / "work" / run_id
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        with writing(workdir, "the scored parts in", NOTHING_PUBLISHED):
            scored = score_task(run, models, workdir, run_id, payment)
        scored, prospect_scores = prospects.with_prospect_scores(run, scored)
        drift = check_drift(run, scored, models, run_id, training)
        scored = with_changes_since_previous(run, scored)
        published = publish_task(run, with_payment_champion(champions, payment), scored, run_id) | {"drift": drift,
                                                                                               "prospects": prospect_scores}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    published |= backtest_after_publishing(run, score_sink(run))
    return published | run_report.report_task(run, run_id)


@staged("changes since the previous run")
def with_changes_since_previous(run: Run, scored: ScoredRun) -> ScoredRun:
    """The scored run with what changed since the previous published run, published with it (serving/changes.py)."""
    sink = score_sink(run)[0].sink  # the store: every sink holds the same runs, and it needs no server
    previous = previous_run_id(sink, str(scored.run_id), run.as_of)
    # The run's scratch folder (removed once it is published) keeps the changes table out of memory.
    workdir = run.paths.root / "work" / str(scored.run_id)
    return with_changes(scored, None if previous is None else side_of_sink(sink, previous), run.as_of, workdir)


def run_metadata(run: Run, champions: dict, run_id: str) -> RunMetadata:
    """What produced a run: date, data, model versions and their MLflow runs, input counts."""
    models = {
        kind: {"name": tracking.model_name(kind), "version": c.version, "mlflow_run_id": c.run_id,
               "grade": tracking.grade_of(c.run_id)}
        for kind, c in champions.items()
    }
    return RunMetadata(
        run_id=run_id, as_of=run.as_of,
        churn_model_version=champions["churn"].version, value_model_version=champions["value"].version,
        churn_mlflow_run_id=champions["churn"].run_id, value_mlflow_run_id=champions["value"].run_id,
        data_hash=run.data.data_hash,
        extra={
            "data_source": run.source_label, "input_rows": run.data.report_json(), "models": models,
            "clock": run.clock.isoformat(),
            "config": run.cfg.model_dump(mode="json", include={"labels", "valuation", "scoring", "features"}),
            # The demo settings the run was made from: commands reading its data later (actions --owner)
            # find the demo folder from them, whatever config they are given.
            **({"demo_data": run.cfg.demo.model_dump(mode="json")} if run.cfg.data.source is None else {}),
        },
    )
