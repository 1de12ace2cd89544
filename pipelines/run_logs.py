"""The project's log records as the Prefect flow run's logs (the Logs tab of a run in the Prefect UI).

features, models, serving and pipelines log with `logging.getLogger(__name__)` and know nothing
of Prefect. While a flow runs, `to_flow_run_logs` gives their loggers Prefect's API log handler
(what Prefect's `logging.extra_loggers` setting does, but for the run only: that setting is read
once, when prefect is first imported, which a notebook or test may have done before custscore set
it). What a terminal shows is decided by the terminal's handler, not here: the command line's
handler stays at WARNING without --verbose, so its output does not change.

`record` is the run's own account (stages, counts, the outcome) for Prefect only: it does not
propagate, so the command line, which prints its own summary, does not print it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from prefect.logging.handlers import APILogHandler

from pipelines import progress
from pipelines.faults import redacted

PROJECT_LOGGERS = ("features", "models", "serving", "pipelines")
RECORD_LOGGER = "custscore.run"

record = logging.getLogger(RECORD_LOGGER)
record.propagate = False


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, with URL passwords redacted and records from outside a run dropped.

    A record from a thread without the run's context (a library's worker pool) has no flow run to
    belong to; Prefect's handler would print a warning about each.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redacted(super().format(record))

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get():
            super().emit(record)


@contextmanager
def to_flow_run_logs(level: int = logging.INFO) -> Iterator[None]:
    """Send the project's records of `level` and above, and the run record, to the flow run's logs."""
    handler = RunLogHandler(level=level)
    with ExitStack() as stack:
        for name in (*PROJECT_LOGGERS, RECORD_LOGGER):
            stack.enter_context(_handled_by(logging.getLogger(name), handler, level))
        stack.enter_context(progress.watching(log_stage_event))
        try:
            yield
        finally:
            flush_run_logs(handler)


@contextmanager
def _handled_by(logger: logging.Logger, handler: logging.Handler, level: int) -> Iterator[None]:
    """The logger sends to `handler` (unless Prefect's extra_loggers already gave it one) at `level` or finer."""
    already = any(isinstance(h, APILogHandler) for h in logger.handlers)
    previous = logger.level
    if not already:
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        if not already:
            logger.removeHandler(handler)
        logger.setLevel(previous)


def log_stage_event(event: progress.StageEvent) -> None:
    """One run-log line per stage started, counted, finished or failed."""
    if event.state == "counted":
        record.info("%s: %s %s so far", event.stage, f"{event.done:,}", event.unit)
    elif event.state == "failed":
        record.error("%s: failed", event.stage)
    else:
        record.info("%s: %s", event.stage, event.state)


def flush_run_logs(handler: logging.Handler) -> None:
    """Send the queued log records now (Prefect waits up to 5 s): the run's last lines must not wait for a batch."""
    try:
        handler.flush()
    except Exception as exc:  # noqa: BLE001 - losing log lines must not fail the run
        logging.getLogger(__name__).debug("could not flush the run's logs: %s", exc)
