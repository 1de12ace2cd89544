"""Score with the champions, segment, and publish the run all or nothing; file output helpers."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.build import feature_columns, iter_feature_batches, round_float_noise
from features.safe_csv import safe_text_frame
from features.tables import columns_of
from features.transactions import BTYD_INPUT_COLUMNS, btyd_inputs_expr
from models.btyd import BTYD_FIT_ROWS, FIRST_ORDER_AGE, BtydFeatures
from pipelines import tracking
from pipelines.runs import Run
from pipelines.tasks import IO_RETRIES, feature_spec, midnight
from serving.reference_adjustments import blended_with_reference, value_scaled
from serving.scoring import ScoringModels, ScoringResult, ScoringSettings, score_all
from serving.segments import SegmentRules, assign_segments, segment_summary
from serving.store import PublishedRun, RunMetadata, ScoreStore

log = logging.getLogger(__name__)


class NoChampionError(LookupError):
    """Scoring was asked for before any model earned the champion alias."""


def write_frame(frame: pd.DataFrame, output: Path) -> Path:
    """Write a frame to .parquet or .csv, chosen by the file's suffix.

    CSV text cells that a spreadsheet would run as formulas get a leading ``'`` (features.safe_csv).
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        frame.to_parquet(output, index=False)
    elif output.suffix == ".csv":
        safe_text_frame(frame).to_csv(output, index=False)
    else:
        raise ValueError(f"{output}: unsupported output format {output.suffix!r}; use .parquet or .csv")
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


def run_id_for(run: Run, models: ScoringModels, champions: dict) -> str:
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
                                       exclude={"scoring": {"chunk_size", "feature_partitions"}}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{run.as_of:%Y%m%d}-{digest}"


_BTYD_HORIZON = re.compile(r"^btyd_\w+_(\d+)d$")


def btyd_horizons_of(models: ScoringModels) -> list[int]:
    """Horizons of the BG/NBD columns the champions read (their design put them among the features)."""
    names = [*models.churn.feature_names_, *models.value.feature_names_]
    return sorted({int(m.group(1)) for n in names if (m := _BTYD_HORIZON.match(n))})


def feature_chunks(run: Run, chunk_size: int, horizons: list[int] = (),
                   inputs: pd.DataFrame | None = None) -> Iterator[pd.DataFrame]:
    """The feature table as of the run's date, streamed from DuckDB in chunks of customers, with BTYD columns for `horizons`.

    `inputs`: the population's BG/NBD inputs (`btyd_population_inputs`), when the caller has them.
    """
    chunks = iter_feature_batches(run.data.tables, midnight(run.as_of), feature_spec(run.cfg),
                                  include_prospects=True, batch_rows=chunk_size,
                                  partitions=run.cfg.scoring.feature_partitions)
    if not horizons:
        return chunks
    # Fitted once on the whole scored population, as each training snapshot was on its own rows.
    inputs = btyd_population_inputs(run) if inputs is None else inputs
    models = [BtydFeatures(h, max_fit_rows=BTYD_FIT_ROWS).fit(inputs) for h in horizons]
    return (_with_columns(chunk, [m.transform(chunk) for m in models]) for chunk in chunks)


