"""`custscore backtest`: published runs against what their customers did, and the lines the run summary shows.

The command validates the data (as `run` does: `--data`, else the config's source, else the demo
data), then backtests one run (`--run-id`, measured again if it was before) or every run due, and
prints each one's figures beside the validation figures its models were promoted on. It needs no
Prefect: it is one process reading the store, the data and MLflow.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

RunIdOpt = Annotated[str | None, typer.Option(
    "--run-id", help="Backtest this published run (again, if it has a backtest); default: every run due.")]
DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Folder of CSV/Parquet tables or a DuckDB file holding the outcomes (default: as `run`).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config (default: configs/default.yaml).")]

# How each metric is printed: probabilities and shares with three decimals, money and percentages with one.
_FORMATS = {"aggregate_bias_pct": "{:+.1f}%", "revenue_per_customer": "{:,.1f}"}


def backtest(run_id: RunIdOpt = None, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Compare published runs whose horizons have passed with what their customers then did."""
    from pipelines import cli

    cli._check_run_inputs(data, config)
    paths = cli._prepare()
    cli._configure_tracking(paths)
    from pipelines.backtesting import BacktestNotDueError, backtest_published_run, due_runs
    from pipelines.runs import RunRequest, resolve_config
    from pipelines.sinks import configured_sinks
    from serving.backtest import BacktestDataError

    cfg = cli._run_guarded(resolve_config, RunRequest(data=cli._s(data), config=cli._s(config)))
    sinks = configured_sinks(cfg, paths)
    sink, mirrors = sinks[0].sink, sinks[1:]
    if sink.list_runs().empty:
        cli._fail(f"no published run in {paths.store}; `custscore run` publishes one", code=1)
    with cli.console.status("validating the data"):
        loaded = cli._run_guarded(load_outcome_data, cfg, paths)
    try:
        runs = [sink.run_metadata(run_id=run_id)] if run_id else due_runs(sink, loaded, cfg)
    except LookupError as exc:
        cli._fail(str(exc))
    if not runs:
        cli.console.print(nothing_due_line(sink, loaded, cfg), highlight=False, soft_wrap=True)
        return
    for run in runs:
        try:
            with cli.console.status(f"backtesting run {run.run_id}"):
                result = cli._run_guarded(backtest_published_run, sink, run, loaded, cfg, mirrors)
        except (BacktestNotDueError, BacktestDataError) as exc:
            cli._fail(str(exc), code=1)
        cli.console.print(metrics_grid(result))
        groups = groups_grid(result.table, "segment")
        if groups is not None:
            cli.console.print(groups)
        cli._print_warnings({}, result.warnings)
    cli.console.print(f"stored with each run as its `backtest` table ({paths.store}); MLflow runs in the models' "
                      "experiments, named `backtest of <run id>`", highlight=False, soft_wrap=True)


def load_outcome_data(cfg, paths):
    """The validated data the outcomes are read from, as a run would validate it (no Prefect task run)."""
    from pipelines import tasks

    source = tasks.ensure_demo_data.fn(paths, cfg) if cfg.data.source is None else Path(cfg.data.source)
    return tasks.load_data.fn(source, cfg, paths, tasks.utc_now())


def nothing_due_line(sink, data, cfg) -> str:
    """'no published run is due ...', naming when the newest run's first window ends."""
    from pipelines.backtesting import run_window

    newest = sink.run_metadata()
    window = run_window(newest, data, cfg)
    ends = ", ".join(f"{score} window ends {window.window_end(score):%Y-%m-%d}" for score in ("churn", "value"))
    return (f"no published run is due for a backtest: each has a backtest of every horizon passed, or none passed "
            f"(data to {window.data_end - timedelta(days=1):%Y-%m-%d}); the newest, run {newest.run_id} as of "
            f"{newest.as_of}: {ends}")


def metrics_grid(result) -> Table:
    """Each score's whole-population figures beside the validation figures its model was promoted on."""
    table = result.table
    overall = table.loc[table["group_by"] == "all"]
    grid = Table("score", "metric", "realised", "at validation", "customers", "status",
                 title=f"backtest of run {result.run_id} (as of {result.as_of}), data to {table['data_end'].iloc[0]}")
    for row in overall.itertuples():
        status = row.status if row.status == "measured" else f"pending until {row.window_end}"
        grid.add_row(row.score, row.metric, _figure(row.metric, row.value), _figure(row.metric, row.validation),
                     f"{row.customers:,}", status)
    return grid


def groups_grid(table, group_by: str) -> Table | None:
    """Per segment (or value tier): customers, predicted vs realised churn and revenue per customer."""
    rows = table.loc[(table["group_by"] == group_by)]
    if rows.empty:
        return None
    grid = Table(group_by, "customers", "p_churn predicted", "churned", "revenue predicted", "revenue realised",
                 title=f"by {group_by}: predicted against realised")
    for group in sorted(rows["group"].unique()):
        churn = rows.loc[(rows["group"] == group) & (rows["score"] == "churn")]
        value = rows.loc[(rows["group"] == group) & (rows["score"] == "value")]
        customers = (churn if not churn.empty else value)["customers"].iloc[0]
        grid.add_row(group, f"{customers:,}", *_pair(churn, "{:.3f}"), *_pair(value, "{:,.1f}"))
    return grid


def _pair(rows, fmt: str) -> tuple[str, str]:
    if rows.empty:
        return "pending", "pending"
    return fmt.format(rows["predicted"].iloc[0]), fmt.format(rows["realised"].iloc[0])


def _figure(metric: str, value: float) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return _FORMATS.get(metric, "{:.3f}").format(value)


def backtest_lines(published: dict) -> list[str]:
    """The run summary's line per run a flow backtested: each score's headline beside its validation figure."""
    from serving.backtest import headline_text

    return [f"[bold]backtest[/] run {b['run_id']} (as of {b['as_of']}): {headline_text(b['scores'])}"
            for b in published.get("backtests", [])]
