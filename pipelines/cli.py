"""The `custscore` command line (Typer + Rich). Presentation only: the work is in flows and layers.

Prefect reads its settings when first imported, so every command prepares the home folder
and the environment before it imports anything that imports prefect.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from pipelines.arguments import RunArgumentError, check_horizon_days, parse_day
from pipelines.local_api import start_local_api_early

app = typer.Typer(help="custscore: customer value, churn and segments with reasons.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
scores_app = typer.Typer(help="Read published score tables.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models: champions and rollback.", no_args_is_help=True)
runs_app = typer.Typer(help="Published scoring runs: list and delete.", no_args_is_help=True)
app.add_typer(scores_app, name="scores")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")

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
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    for name in ("features", "models", "serving", "pipelines"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # Library chatter (MLflow's pickling notes, Prefect's per-task lines) hides the summary.
    for name in ("mlflow", "prefect", "py.warnings"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    logging.captureWarnings(not verbose)
    # Prefect reads this when first imported (after this callback): a failed flow's traceback
    # would bury the one-line error the CLI prints; --verbose shows it.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")


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


def _fail(message: str, code: int = 2) -> None:
    # soft_wrap: one line however narrow the terminal or pipe, so logs can be grepped line by line.
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    from features.validation import InputContractError, QuarantineThresholdError
    from models.model_files import ModelFileError
    from pipelines.arguments import AsOfOutsideDataError
    from pipelines.config import ConfigError
    from pipelines.home_lock import RunInProgressError
    from pipelines.publishing import NoChampionError
    from pipelines.runs import LostRegistryError
    from pipelines.training import TrainingDataError

    errors: list[type[BaseException]] = [InputContractError, QuarantineThresholdError, ConfigError, NoChampionError,
                                         AsOfOutsideDataError, RunArgumentError, RunInProgressError,
                                         LostRegistryError, TrainingDataError, ModelFileError]
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

    traceback.clear_frames(exc.__traceback__)
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


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option("--customers", min=1, help="Number of customers.")] = 5000,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-data"),
    seed: Annotated[int, typer.Option("--seed")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    end: Annotated[str | None, typer.Option("--end", help="Last day of history YYYY-MM-DD.")] = None,
) -> None:
    """Write a realistic demo world (transactions, customers, invoices, interactions)."""
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
    data: Annotated[Path, typer.Option("--data", help="Folder of CSV/Parquet tables or a DuckDB file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quarantine_out: Annotated[Path | None, typer.Option("--quarantine-out", help="Where to write rejected rows.")] = None,
    data_end: Annotated[str | None, typer.Option("--data-end", help="Rows after this date are future (default: the config's data.data_end).")] = None,
    max_quarantine_share: Annotated[float | None, typer.Option("--max-quarantine-share", help="Default: the config's data.max_quarantine_share.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check the input tables; print rows read, accepted and quarantined by reason."""
    end_flag = _date(data_end, "--data-end")
    from features.validation import QuarantineThresholdError, load_and_validate
    from pipelines.config import load_config
    from pipelines.tasks import utc_now

    paths = _prepare()
    cfg = _run_guarded(load_config, config)
    clock = utc_now()
    end_day = end_flag or cfg.data.data_end
    end = datetime.combine(end_day, datetime.min.time()) if end_day else None
    share = cfg.data.max_quarantine_share if max_quarantine_share is None else max_quarantine_share
    failure = None
    try:
        result = _run_guarded_validation(load_and_validate, data, clock, end, share, cfg.data.duplicate_lines,
                                         cfg.data.plausibility())
    except QuarantineThresholdError as exc:
        result, failure = exc.result, str(exc)
    target = quarantine_out or paths.quarantine / f"quarantine-{clock:%Y%m%dT%H%M%S}.parquet"
    written = None
    if not result.quarantine.empty:
        target.parent.mkdir(parents=True, exist_ok=True)
        written = result.write_quarantine(target)
    if as_json:
        print(json.dumps(result.report_json(), indent=2))
    else:
        _print_report(result.report_json(), written)
    _print_warnings(result.warnings, stderr=as_json)  # --json keeps stdout parseable
    if failure:
        _fail(failure, code=1)


