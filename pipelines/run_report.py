"""The report step of a scoring flow: write the run's HTML reports next to the store and log them to MLflow.

Where: `<home>/reports/<run_id>.<lang>.html`. Not inside the store's run folder: the store owns its
folders (a table attached later moves the run to a new folder) and another sink (a database) has no
folder at all, while a report is derived from what was published and `custscore report` can write it
again at any time. The file name carries the run id, so each run keeps its report and a rerun of the
same run replaces it.

MLflow: a scoring run has no MLflow run of its own, so the report step keeps one per published run in
the experiment `custscore-scoring` (run name `report <run_id>`, tags with the run id and model
versions) and logs the HTML files under `report/`; a rerun of the run logs into the same MLflow run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipelines.config import CustscoreConfig
from pipelines.progress import staged
from pipelines.report import ReportOptions, read_inputs, validation_from_mlflow, write_report
from pipelines.runs import Run
from serving.actions import actions_of_run
from serving.sink import ScoreSink, open_sink

log = logging.getLogger(__name__)
REPORTS_FOLDER = "reports"
SCORING_EXPERIMENT = "custscore-scoring"
RUN_ID_TAG = "custscore.run_id"


def report_path(home: Path, run_id: str, lang: str) -> Path:
    """Where a run's report of one language is kept in a home."""
    return Path(home) / REPORTS_FOLDER / f"{run_id}.{lang}.html"


def report_options(cfg: CustscoreConfig) -> ReportOptions:
    """The report's settings (config `report`) and where the run's segment rules cut the value tiers."""
    rules = cfg.segments
    return ReportOptions(value_column=rules.value_column,
                         tier_cuts=(rules.tier_a_cumulative_share, rules.tier_b_cumulative_share),
                         at_risk_waterfalls=cfg.report.at_risk_waterfalls, top_movers=cfg.report.top_movers)


def write_reports(sink: ScoreSink, run_id: str | None, cfg: CustscoreConfig, outputs: dict[str, Path],
                  *, with_validation: bool = True) -> dict[str, Path]:
    """Write one report per language ({lang: file}) of a published run, its data read once."""
    options = report_options(cfg)
    run = sink.run_metadata(run_id)
    validation = validation_from_mlflow(run) if with_validation else {}
    inputs = read_inputs(sink, run.run_id, options=options, validation=validation,
                         action_list=lambda reader, rid: actions_of_run(reader, cfg.actions, rid))
    return {lang: write_report(inputs, lang, output, options) for lang, output in outputs.items()}


@task(name="report", cache_policy=NO_CACHE)
@staged("report")
def report_task(run: Run, run_id: str) -> dict:
    """The run's reports in the configured languages; a failure is a warning, as the scores are already published."""
    outputs = {lang: report_path(run.paths.root, run_id, lang) for lang in run.cfg.report.languages}
    try:
        written = write_reports(open_sink(run.paths.store), run_id, run.cfg, outputs)
    except Exception as exc:  # the run is published: a report that cannot be drawn must not fail it
        log.warning("report of run %s not written: %s", run_id, exc)
        return {"report_error": f"{type(exc).__name__}: {exc}"}
    log_to_mlflow(run_id, written, run.paths.mlflow_artifacts / "scoring")
    return {"reports": {lang: str(path) for lang, path in written.items()}}


def log_to_mlflow(run_id: str, files: dict[str, Path], artifacts: Path) -> str | None:
    """Log the report files to the scoring run's MLflow run (found by tag, else started); None if MLflow refuses.

    The experiment is looked up by name, not made active: `mlflow.set_experiment` would also set
    MLFLOW_EXPERIMENT_ID in the process's environment, for every later run and child process.
    """
    import mlflow

    from pipelines import tracking
    try:
        experiment_id = tracking.ensure_experiment(SCORING_EXPERIMENT, artifacts)
        found = mlflow.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                                   output_format="list", max_results=1)
        with mlflow.start_run(run_id=found[0].info.run_id if found else None, run_name=f"report {run_id}",
                              experiment_id=experiment_id, nested=mlflow.active_run() is not None) as active:
            mlflow.set_tag(RUN_ID_TAG, run_id)
            for path in files.values():
                mlflow.log_artifact(str(path), "report")
            return active.info.run_id
    except Exception as exc:  # MLflow's store errors vary; the report file is written either way
        log.warning("report of run %s not logged to MLflow: %s", run_id, exc)
        return None
