"""`custscore report`: the HTML report of any published run, and the report lines of the run summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipelines.arguments import RunArgumentError
from pipelines.report_text import LANGUAGES

HTML_SUFFIXES = (".html", ".htm")


def check_report_flags(lang: str, output: Path | None) -> None:
    """A language the report is not written in, or an output that is not .html, fails before any work."""
    if lang not in LANGUAGES:
        raise RunArgumentError(f"--lang {lang!r}: the report is written in {' or '.join(LANGUAGES)}; pass one of them")
    if output is not None and output.suffix.lower() not in HTML_SUFFIXES:
        raise RunArgumentError(f"--output {output}: the report is an HTML file; give a name ending in .html")


def report(
    run_id: Annotated[str | None, typer.Option("--run-id", help="A published run (default: the latest), as `custscore runs list` shows it.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="The .html file (default: <home>/reports/<run_id>.<lang>.html).")] = None,
    lang: Annotated[str, typer.Option("--lang", help="en or zh")] = "en",
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (default: configs/default.yaml): the report's settings and segment rules.")] = None,
) -> None:
    """Write the HTML report of a published run: one self-contained file, no network needed to open it."""
    from pipelines.cli import _checked, _configure_tracking, _fail, _prepare, console

    _checked(check_report_flags, lang, output)
    paths = _prepare()
    from pipelines.config import ConfigError, load_config
    from pipelines.run_report import report_path, write_reports
    from serving.sink import open_sink

    sink = open_sink(paths.store)
    try:
        cfg = load_config(config)
        run = sink.run_metadata(run_id)
    except (ConfigError, LookupError) as exc:
        _fail(str(exc))
    # The validation figures the champions were promoted on live in MLflow; a home without a registry
    # has none to read, and the report should not create one.
    tracked = bool(os.environ.get("MLFLOW_TRACKING_URI")) or paths.mlflow_db.exists()
    if tracked:
        _configure_tracking(paths)
    target = output or report_path(paths.root, run.run_id, lang)
    with console.status(f"writing the report of run {run.run_id}"):
        written = write_reports(sink, run.run_id, cfg, {lang: target}, with_validation=tracked)[lang]
    console.print(f"report of run {run.run_id} (as of {run.as_of}) written to {written}", highlight=False, soft_wrap=True)


def report_lines(published: dict) -> list[str]:
    """The run summary's lines about the run's reports: where they are, or why there is none."""
    if published.get("reports"):
        return [f"[bold]report[/] {path}" for path in published["reports"].values()]
    if published.get("report_error"):
        return [f"[bold yellow]warning[/] no report written: {published['report_error']}; "
                f"`custscore report --run-id {published['run_id']}` tries again"]
    return []
