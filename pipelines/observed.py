"""What an unattended flow run leaves for the people who did not watch it.

A readable name (`score 2026-09-30 demo`), its logs in Prefect, its summary as a Prefect artifact,
and a message through the configured notification block when it failed or finished degraded.
The flows of pipelines/flows.py run their work inside `observed_run`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines import alerts, run_summary
from pipelines.config import AlertsConfig
from pipelines.faults import redacted
from pipelines.run_logs import record, to_flow_run_logs
from pipelines.run_outcome import RunOutcome, collecting, warnings_of_result

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo"


def source_name(data: str | Path | None) -> str:
    """The data source in a run name: the folder or file name, or `demo` for the bundled demo data."""
    if data is None or str(data) == "":
        return DEMO_SOURCE
    return redacted(Path(str(data)).name or str(data))


def readable_name(flow: str, as_of: str | None, data: str | Path | None) -> str:
    """`score 2026-09-30 demo`: flow, as-of date (`latest` until the data fixes it) and data source."""
    return f"{flow} {as_of or 'latest'} {source_name(data)}"


def flow_run_name(flow: str) -> Callable[[], str]:
    """Prefect's `flow_run_name` for a flow: the readable name from the run's parameters."""

    def name() -> str:
        from prefect.runtime import flow_run

        parameters = flow_run.parameters or {}
        return readable_name(flow, parameters.get("as_of"), parameters.get("data"))

    return name


def _flow_run():
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run if context is not None else None


def note_resolved(as_of, source: str | Path | None) -> None:
    """The run knows its as-of date and data: rename the flow run (the default as-of is known only now)."""
    from pipelines.run_outcome import current

    outcome = current()
    if outcome is None:
        return
    outcome.as_of, outcome.source = str(as_of), source_name(source)
    name = readable_name(outcome.flow, outcome.as_of, source)
    if name == outcome.name:
        return
    flow_run = _flow_run()
    if flow_run is not None:
        try:
            from prefect import get_client

            with get_client(sync_client=True) as client:
                client.update_flow_run(flow_run.id, name=name)
        except Exception as exc:  # noqa: BLE001 - a name is worth a log line, not a failed run
            record.warning("could not rename the flow run to %r: %s", name, exc)
            return
    outcome.name = name


@contextmanager
def observed_run(flow: str, config: str | None) -> Iterator[RunOutcome]:
    """Run the block as one observed flow run; `finished(outcome, result)` records what it returned.

    On the way out, success or failure: the summary artifact, then the alert if one is due.
    """
    flow_run = _flow_run()
    outcome = RunOutcome(flow, name=flow_run.name if flow_run is not None else flow)
    with to_flow_run_logs(), collecting(outcome):
        record.info("%s run %s started", flow, outcome.name)
        try:
            yield outcome
        except BaseException as exc:
            outcome.error = one_line(exc)
            record.error("%s run failed: %s", flow, outcome.error, exc_info=True)
            conclude(outcome, None, config)
            raise
        conclude(outcome, outcome.result, config)


def finished(outcome: RunOutcome, result: dict[str, Any]) -> dict[str, Any]:
    """Record the flow's result: the warnings it holds join the run's, and the result gains them."""
    for warning in warnings_of_result(result):
        if warning not in outcome.warnings:
            record.warning("%s: %s", warning.kind, warning.message)
        outcome.add(warning.kind, warning.message)
    outcome.result = result
    result["flow_run_name"] = outcome.name
    result["run_warnings"] = [w.as_dict() for w in outcome.warnings]
    return result


def conclude(outcome: RunOutcome, result: dict | None, config: str | None) -> None:
    """Decide the state, send the alert if due, write the summary artifact; none of it can fail the run."""
    settings = alerts_settings(config)
    state = outcome.state(settings.degraded_by)
    _log_counts(result)
    problem = alerts.send_alert(outcome, state, settings, run_url())
    if problem:
        outcome.add("notify", problem)
        record.warning("notify: %s", problem)
    if result is not None:
        result["outcome"] = state
        result["run_warnings"] = [w.as_dict() for w in outcome.warnings]
    record.info("%s run %s: %s with %d warning(s)", outcome.flow, outcome.name, state, len(outcome.warnings))
    try:
        run_summary.publish_summary(outcome, state, result)
    except Exception as exc:  # noqa: BLE001 - the summary is a view of the run, not the run
        record.warning("could not write the summary artifact: %s", exc)


def alerts_settings(config: str | None) -> AlertsConfig:
    """The config's `alerts:` section; a config that cannot be read (the run's failure, maybe) alerts nobody."""
    from pipelines.config import load_config

    try:
        return load_config(Path(config) if config else None).alerts
    except Exception as exc:  # noqa: BLE001 - the run already reports this error itself
        record.warning("no alert settings: the config could not be read (%s)", one_line(exc))
        return AlertsConfig()


def run_url() -> str | None:
    """The flow run's page in the Prefect UI, where Prefect knows its UI's address."""
    try:
        from prefect.runtime import flow_run

        return flow_run.ui_url
    except Exception:  # noqa: BLE001 - no UI address: the message says where to look instead
        return None


def one_line(exc: BaseException) -> str:
    """The error as the command line shows it: its message on one line (its type when it has none)."""
    return redacted(" ".join(str(exc).split()) or type(exc).__name__)


def _log_counts(result: dict | None) -> None:
    """The run's counts as log lines: rows per table, models, customers scored."""
    if not result:
        return
    for table, row in (result.get("report") or {}).items():
        record.info("data %s: %s read, %s accepted, %s quarantined", table, f"{row['read']:,}",
                    f"{row['accepted']:,}", f"{row['quarantined']:,}")
    for kind, trained in (result.get("training") or {}).items():
        record.info("model %s v%s: grade %s, %s", kind, trained["version"], trained.get("grade"),
                    "promoted" if trained.get("promoted") else f"not promoted ({trained.get('reason')})")
    published = result.get("published")
    if published:
        segments = ", ".join(f"{row['group']} {row['customers']:,}" for row in published.get("summary", ())
                             if row.get("group_by") == "segment")
        record.info("published run %s: %s customers scored (%s)", published["run_id"], f"{published['rows']:,}", segments)
