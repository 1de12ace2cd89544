"""The `custscore` command line (Typer + Rich). Presentation only: the work is in flows and layers.

Prefect reads its settings when first imported, so every command prepares the home folder
and the environment before it imports anything that imports prefect.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from pipelines import cli_backtest, cli_changes, cli_engine, cli_prospects, cli_report
from pipelines.arguments import FRAME_SUFFIXES, RunArgumentError, check_horizon_days, check_output_suffix, parse_day
from pipelines.cli_api import api_app
from pipelines.cli_db import db_app, runs_prune
from pipelines.faults import redacted
from pipelines.local_api import start_local_api_early

app = typer.Typer(help="custscore: customer value, churn and segments with reasons.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
scores_app = typer.Typer(help="Read published score tables.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models: list, promote, rollback.", no_args_is_help=True)
runs_app = typer.Typer(help="Published scoring runs: list, delete and prune.", no_args_is_help=True)
app.add_typer(scores_app, name="scores")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
app.command("changes")(cli_changes.changes)
app.command("backtest")(cli_backtest.backtest)
app.command("report")(cli_report.report)
app.add_typer(db_app, name="db")
app.add_typer(api_app, name="api")

# Piped output (CI logs, files) gets a width that fits the summary tables instead of 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder of CSV/Parquet tables or a DuckDB file.")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Scoring date YYYY-MM-DD (default: day after the last transaction).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config (default: configs/default.yaml).")]
ChurnH = Annotated[int | None, typer.Option("--churn-horizon-days", help="Churn = no order within this many days.")]
ValueH = Annotated[int | None, typer.Option("--value-horizon-days", help="Value horizon in days.")]
WaitOpt = Annotated[bool, typer.Option(
    "--wait", help="If another run holds this home, wait for it instead of exiting with an error.")]
AllowFutureOpt = Annotated[bool, typer.Option(
    "--allow-future-as-of",
    help="Accept an --as-of later than the day after the last transaction (days without data then count as days without orders).")]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show progress logs.")] = False) -> None:
    """custscore: point-in-time features, LightGBM churn and value models, explained segments."""
    end_on_sigterm()
    # The terminal's handler decides what the terminal shows; the project's loggers pass INFO on, so a
    # flow run's progress reaches its Prefect logs (pipelines/run_logs.py) without reaching the terminal.
    terminal = RichHandler(console=err, show_path=False, level=logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[terminal])
    for name in ("features", "models", "serving", "pipelines"):
        logging.getLogger(name).setLevel(logging.INFO)
    # Library chatter (MLflow's pickling notes, Prefect's per-task lines) hides the summary. APILogWorker and
    # EventsWorker: Prefect's senders of run logs and events say "Still processing items" while they send the last ones.
    for name in ("mlflow", "prefect", "py.warnings", "APILogWorker", "EventsWorker"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    logging.captureWarnings(not verbose)
    # Prefect reads this when first imported (after this callback): a failed flow's traceback
    # would bury the one-line error the CLI prints; --verbose shows it.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())


def end_on_sigterm() -> None:
    """A `kill` (SIGTERM: a stopped container, a timeout) ends the command as Ctrl+C does.

    Python's default is to die at once, leaving the MLflow run of a model in training RUNNING
    forever; an exception unwinds `mlflow.start_run`'s block, which marks the run FAILED.
    """
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def _prepare():
    from pipelines.environment import prepare_environment

    return prepare_environment()


class RedactingFilter(logging.Filter):
    """Log lines show URLs without their passwords (a data source or tracking URI may hold one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redacted(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _fail(message: str, code: int = 2) -> None:
    # soft_wrap: one line however narrow the terminal or pipe, so logs can be grepped line by line.
    # escape: a path or value may hold [brackets] Rich would read as markup; redacted: a URL may hold a password.
    err.print(f"[bold red]error:[/] {escape(redacted(str(message)))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    from features.validation import InputContractError, QuarantineThresholdError
    from models.model_files import ModelFileError
    from pipelines.arguments import AsOfOutsideDataError
    from pipelines.config import ConfigError
    from pipelines.drift import DriftHoldError
    from pipelines.faults import DatabaseFaultError, DiskFullError
    from pipelines.home_lock import RunInProgressError
    from pipelines.publishing import NoChampionError
    from pipelines.runs import LostRegistryError
    from pipelines.training import TrainingDataError

    errors: list[type[BaseException]] = [InputContractError, QuarantineThresholdError, ConfigError, NoChampionError,
                                         AsOfOutsideDataError, RunArgumentError, RunInProgressError,
                                         LostRegistryError, TrainingDataError, ModelFileError, DiskFullError,
                                         DatabaseFaultError, DriftHoldError]
    try:
        from features.training_set import InsufficientHistoryError

        errors.append(InsufficientHistoryError)
    except ImportError:  # pragma: no cover - the module always exists once installed
        pass
    return tuple(errors)


def _release_failed_run(exc: BaseException) -> None:
    """Free what the failed run's frames hold (the validated data's DuckDB connection) before exiting.

    Left to interpreter shutdown, DuckDB's bindings print dozens of "leaked instance" lines
    after the one-line error.
    """
    import gc
    import traceback

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the error and those it was raised from or during
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        if getattr(exc, "result", None) is not None:  # QuarantineThresholdError keeps the validated data
            exc.result = None
        exc = exc.__cause__ or exc.__context__
    gc.collect()


def _run_guarded(fn, *args, **kwargs):
    """Run a flow or step; known user errors become a clear message and exit code 2."""
    import duckdb

    try:
        return fn(*args, **kwargs)
    except _known_errors() as exc:
        _release_failed_run(exc)
        _fail(str(exc))
    except duckdb.OutOfMemoryException as exc:
        first_line = str(exc).splitlines()[0]
        _fail(f"DuckDB reached its memory cap: {first_line}. Raise data.duckdb_memory_limit in the config "
              "(default 2GB; pass it with --config FILE) on a machine with more memory.")
    except Exception as exc:
        message = _tracking_fault(exc)
        if message is None:
            raise
        _release_failed_run(exc)
        _fail(message)


def _tracking_fault(exc: BaseException) -> str | None:
    """One line for MLflow's database found locked or corrupt in the middle of a command (None: another error)."""
    from pipelines.faults import mlflow_database_message

    if "mlflow" not in sys.modules:
        return None
    import mlflow

    return mlflow_database_message(exc, mlflow.get_tracking_uri())


def _refuse_url_data(data: Path | None) -> None:
    """A database URL is no data source: refused before Prefect could store it as a flow parameter."""
    from pipelines.arguments import check_local_source

    if data is not None:
        try:
            check_local_source(str(data))
        except RunArgumentError as exc:
            _fail(str(exc))


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option("--customers", min=1, help="Number of customers.")] = 5000,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-data"),
    seed: Annotated[int, typer.Option("--seed")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    end: Annotated[str | None, typer.Option("--end", help="Last day of history YYYY-MM-DD.")] = None,
) -> None:
    """Write a realistic demo world (transactions, customers, invoices, interactions)."""
    from pipelines.arguments import check_choice

    _checked(check_choice, fmt, ("parquet", "csv"), "--format")
    from demo import generate_demo_data, generate_demo_truth, write_demo_data, write_demo_truth

    kwargs = {"seed": seed} | ({"end": _date(end, "--end")} if end else {})
    with console.status(f"generating {customers:,} customers"):
        tables = generate_demo_data(customers, **kwargs)
        paths = write_demo_data(tables, out, fmt)
        truth = generate_demo_truth(customers, **kwargs)
        truth_path = write_demo_truth(truth, out)
    grid = Table("table", "rows", "file", title="demo data")
    for name, path in paths.items():
        grid.add_row(name, f"{len(tables[name]):,}", str(path))
    grid.add_row("truth (each customer's churn driver; not an input)", f"{len(truth):,}", str(truth_path))
    console.print(grid)


@app.command()
def validate(
    data: Annotated[Path | None, typer.Option("--data", help="Folder of CSV/Parquet tables or a DuckDB file (default: the config's data.source).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quarantine_out: Annotated[Path | None, typer.Option("--quarantine-out", help="Where to write rejected rows (.parquet, .csv or .csv.gz).")] = None,
    data_end: Annotated[str | None, typer.Option("--data-end", help="Rows after this date are future (default: the config's data.data_end).")] = None,
    max_quarantine_share: Annotated[float | None, typer.Option("--max-quarantine-share", help="Default: the config's data.max_quarantine_share.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check the input tables; print rows read, accepted and quarantined by reason."""
    # No Prefect, MLflow or LightGBM on this path: validation starts in about a second.
    from pipelines import cli_validate
    from pipelines.config import ConfigError, load_config

    end_flag = _date(data_end, "--data-end")
    _refuse_url_data(data)
    _checked(cli_validate.check_quarantine_out, quarantine_out)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    source = _checked(cli_validate.validation_source, data, cfg, config)
    paths = _prepare()
    from features.validation import QuarantineThresholdError, load_and_validate

    clock = cli_validate.utc_now()
    failure = None
    try:
        result = _run_guarded_validation(load_and_validate, source,
                                         cli_validate.validation_options(cfg, end_flag, max_quarantine_share, clock))
    except QuarantineThresholdError as exc:
        result, failure = exc.result, str(exc)
    target = quarantine_out or paths.quarantine / f"quarantine-{clock:%Y%m%dT%H%M%S}.parquet"
    written = None
    if not result.quarantine.empty:
        written = _run_guarded(_write_quarantine, result, target)
    if as_json:
        print(json.dumps(result.report_json(), indent=2))
    else:
        _print_report(result.report_json(), written)
    # --json: the tables' warnings are in the JSON; the rest go to stderr, keeping stdout parseable.
    _print_warnings({} if as_json else result.report_json(), result.warnings, stderr=as_json)
    if failure:
        _fail(failure, code=1)


def _write_quarantine(result, target: Path) -> Path:
    from pipelines.faults import writing

    with writing(target, "the quarantine file"):
        target.parent.mkdir(parents=True, exist_ok=True)
        return result.write_quarantine(target)


def _run_guarded_validation(load, data, options: dict):
    from features.validation import InputContractError

    try:
        return load(data, **options)
    except InputContractError as exc:
        _fail(str(exc))


def _print_report(report: dict, written: Path | None) -> None:
    grid = Table("table", "read", "accepted", "exact duplicates kept", "quarantined", "reasons", title="validation")
    for table, row in report.items():
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(row["reasons"].items(), key=lambda kv: -kv[1]))
        grid.add_row(table, f"{row['read']:,}", f"{row['accepted']:,}", f"{row['exact_duplicates_kept']:,}",
                     f"{row['quarantined']:,}", reasons or "-")
    console.print(grid)
    if any(row["exact_duplicates_kept"] for row in report.values()):
        console.print("exact duplicates kept: accepted lines identical to an earlier one (data.duplicate_lines: keep; "
                      "drop_exact quarantines them)")
    console.print(f"quarantined rows written to {written}" if written else "no row quarantined")


@app.command()
def features(
    data: Annotated[Path, typer.Option("--data", help="Folder of CSV/Parquet tables or a DuckDB file.")],
    as_of: Annotated[str, typer.Option("--as-of", help="YYYY-MM-DD: features see only rows before it.")],
    output: Annotated[Path, typer.Option("--output", help=".parquet or .csv")],
    config: ConfigOpt = None,
    allow_future_as_of: AllowFutureOpt = False,
) -> None:
    """Write the point-in-time feature table (one row per customer) for inspection."""
    day = _date(as_of)
    if day is None:
        _fail("--as-of '' is not a date; use YYYY-MM-DD, e.g. 2026-07-01")
    _checked(check_output_suffix, output, FRAME_SUFFIXES, "--output")  # what write_frame accepts, before any work
    _check_run_inputs(data, config)
    _prepare()
    from features.build import build_features
    from features.validation import load_and_validate
    from pipelines.arguments import check_as_of_within_data
    from pipelines.publishing import write_frame
    from pipelines.runs import RunRequest, resolve_config
    from pipelines.tasks import feature_spec, midnight, utc_now, with_chosen_attributes

    cfg = _run_guarded(resolve_config, RunRequest(data=str(data), config=str(config) if config else None))
    with console.status("validating and building features"):
        loaded = _run_guarded(load_and_validate, data, clock=utc_now(), max_quarantine_share=cfg.data.max_quarantine_share,
                              default_margin_rate=cfg.data.default_margin_rate, duplicate_lines=cfg.data.duplicate_lines,
                              plausibility=cfg.data.plausibility())
        _run_guarded(check_as_of_within_data, day, loaded.data_start, loaded.data_end, allow_future=allow_future_as_of)
        loaded = with_chosen_attributes(loaded, cfg)
        frame = build_features(loaded.tables, midnight(day), feature_spec(cfg))
        written = _run_guarded(write_frame, frame, output)
    _print_warnings(loaded.report_json(), loaded.warnings)
    _print_attributes(loaded.attributes.as_dict() if loaded.attributes else None)
    console.print(f"{len(frame):,} customers x {frame.shape[1] - 1} features as of {day} written to {written}")


def _tracking_while_api_boots(paths) -> None:
    """Set up MLflow (on a first run: create its database, ~5 s) while Prefect's API boots beside it."""
    _configure_tracking(paths)


def _configure_tracking(paths) -> None:
    """Point MLflow at the home's registry; a locked database is retried a few times, then one line."""
    from pipelines import tracking
    from pipelines.faults import mlflow_database_message, retry_while_locked

    _run_guarded(retry_while_locked,
                 lambda: tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts),
                 describe=lambda exc, waited: mlflow_database_message(exc, paths.tracking_uri, waited))


def _start_local_api(paths):
    """Check Prefect's database takes a write lock (bounded wait), then start its local API early."""
    from pipelines.local_api import check_prefect_database

    _run_guarded(check_prefect_database)
    return start_local_api_early()


@app.command()
def train(data: DataOpt = None, as_of: AsOfOpt = None, config: ConfigOpt = None,
          churn_horizon_days: ChurnH = None, value_horizon_days: ValueH = None,
          allow_future_as_of: AllowFutureOpt = False, wait: WaitOpt = False,
          engine: cli_engine.EngineOpt = None) -> None:
    """Retrain the churn and value models; print metrics beside baselines and the champion gate."""
    _check_run_flags(as_of, churn_horizon_days, value_horizon_days)
    cli_engine.use_engine(engine)
    _check_run_inputs(data, config)
    paths = _prepare()
    lock = _hold_home(paths, wait)
    local_api = _start_local_api(paths)
    from pipelines.cli_progress import stage_display
    from pipelines.flows import train_flow

    with lock, stage_display(console, "training: validate, build snapshots, fit, evaluate, register"):
        _tracking_while_api_boots(paths)
        with local_api:
            result = _run_guarded(train_flow, data=_s(data), as_of=as_of, config=_s(config),
                                  churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
                                  allow_future_as_of=allow_future_as_of, wait=wait)
    _print_warnings(result["report"], result.get("warnings", []))
    _print_attributes(result.get("attributes"))
    _print_training(result["training"])
    _print_where(paths)


@app.command()
def run(data: DataOpt = None, as_of: AsOfOpt = None, churn_horizon_days: ChurnH = None,
        value_horizon_days: ValueH = None, config: ConfigOpt = None,
        retrain: Annotated[bool, typer.Option("--retrain", help="Train even if champions exist.")] = False,
        allow_future_as_of: AllowFutureOpt = False, wait: WaitOpt = False,
        engine: cli_engine.EngineOpt = None) -> None:
    """The main job: validate, train when needed, score, explain, segment and publish."""
    _check_run_flags(as_of, churn_horizon_days, value_horizon_days)
    cli_engine.use_engine(engine)
    _check_run_inputs(data, config)
    paths = _prepare()
    lock = _hold_home(paths, wait)
    local_api = _start_local_api(paths)
    from pipelines.cli_progress import stage_display
    from pipelines.flows import retrain_and_score_flow

    with lock, stage_display(console, "running: validate, train (if needed), score, explain, publish"):
        _tracking_while_api_boots(paths)
        with local_api:
            result = _run_guarded(retrain_and_score_flow, data=_s(data), as_of=as_of, config=_s(config),
                                  churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
                                  retrain=retrain, allow_future_as_of=allow_future_as_of, wait=wait)
    _print_validation_line(result["report"], result.get("warnings", []))
    _print_attributes(result.get("attributes"))
    if result.get("registry"):
        console.print(f"[bold]registry[/] {result['registry']}", highlight=False, soft_wrap=True)
    if result["training"]:
        _print_training(result["training"])
    _print_published(result["published"])
    for line in cli_backtest.backtest_lines(result["published"]):
        console.print(line, highlight=False, soft_wrap=True)
    _print_where(paths)


def _hold_home(paths, wait: bool):
    """Take the home's run lock before Prefect boots, so a second run exits in milliseconds.

    Returns a context manager that releases it; the flow takes the same lock again (a no-op in
    this process) so that runs started by a schedule hold it too.
    """
    import contextlib

    from pipelines.home_lock import RunInProgressError, home_run_lock

    lock = home_run_lock(paths.root, wait=wait,
                         on_wait=lambda line: err.print(line, highlight=False, soft_wrap=True))
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(lock)
    except RunInProgressError as exc:
        _fail(str(exc))
    return stack


def _check_run_inputs(data: Path | None, config: Path | None) -> None:
    """A URL as data, a data path that does not exist or a config that does not load fails before the home,
    Prefect or MLflow."""
    _refuse_url_data(data)
    if data is not None and not data.exists():
        _fail(f"--data {data}: no such file or folder; give the folder of the tables or a DuckDB file")
    from pipelines.config import ConfigError, load_config

    try:
        load_config(config)
    except ConfigError as exc:
        _fail(str(exc))


def _check_run_flags(as_of: str | None, churn_horizon_days: int | None, value_horizon_days: int | None) -> None:
    """Malformed flags fail here, in milliseconds, before the environment, Prefect or the data."""
    _date(as_of)
    try:
        check_horizon_days(churn_horizon_days, "--churn-horizon-days")
        check_horizon_days(value_horizon_days, "--value-horizon-days")
    except RunArgumentError as exc:
        _fail(str(exc))


def _s(value) -> str | None:
    return str(value) if value is not None else None


def _print_validation_line(report: dict, general=()) -> None:
    console.print("[bold]data[/] " + "; ".join(_validation_part(t, r) for t, r in report.items()))
    _print_warnings(report, general)


def _print_warnings(report: dict, general=(), stderr: bool = False) -> None:
    """One 'warning' line per thing to check that stopped nothing: each table's (a stale table, a whale
    order), named with the table, then the data's own (a header-only table left out)."""
    lines = [f"{table}: {warning}" for table, row in report.items() for warning in row.get("warnings", ())]
    for line in [*lines, *general]:
        (err if stderr else console).print(f"[bold yellow]warning[/] {line}", highlight=False, soft_wrap=True)


def _print_attributes(attributes: dict | None) -> None:
    """'attributes kept: industry, region; not features: email (personal data: ...), churned (...)'."""
    if not attributes:
        return
    line = "[bold]attributes[/] kept: " + (", ".join(attributes["kept"]) or "none")
    if attributes["excluded"]:
        line += "; not features: " + "; ".join(f"{c} ({r})" for c, r in attributes["excluded"].items())
    console.print(line, highlight=False)


def _validation_part(table: str, row: dict) -> str:
    """'transactions: 98/100 accepted (3 exact duplicates kept, 2 quarantined)'."""
    notes = [f"{row['exact_duplicates_kept']:,} exact duplicates kept"] if row["exact_duplicates_kept"] else []
    notes += [f"{row['quarantined']:,} quarantined"] if row["quarantined"] else []
    return f"{table}: {row['accepted']:,}/{row['read']:,} accepted" + (f" ({', '.join(notes)})" if notes else "")


def _print_training(training: dict) -> None:
    grid = Table("model", "metric", "model", "baseline", "grade", "champion", title="models (out of time)")
    for kind, o in training.items():
        metric = "normalized_gini" if kind == "value" else "roc_auc"
        champion = f"v{o['version']} promoted" if o["promoted"] else f"v{o['version']} kept: {o['reason']}"
        grid.add_row(kind, metric, f"{o['metrics'][metric]:.3f}", f"{o['baseline_metrics'][metric]:.3f}", o["grade"], champion)
        keys = ("brier", "ece", "pr_auc", "top_decile_lift") if kind != "value" else ("spearman", "top_10pct_capture", "aggregate_bias_pct", "interval_coverage")
        for key in keys:
            if key in o["metrics"]:
                base = o["baseline_metrics"].get(key)
                grid.add_row("", key, f"{o['metrics'][key]:.3f}", f"{base:.3f}" if base is not None else "-", "", "")
    console.print(grid)
    for kind, o in training.items():
        if o.get("snapshots") or o.get("design"):
            console.print(f"[bold]{kind}[/] trained on {o.get('snapshots', '?')}; design {o.get('design', '?')}",
                          highlight=False)


def _print_published(published: dict) -> None:
    summary = Table("segment", "label", "customers", "share", "share of current value", "share of predicted value",
                    "mean p_churn", title=f"segments as of {published['as_of']} (run {published['run_id']})")
    for row in published["summary"]:
        if row["group_by"] != "segment":
            continue
        summary.add_row(row["group"], f"{row['label_en']} / {row['label_zh']}", f"{row['customers']:,}",
                        f"{row['share_customers']:.1%}", f"{row['share_current_value']:.1%}",
                        f"{row['share_predicted_value']:.1%}", "-" if row["mean_p_churn"] is None else f"{row['mean_p_churn']:.2f}")
    console.print(summary)
    versions = published["models"]
    console.print(f"[bold]models[/] churn v{versions['churn']['version']} (grade {versions['churn'].get('grade', '?')}), "
                  f"value v{versions['value']['version']} (grade {versions['value'].get('grade', '?')})")
    console.print(f"[bold]scores[/] {published['rows']:,} customers published to {published['store']}")
    console.print(cli_prospects.published_line(published.get("prospects")), highlight=False, soft_wrap=True)
    for line in cli_report.report_lines(published):
        console.print(line, highlight=False, soft_wrap=True)


def _print_where(paths) -> None:
    from pipelines.cli_hints import where_lines

    console.print(where_lines(redacted(paths.tracking_uri), paths.prefect), highlight=False, soft_wrap=True)


RunAsOfOpt = Annotated[str | None, typer.Option(
    "--as-of", help="Read the published run of this as-of date YYYY-MM-DD (default: the latest run).")]


@scores_app.command("export")
def scores_export(
    output: Annotated[Path, typer.Option("--output", help=".csv or .parquet")],
    as_of: RunAsOfOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    segment: Annotated[list[str] | None, typer.Option("--segment", help="Only this segment (repeat for several).")] = None,
    tier: Annotated[list[str] | None, typer.Option("--tier", help="Only this value tier A, B or C (repeat for several); customers without history have none.")] = None,
    columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated score columns, in this order.")] = None,
    excel: Annotated[bool, typer.Option("--excel", help="CSV for Excel: UTF-8 BOM, rounded numbers.")] = False,
) -> None:
    """Write a published score table (latest run by default), optionally some segments, tiers or columns."""
    from pipelines import cli_scores

    day = _date(as_of)
    _checked(cli_scores.check_export_flags, output)
    options = _checked(cli_scores.export_options, output, segment, tier, columns, excel)
    paths = _prepare()
    from serving.sink import open_sink

    store = open_sink(paths.store)
    try:
        run, rows = store.export(output, run_id=run_id, as_of=day, options=options)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{rows:,} of {run.score_rows:,} rows of run {run.run_id} (as of {run.as_of}) written to {output}")


@scores_app.command("show")
def scores_show(
    segment: Annotated[str | None, typer.Option("--segment", help="One segment, e.g. at_risk.")] = None,
    customer: Annotated[str | None, typer.Option("--customer")] = None,
    as_of: RunAsOfOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many customers, highest CLV first.")] = 20,
    lang: Annotated[str, typer.Option("--lang", help="en or zh")] = "en",
) -> None:
    """Print scores readably, by segment or for one customer."""
    from pipelines import cli_scores

    day = _date(as_of)
    _checked(cli_scores.check_show_flags, segment, lang, limit)
    paths = _prepare()
    from serving.sink import open_sink

    store = open_sink(paths.store)
    try:
        frame = store.read_scores(run_id=run_id, as_of=day, segment=segment, customer_id=customer)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    if frame.empty:
        run = store.run_metadata(run_id=run_id, as_of=day)
        _fail(cli_scores.no_match(segment, customer, f"run {run.run_id} (as of {run.as_of})"), code=1)
    console.print(cli_scores.scores_grid(frame, lang, limit))


def _checked(check, *args):
    """Run a flag check (pipelines/arguments.py and the cli_* modules); its refusal is one line and exit code 2."""
    try:
        return check(*args)
    except RunArgumentError as exc:
        _fail(str(exc))


def _date(text: str | None, option: str = "--as-of") -> date | None:
    """A YYYY-MM-DD flag as a date, or a one-line error naming the flag (exit code 2)."""
    try:
        return parse_day(text, option)
    except RunArgumentError as exc:
        _fail(str(exc))


@models_app.command("list")
def models_list() -> None:
    """Every registered version, newest first: as-of, date, metric beside the baseline, grade, aliases, gate decision."""
    paths = _prepare()
    from pipelines import cli_models, tracking

    _configure_tracking(paths)
    rows = [row for kind in tracking.REGISTERED_KINDS for row in tracking.registered_versions(kind)]
    if not rows:
        console.print(f"no registered model in {redacted(paths.tracking_uri)}; `custscore run` trains and registers them")
        return
    console.print(cli_models.versions_table(rows))


KindArg = Annotated[str, typer.Argument(help="churn, value, payment or prospect")]


@models_app.command("rollback")
def models_rollback(kind: KindArg) -> None:
    """Give the champion alias back to the champion before it (each rollback goes one further back)."""
    from pipelines import cli_models

    _checked(cli_models.check_kind, kind)
    paths = _prepare()
    from pipelines import tracking

    _configure_tracking(paths)
    with _hold_home(paths, wait=False):  # a run in progress must not see its champion pair change
        try:
            version = tracking.rollback_champion(kind)
        except ValueError as exc:
            _fail(str(exc))
    console.print(f"{tracking.model_name(kind)}: champion is now version {version}")


@models_app.command("promote")
def models_promote(
    kind: KindArg,
    version: Annotated[str, typer.Argument(help="The version number, as `custscore models list` shows it.")],
    force: Annotated[bool, typer.Option("--force", help="Also a version the champion gate did not promote.")] = False,
) -> None:
    """Make a registered version champion: it must exist, read back, and have passed the gate (or --force)."""
    from pipelines import cli_models

    _checked(cli_models.check_kind, kind)
    version = version.removeprefix("v")
    paths = _prepare()
    from pipelines import tracking

    _configure_tracking(paths)
    with _hold_home(paths, wait=False):
        try:
            before = tracking.promote_version(kind, version, force=force)
        except ValueError as exc:  # RegistryRefusal and ModelFileError: one line each
            _fail(str(exc))
    was = f"; v{before} is previous-champion (`custscore models rollback {kind}` undoes this)" if before else ""
    console.print(f"{tracking.model_name(kind)}: champion is now version {version}{was}", highlight=False)


@runs_app.command("list")
def runs_list() -> None:
    """Show the published runs, latest first: as-of date, run id, data source, model versions, customers, status."""
    paths = _prepare()
    from serving.sink import open_sink

    store = open_sink(paths.store)
    runs = store.list_runs()
    if runs.empty:
        console.print(f"no published run in {paths.store}; `custscore run` publishes one")
        return
    current = runs["run_id"].iloc[-1]  # list_runs is oldest first, by the store's own order of recency
    grid = Table("as of", "run id", "customers", "churn model", "value model", "data source", "published at (UTC)", "status",
                 title=f"published runs in {paths.store}")
    for r in runs.iloc[::-1].itertuples():
        grid.add_row(str(r.as_of), r.run_id, f"{r.score_rows:,}", _version(r.churn_model_version),
                     _version(r.value_model_version), escape(str((r.extra or {}).get("data_source") or "-")),
                     f"{r.published_at:%Y-%m-%d %H:%M:%S}", "current" if r.run_id == current else "published")
    console.print(grid)


def _version(version: str | None) -> str:
    return f"v{version}" if isinstance(version, str) and version else "-"


@runs_app.command("delete")
def runs_delete(
    run_id: Annotated[str, typer.Argument(help="The run id, as `custscore runs list` shows it.")],
    yes: Annotated[bool, typer.Option("--yes", help="Also delete the latest run (the only one included).")] = False,
) -> None:
    """Remove a published run from the store; the latest run only with --yes."""
    paths = _prepare()
    from serving.sink import open_sink
    from serving.store import LatestRunDeletionError, RunNotFoundError

    store = open_sink(paths.store)
    try:
        run = store.delete_run(run_id, allow_latest=yes)
    except RunNotFoundError as exc:
        _fail(str(exc))
    except LatestRunDeletionError as exc:
        _fail(f"{exc}. Nothing deleted; pass --yes to delete it", code=1)
    latest = store.latest_run()
    after = f"latest is now run {latest.run_id} (as of {latest.as_of})" if latest else "the store has no run left"
    console.print(f"deleted run {run.run_id} (as of {run.as_of}, {run.score_rows:,} rows); {after}", highlight=False)


runs_app.command("prune")(runs_prune)


@app.command()
def deploy(
    serve: Annotated[bool, typer.Option("--serve", help="Also serve the deployments (blocks; needs a Prefect server).")] = False,
    config: ConfigOpt = None,
    data: DataOpt = None,
) -> None:
    """Register deployments with the cron schedules of configs/ (retrain monthly, score daily)."""
    paths = _prepare()
    from pipelines.deployments import (
        build_deployments,
        register_deployments,
        scheduled_source,
        serve_deployments,
    )

    deployments = _run_guarded(build_deployments, config=_s(config), data=_s(data))
    console.print(scheduled_source(_s(config), _s(data)), highlight=False, soft_wrap=True)
    if serve:
        console.print(f"serving {len(deployments)} deployments; stop with Ctrl-C")
        serve_deployments(deployments)
        return
    ids = register_deployments(deployments)
    grid = Table("deployment", "schedule", "id", title="registered deployments")
    for dep, dep_id in zip(deployments, ids, strict=True):
        grid.add_row(dep.name, ", ".join(str(s.schedule.cron) for s in dep.schedules), str(dep_id))
    console.print(grid)
    from pipelines.cli_hints import prefect_server, tool

    console.print(f"Run them on a schedule: {prefect_server(paths.prefect)}, then "
                  f"`PREFECT_API_URL=http://127.0.0.1:4200/api {tool('custscore')} deploy --serve` in another shell.",
                  highlight=False, soft_wrap=True)


# These modules register their commands on the app defined above.
from pipelines.cli_accounts import register as register_accounts  # noqa: E402
from pipelines.cli_actions import register as register_actions  # noqa: E402
from pipelines.cli_credit import register as register_credit  # noqa: E402
from pipelines.cli_prospects import register as register_prospects  # noqa: E402

register_actions(app)
register_accounts(app)
register_credit(app)
register_prospects(app)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