def _run_guarded_validation(load, data, clock, end, share, duplicate_lines, plausibility):
    from features.validation import InputContractError

    try:
        return load(data, clock=clock, data_end=end, max_quarantine_share=share, duplicate_lines=duplicate_lines,
                    plausibility=plausibility)
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
    _print_data_warnings(report)


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
    _prepare()
    from features.build import build_features
    from features.validation import load_and_validate
    from pipelines.arguments import check_as_of_within_data
    from pipelines.publishing import write_frame
    from pipelines.runs import RunRequest, resolve_config
    from pipelines.tasks import feature_spec, midnight, utc_now, with_chosen_attributes

    if output.suffix not in (".parquet", ".csv"):
        _fail(f"{output}: unsupported output format {output.suffix!r}; use .parquet or .csv")
    cfg = _run_guarded(resolve_config, RunRequest(data=str(data), config=str(config) if config else None))
    with console.status("validating and building features"):
        loaded = _run_guarded(load_and_validate, data, clock=utc_now(), max_quarantine_share=cfg.data.max_quarantine_share,
                              default_margin_rate=cfg.data.default_margin_rate, duplicate_lines=cfg.data.duplicate_lines,
                              plausibility=cfg.data.plausibility())
        _run_guarded(check_as_of_within_data, day, loaded.data_start, loaded.data_end, allow_future=allow_future_as_of)
        loaded = with_chosen_attributes(loaded, cfg)
        frame = build_features(loaded.tables, midnight(day), feature_spec(cfg))
        written = _run_guarded(write_frame, frame, output)
    _print_data_warnings(loaded.report_json())
    _print_warnings(loaded.warnings)
    _print_attributes(loaded.attributes.as_dict() if loaded.attributes else None)
    console.print(f"{len(frame):,} customers x {frame.shape[1] - 1} features as of {day} written to {written}")


def _tracking_while_api_boots(paths) -> None:
    """Set up MLflow (on a first run: create its database, ~5 s) while Prefect's API boots beside it."""
    from pipelines import tracking

    _run_guarded(tracking.configure_tracking, paths.tracking_uri, paths.mlflow_artifacts)


@app.command()
def train(data: DataOpt = None, as_of: AsOfOpt = None, config: ConfigOpt = None,
          churn_horizon_days: ChurnH = None, value_horizon_days: ValueH = None,
          allow_future_as_of: AllowFutureOpt = False, wait: WaitOpt = False) -> None:
    """Retrain the churn and value models; print metrics beside baselines and the champion gate."""
    _check_run_flags(as_of, churn_horizon_days, value_horizon_days)
    paths = _prepare()
    lock = _hold_home(paths, wait)
    local_api = start_local_api_early()
    from pipelines.flows import train_flow

    with lock, console.status("training (validate, build snapshots, fit, evaluate, register)"):
        _tracking_while_api_boots(paths)
        with local_api:
            result = _run_guarded(train_flow, data=_s(data), as_of=as_of, config=_s(config),
                                  churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
                                  allow_future_as_of=allow_future_as_of, wait=wait)
    _print_data_warnings(result["report"])
    _print_warnings(result.get("warnings", []))
    _print_attributes(result.get("attributes"))
    _print_training(result["training"])
    _print_where(paths)


@app.command()
def run(data: DataOpt = None, as_of: AsOfOpt = None, churn_horizon_days: ChurnH = None,
        value_horizon_days: ValueH = None, config: ConfigOpt = None,
        retrain: Annotated[bool, typer.Option("--retrain", help="Train even if champions exist.")] = False,
        allow_future_as_of: AllowFutureOpt = False, wait: WaitOpt = False) -> None:
    """The main job: validate, train when needed, score, explain, segment and publish."""
    _check_run_flags(as_of, churn_horizon_days, value_horizon_days)
    paths = _prepare()
    lock = _hold_home(paths, wait)
    local_api = start_local_api_early()
    from pipelines.flows import retrain_and_score_flow

    with lock, console.status("running: validate -> features -> train (if needed) -> score -> explain -> publish"):
        _tracking_while_api_boots(paths)
        with local_api:
            result = _run_guarded(retrain_and_score_flow, data=_s(data), as_of=as_of, config=_s(config),
                                  churn_horizon_days=churn_horizon_days, value_horizon_days=value_horizon_days,
                                  retrain=retrain, allow_future_as_of=allow_future_as_of, wait=wait)
    _print_validation_line(result["report"])
    _print_warnings(result.get("warnings", []))
    _print_attributes(result.get("attributes"))
    if result.get("registry"):
        console.print(f"[bold]registry[/] {result['registry']}", highlight=False, soft_wrap=True)
    if result["training"]:
        _print_training(result["training"])
    _print_published(result["published"])
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


