"""Score with the champions, segment, and publish the run all or nothing; file output helpers."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from features.build import iter_feature_batches
from features.transactions import btyd_inputs_expr
from models.btyd import BtydFeatures
from models.valuation import clv, net_value
from pipelines import tracking
from pipelines.runs import Run
from pipelines.training import BTYD_FIT_ROWS
from pipelines.tasks import IO_RETRIES, midnight, feature_spec
from serving.scoring import ScoringModels, ScoringResult, ScoringSettings, iter_parts, score_all
from serving.segments import assign_segments, segment_summary
from serving.store import RunMetadata, ScoreStore

log = logging.getLogger(__name__)


class NoChampionError(LookupError):
    """Scoring was asked for before any model earned the champion alias."""


def write_frame(frame: pd.DataFrame, output: Path) -> Path:
    """Write a frame to .parquet or .csv, chosen by the file's suffix."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        frame.to_parquet(output, index=False)
    elif output.suffix == ".csv":
        frame.to_csv(output, index=False)
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


def run_id_for(run: Run, models: ScoringModels) -> str:
    """Same as-of, data, models and settings give the same run id, so a rerun replaces its run."""
    key = {
        "as_of": run.as_of.isoformat(), "data": run.data.data_hash,
        "churn": models.churn_version, "value": models.value_version,
        "settings": run.cfg.model_dump(mode="json", include={"labels", "valuation", "scoring", "segments", "features"}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{run.as_of:%Y%m%d}-{digest}"


def feature_chunks(run: Run, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The feature table as of the run's date, streamed from DuckDB in chunks of customers."""
    return iter_feature_batches(run.data.tables, midnight(run.as_of), feature_spec(run.cfg),
                                include_prospects=True, batch_rows=chunk_size)


@task(name="score-and-explain", cache_policy=NO_CACHE)
def score_task(run: Run, models: ScoringModels, workdir: Path) -> ScoringResult:
    """Predict, explain and value every customer, chunk by chunk."""
    settings = ScoringSettings(run.cfg.labels.value_horizon_days, run.cfg.valuation.annual_discount_rate,
                               run.cfg.scoring.reasons_per_direction)
    done = {"n": 0}

    def progress(n: int) -> None:
        done["n"] += n
        log.info("scored %d customers", done["n"])

    result = score_all(feature_chunks(run, run.cfg.scoring.chunk_size), models, settings, workdir, progress)
    log.info("scoring seconds by stage: %s", {k: round(v, 1) for k, v in result.timings.items()})
    anchor = getattr(models.value, "level_anchor_", None)
    if anchor is not None and anchor.use_anchor_:
        result.numbers = anchored_to_btyd(result.numbers, run, anchor, settings)
    return result


def anchored_to_btyd(numbers: pd.DataFrame, run: Run, anchor, settings: ScoringSettings) -> pd.DataFrame:
    """Rescale predicted value so its total matches BG/NBD's for the scored population.

    Only when training found, out of time, that this lowers the aggregate bias. Ranks and
    reasons are unchanged; revenue, margin and the interval scale by one factor.
    """
    horizon = run.cfg.labels.value_horizon_days
    inputs = btyd_inputs_expr(run.data.tables["transactions"], midnight(run.as_of)).to_pyarrow().to_pandas()
    btyd = BtydFeatures(horizon, max_fit_rows=BTYD_FIT_ROWS).fit(inputs)
    expected = pd.Series(btyd.transform(inputs)[f"btyd_expected_revenue_{horizon}d"].to_numpy(),
                         index=inputs["customer_id"].to_numpy())
    scored = numbers["expected_revenue"].notna().to_numpy()
    reference = expected.reindex(numbers.loc[scored, "customer_id"]).to_numpy()
    _, factor = anchor.transform(numbers.loc[scored, "expected_revenue"].to_numpy(), reference)
    out = numbers.copy()
    for column in ("expected_revenue", "expected_margin", "value_p10", "value_p90"):
        out[column] = out[column] * factor
    out["net_value"] = net_value(out["expected_margin"].to_numpy(), out["cost_to_serve"].to_numpy())
    out["clv"] = clv(out["net_value"].to_numpy(), settings.value_horizon_days, settings.annual_discount_rate)
    log.info("value level anchored to BG/NBD: factor %.4f", factor)
    return out


@task(name="publish", cache_policy=NO_CACHE, **IO_RETRIES)
def publish_task(run: Run, models: ScoringModels, champions, result: ScoringResult, run_id: str) -> dict:
    """Segment the run and publish scores, explanations, summary and metadata in one atomic step."""
    segmented = assign_segments(result.numbers, run.cfg.segments)
    summary = segment_summary(segmented, run.cfg.segments)
    metadata = run_metadata(run, champions, run_id)
    published = ScoreStore(run.paths.store).publish(
        metadata,
        scores=_score_batches(result, segmented),
        explanations=_explanation_batches(result),
        summary=summary,
    )
    return {
        "run_id": run_id, "as_of": run.as_of.isoformat(), "rows": published.score_rows,
        "explanation_rows": published.explanation_rows, "store": str(run.paths.store),
        "summary": summary.astype(object).where(summary.notna(), None).to_dict("records"),
        "models": metadata.extra["models"],
    }


def score_and_publish(run: Run, champions: dict, training: dict | None = None) -> dict:
    """Score every customer with the champions and publish the run (the scoring half of a flow)."""
    models = scoring_models(champions, training)
    run_id = run_id_for(run, models)
    workdir = run.paths.root / "work" / run_id
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        result = score_task(run, models, workdir)
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


def _score_batches(result: ScoringResult, segmented: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Score part files joined with the run-wide segment columns, one chunk at a time."""
    numbers = segmented.drop(columns=["current_value", "is_new", "tenure_days"], errors="ignore").set_index("customer_id")
    for part in iter_parts(result.score_parts):
        yield part.join(numbers, on="customer_id")


def _explanation_batches(result: ScoringResult) -> Iterator[pa.Table]:
    """Explanation part files as Arrow: millions of rows need no trip through pandas."""
    for path in result.explanation_parts:
        part = pq.read_table(path)
        if part.num_rows:
            yield part