def _with_columns(chunk: pd.DataFrame, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunk with the frames' columns it does not have yet (btyd_p_alive comes with every horizon)."""
    both = pd.concat([chunk, *frames], axis=1)
    return both.loc[:, ~both.columns.duplicated()]


def btyd_population_inputs(run: Run) -> pd.DataFrame:
    """BG/NBD + Gamma-Gamma inputs of every customer with an order before the run's date (BtydFeatures puts them in customer order).

    Rounded as the feature table is: DuckDB's parallel sums differ in their last bits from one
    run to the next, and the likelihood's optimum would carry that into every BTYD output.
    """
    inputs = btyd_inputs_expr(run.data.tables["transactions"], midnight(run.as_of)).to_pyarrow().to_pandas()
    for column in inputs.columns.drop("customer_id"):
        inputs[column] = round_float_noise(inputs[column].to_numpy(dtype=float))
    return inputs


def scoring_settings(cfg) -> ScoringSettings:
    """What scoring takes from the run's configuration."""
    return ScoringSettings(cfg.labels.value_horizon_days, cfg.valuation.annual_discount_rate,
                           cfg.scoring.reasons_per_direction, distinct_reasons=cfg.scoring.distinct_reasons,
                           unusual_percentile=cfg.scoring.unusual_reasons.percentile)


@task(name="score-and-explain", cache_policy=NO_CACHE)
def score_task(run: Run, models: ScoringModels, workdir: Path, run_id: str | None = None) -> ScoringResult:
    """Predict, explain and value every customer, chunk by chunk."""
    settings = scoring_settings(run.cfg)
    done = {"n": 0}

    def progress(n: int) -> None:
        done["n"] += n
        log.info("scored %d customers", done["n"])

    horizons = btyd_horizons_of(models)
    # BG/NBD's inputs are queried before scoring only when the models read BTYD columns; for the
    # anchor and the blend they are taken from the feature chunks as they pass (the same values).
    inputs = btyd_population_inputs(run) if horizons else None
    captured: list[pd.DataFrame] = []
    chunks = feature_chunks(run, run.cfg.scoring.chunk_size, horizons, inputs)
    if inputs is None and needs_btyd_reference(run, models):
        chunks = _capturing_btyd_inputs(chunks, captured)
    result = score_all(chunks, models, settings, workdir, progress, run_id=run_id)
    log.info("scoring seconds by stage: %s", {k: round(v, 1) for k, v in result.timings.items()})
    if captured:
        inputs = pd.concat(captured, ignore_index=True)
    result.numbers = adjusted_by_btyd(result.numbers, run, models, settings, inputs)
    return result


def _capturing_btyd_inputs(chunks: Iterator[pd.DataFrame], into: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks unchanged; the BG/NBD input columns of their customers with an order appended to `into`."""
    columns = ["customer_id", *BTYD_INPUT_COLUMNS]
    for chunk in chunks:
        into.append(chunk.loc[chunk["days_since_first_order"].notna(), columns].reset_index(drop=True))
        yield chunk


def needs_btyd_reference(run: Run, models: ScoringModels) -> bool:
    """Whether scoring fits BG/NBD + Gamma-Gamma on the population: for a blend, or for a level anchor that may apply."""
    anchor = getattr(models.value, "level_anchor_", None)
    anchor_may_apply = anchor is not None and (anchor.use_anchor_ or anchor.mode == "auto")
    return anchor_may_apply or any(w > 0 for w in blend_weights(run, models))


def blend_weights(run: Run, models: ScoringModels) -> tuple[float, float]:
    """BG/NBD's shares in the churn and value scores: the configured ones, else what the design search chose."""
    configured = run.cfg.scoring.btyd_blend
    churn = configured.churn_weight if configured.churn_weight is not None else getattr(models.churn, "blend_weight_", 0.0)
    value = configured.value_weight if configured.value_weight is not None else getattr(models.value, "blend_weight_", 0.0)
    return float(churn), float(value)


def adjusted_by_btyd(numbers: pd.DataFrame, run: Run, models: ScoringModels, settings: ScoringSettings,
                     inputs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The level anchor (when it applies) and the blend of each score with BG/NBD + Gamma-Gamma.

    One BG/NBD fit on the scored population serves both. The anchor rescales value so its
    total matches BG/NBD's (ranks unchanged); the blend then mixes each score with BG/NBD's.
    `inputs`: the population's BG/NBD inputs, when the caller has them (else they are queried).
    """
    if not needs_btyd_reference(run, models):
        return numbers
    churn_w, value_w = blend_weights(run, models)
    anchor = getattr(models.value, "level_anchor_", None)
    churn_h, value_h = run.cfg.labels.churn_horizon_days, settings.value_horizon_days
    inputs = btyd_population_inputs(run) if inputs is None else inputs
    reference = btyd_reference(inputs, (churn_h, value_h)).reindex(numbers["customer_id"].to_numpy())
    expected_revenue = reference[f"btyd_expected_revenue_{value_h}d"].to_numpy()
    # The anchor's ageing test reads the scored customers' tenure.
    if anchor is not None and anchor.uses_anchor_for(inputs[FIRST_ORDER_AGE].to_numpy(dtype=float)):
        scored = numbers["expected_revenue"].notna().to_numpy()
        _, factor = anchor.transform(numbers.loc[scored, "expected_revenue"].to_numpy(), expected_revenue[scored],
                                     tenure_scored=inputs[FIRST_ORDER_AGE].to_numpy(dtype=float))
        numbers = value_scaled(numbers, factor, settings)
        log.info("value level anchored to BG/NBD: factor %.4f", factor)
    if churn_w > 0 or value_w > 0:
        numbers = blended_with_reference(numbers, reference[f"btyd_p_no_order_{churn_h}d"].to_numpy(), expected_revenue,
                                         churn_w, value_w, settings)
        log.info("scores blended with BG/NBD: churn weight %.2f, value weight %.2f", churn_w, value_w)
    return numbers


def btyd_reference(inputs: pd.DataFrame, horizons: tuple[int, ...]) -> pd.DataFrame:
    """BG/NBD + Gamma-Gamma outputs for each horizon, fitted once on the population's inputs, indexed by customer_id."""
    distinct = sorted(set(horizons))
    fitted = BtydFeatures(distinct[0], max_fit_rows=BTYD_FIT_ROWS).fit(inputs)
    frames = [fitted.with_horizon(h).transform(inputs) for h in distinct]
    both = pd.concat(frames, axis=1)
    return both.loc[:, ~both.columns.duplicated()].set_axis(inputs["customer_id"].to_numpy(), axis=0)


@task(name="publish", cache_policy=NO_CACHE, **IO_RETRIES)
def publish_task(run: Run, models: ScoringModels, champions, result: ScoringResult, run_id: str) -> dict:
    """Segment the run and publish scores, explanations, summary and metadata in one atomic step."""
    metadata = run_metadata(run, champions, run_id)
    published, summary = segment_and_publish(ScoreStore(run.paths.store), metadata, result, run.cfg.segments)
    return {
        "run_id": run_id, "as_of": run.as_of.isoformat(), "rows": published.score_rows,
        "explanation_rows": published.explanation_rows, "store": str(run.paths.store),
        "summary": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "models": metadata.extra["models"],
    }


def segment_and_publish(store: ScoreStore, metadata: RunMetadata, result: ScoringResult,
                        rules: SegmentRules) -> tuple[PublishedRun, pd.DataFrame]:
    """Segment the scored run and publish it with its summary (the published run and the summary)."""
    segmented = assign_segments(result.numbers, rules)
    summary = segment_summary(segmented, rules)
    # The part files hold the texts in the order of result.numbers (which segmentation keeps):
    # the store links them and writes only the numbers.
    published = store.publish_parts(metadata, segmented, result.score_parts, result.explanation_parts, summary)
    return published, summary


def score_and_publish(run: Run, champions: dict, training: dict | None = None) -> dict:
    """Score every customer with the champions and publish the run (the scoring half of a flow)."""
    models = scoring_models(champions, training)
    check_champion_features(run, models)
    run_id = run_id_for(run, models, champions)
    workdir = run.paths.root / "work" / run_id
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        result = score_task(run, models, workdir, run_id)
        return publish_task(run, models, champions, result, run_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
        },
    )