def _print_validation_line(report: dict) -> None:
    console.print("[bold]data[/] " + "; ".join(_validation_part(t, r) for t, r in report.items()))
    _print_data_warnings(report)


def _print_data_warnings(report: dict) -> None:
    """One 'warning' line per thing to check in data that passed validation (a stale table, a whale order)."""
    for table, row in report.items():
        for warning in row.get("warnings", ()):
            console.print(f"[bold yellow]warning[/] {table}: {warning}", highlight=False, soft_wrap=True)


def _print_warnings(warnings: list[str], stderr: bool = False) -> None:
    """One 'warning' line each: what the data lacked that stopped nothing (e.g. a header-only table)."""
    for warning in warnings:
        (err if stderr else console).print(f"[bold yellow]warning[/] {warning}", highlight=False, soft_wrap=True)


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
        metric = "roc_auc" if kind == "churn" else "normalized_gini"
        champion = f"v{o['version']} promoted" if o["promoted"] else f"v{o['version']} kept: {o['reason']}"
        grid.add_row(kind, metric, f"{o['metrics'][metric]:.3f}", f"{o['baseline_metrics'][metric]:.3f}", o["grade"], champion)
        keys = ("brier", "ece", "pr_auc", "top_decile_lift") if kind == "churn" else ("spearman", "top_10pct_capture", "aggregate_bias_pct", "interval_coverage")
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


def _print_where(paths) -> None:
    console.print(
        f"[bold]MLflow UI[/]  mlflow ui --backend-store-uri {paths.tracking_uri}  (then http://127.0.0.1:5000)\n"
        f"[bold]Prefect UI[/] PREFECT_HOME={paths.prefect} prefect server start  (then http://127.0.0.1:4200)\n"
        f"[bold]export[/]     custscore scores export --output scores.csv",
        highlight=False,
    )


@scores_app.command("export")
def scores_export(
    output: Annotated[Path, typer.Option("--output", help=".csv or .parquet")],
    as_of: AsOfOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
) -> None:
    """Write a published score table (latest run by default)."""
    paths = _prepare()
    from serving.store import ScoreStore

    store = ScoreStore(paths.store)
    try:
        run = store.export_scores(output, run_id=run_id, as_of=_date(as_of))
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{run.score_rows:,} rows of run {run.run_id} (as of {run.as_of}) written to {output}")


@scores_app.command("show")
def scores_show(
    segment: Annotated[str | None, typer.Option("--segment")] = None,
    customer: Annotated[str | None, typer.Option("--customer")] = None,
    as_of: AsOfOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    lang: Annotated[str, typer.Option("--lang", help="en or zh")] = "en",
) -> None:
    """Print scores readably, by segment or for one customer."""
    paths = _prepare()
    from serving.store import ScoreStore

    store = ScoreStore(paths.store)
    try:
        frame = store.read_scores(run_id=run_id, as_of=_date(as_of), segment=segment, customer_id=customer)
    except (LookupError, ValueError) as exc:
        _fail(str(exc))
    if frame.empty:
        _fail("no matching customer in that run", code=1)
    frame = frame.sort_values("clv", ascending=False, na_position="last").head(limit)
    label = "segment_label_zh" if lang == "zh" else "segment_label_en"
    text = "reason_text_zh" if lang == "zh" else "reason_text_en"
    grid = Table("customer", "segment", "tier", "p_churn", "exp. revenue", "net value", "CLV", "P10-P90", "reasons",
                 title=f"scores as of {frame['as_of'].iloc[0]} (run {frame['run_id'].iloc[0]})", show_lines=True)
    for r in frame.itertuples():
        grid.add_row(r.customer_id, getattr(r, label), r.value_tier or "-", _num(r.p_churn, "{:.2f}"),
                     _num(r.expected_revenue), _num(r.net_value), _num(r.clv),
                     f"{_num(r.value_p10)} - {_num(r.value_p90)}", getattr(r, text))
    console.print(grid)


