"""A message when an unattended run failed or finished degraded, through a saved Prefect notification block.

The block (Slack, Microsoft Teams, e-mail, a custom webhook...) is made once in the Prefect UI
or in Python and named in the config (`alerts.block`); custscore only loads it and calls
`notify`. No block configured: no message and no error. A message that cannot be sent is a
warning of the run, never its failure: the run's work is done by then.
"""

from __future__ import annotations

import logging

from pipelines.config import AlertsConfig
from pipelines.faults import redacted
from pipelines.run_outcome import RunOutcome

log = logging.getLogger(__name__)

MAX_LISTED_WARNINGS = 10  # a chat message, not the summary: the rest is counted


def should_notify(alerts: AlertsConfig, state: str) -> bool:
    return alerts.block is not None and state in alerts.notify_on


def alert_subject(outcome: RunOutcome, state: str) -> str:
    return f"custscore {outcome.flow} run {state}: {outcome.name}"


def alert_body(outcome: RunOutcome, state: str, alerts: AlertsConfig, run_url: str | None = None) -> str:
    """The run's name, why it failed or which warnings made it degraded, and where to look."""
    lines = [f"Flow run: {outcome.name}"]
    if outcome.as_of:
        lines.append(f"As of: {outcome.as_of}; data: {outcome.source or '-'}")
    if state == "failed":
        lines.append(f"Reason: {outcome.error}")
    else:
        degrading = outcome.degrading(alerts.degraded_by)
        lines.append(f"Reason: finished with {len(degrading)} warning(s) of kinds {', '.join(alerts.degraded_by)}:")
        lines += [f"- {w.kind}: {w.message}" for w in degrading[:MAX_LISTED_WARNINGS]]
        if len(degrading) > MAX_LISTED_WARNINGS:
            lines.append(f"- and {len(degrading) - MAX_LISTED_WARNINGS} more (see the run's summary artifact)")
    lines.append(f"Logs and summary: {run_url}" if run_url else
                 "Logs and summary: the flow run in the Prefect UI (Runs, then this name)")
    return redacted("\n".join(lines))


def load_notification_block(slug: str):
    """The saved block `<type>/<name>`; it must be a notification block (it has `notify`)."""
    import prefect.blocks.notifications  # noqa: F401 - registers Prefect's notification block types
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import NotificationBlock

    block = Block.load(slug)
    if not isinstance(block, NotificationBlock) and not callable(getattr(block, "notify", None)):
        raise TypeError(f"Prefect block {slug} is a {type(block).__name__}, not a notification block; "
                        "set alerts.block to a Slack, Teams, e-mail or custom webhook block")
    return block


def send_alert(outcome: RunOutcome, state: str, alerts: AlertsConfig, run_url: str | None = None) -> str | None:
    """Send the message if the config asks for one in this state; returns why it could not be sent, or None."""
    if not should_notify(alerts, state):
        return None
    try:
        block = load_notification_block(alerts.block)
        block.notify(alert_body(outcome, state, alerts, run_url), subject=alert_subject(outcome, state))
    except Exception as exc:  # noqa: BLE001 - any failure to alert is reported, never raised
        problem = (f"could not send the {state} alert through Prefect block {alerts.block}: "
                   f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}; check the block in the Prefect UI (Blocks)")
        return redacted(problem)
    log.info("%s alert sent through Prefect block %s", state, alerts.block)
    return None