def _num(x, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _date(text: str | None, option: str = "--as-of") -> date | None:
    """A YYYY-MM-DD flag as a date, or a one-line error naming the flag (exit code 2)."""
    try:
        return parse_day(text, option)
    except RunArgumentError as exc:
        _fail(str(exc))


@models_app.command("list")
def models_list() -> None:
    """Show the champion and previous champion of each model kind."""
    paths = _prepare()
    from pipelines import tracking

    tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts)
    grid = Table("model", "alias", "version", "run id")
    for kind in tracking.MODEL_KINDS:
        for alias, mv in tracking.aliased_versions(kind).items():
            grid.add_row(tracking.model_name(kind), alias, mv.version if mv else "-", mv.run_id if mv else "-")
    console.print(grid)


@models_app.command("rollback")
def models_rollback(kind: Annotated[str, typer.Argument(help="churn or value")]) -> None:
    """Give the champion alias back to the previous champion."""
    paths = _prepare()
    from pipelines import tracking

    tracking.configure_tracking(paths.tracking_uri, paths.mlflow_artifacts)
    with _hold_home(paths, wait=False):  # a run in progress must not see its champion pair change
        try:
            version = tracking.rollback_champion(kind)
        except ValueError as exc:
            _fail(str(exc))
    console.print(f"{tracking.model_name(kind)}: champion is now version {version}")


@runs_app.command("list")
def runs_list() -> None:
    """Show the published runs, latest first: as-of date, run id, rows, model versions, when published."""
    paths = _prepare()
    from serving.store import ScoreStore

    store = ScoreStore(paths.store)
    runs = store.list_runs()
    if runs.empty:
        console.print(f"no published run in {paths.store}; `custscore run` publishes one")
        return
    latest = runs["run_id"].iloc[-1]  # list_runs is oldest first, by the store's own order of recency
    grid = Table("as of", "run id", "rows", "churn model", "value model", "published at (UTC)", "",
                 title=f"published runs in {paths.store}")
    for r in runs.iloc[::-1].itertuples():
        grid.add_row(str(r.as_of), r.run_id, f"{r.score_rows:,}", _version(r.churn_model_version),
                     _version(r.value_model_version), f"{r.published_at:%Y-%m-%d %H:%M:%S}",
                     "latest" if r.run_id == latest else "")
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
    from serving.store import LatestRunDeletionError, RunNotFoundError, ScoreStore

    store = ScoreStore(paths.store)
    try:
        run = store.delete_run(run_id, allow_latest=yes)
    except RunNotFoundError as exc:
        _fail(str(exc))
    except LatestRunDeletionError as exc:
        _fail(f"{exc}. Nothing deleted; pass --yes to delete it", code=1)
    latest = store.latest_run()
    after = f"latest is now run {latest.run_id} (as of {latest.as_of})" if latest else "the store has no run left"
    console.print(f"deleted run {run.run_id} (as of {run.as_of}, {run.score_rows:,} rows); {after}", highlight=False)


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
        serve_deployments,
    )

    deployments = _run_guarded(build_deployments, config=_s(config), data=_s(data))
    if serve:
        console.print(f"serving {len(deployments)} deployments; stop with Ctrl-C")
        serve_deployments(deployments)
        return
    ids = register_deployments(deployments)
    grid = Table("deployment", "schedule", "id", title="registered deployments")
    for dep, dep_id in zip(deployments, ids, strict=True):
        grid.add_row(dep.name, ", ".join(str(s.schedule.cron) for s in dep.schedules), str(dep_id))
    console.print(grid)
    console.print(f"Run them on a schedule: PREFECT_HOME={paths.prefect} prefect server start, then "
                  f"`custscore deploy --serve` in another shell (PREFECT_API_URL=http://127.0.0.1:4200/api).")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
