"""A flow run's outcome: one list of warnings anything in the run can add to, and the verdict.

Any step of a flow (validation, training, a backtest, drift) calls `add_warning(kind, message)`;
the flow's summary, its Prefect artifact and its alert read the same list. Outside a flow run
(a test calling a task's function, a notebook) the warning is only logged.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.config import WARNING_KINDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunWarning:
    """Something a person should check although the run finished: its kind (WARNING_KINDS) and one sentence."""

    kind: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class RunOutcome:
    """What one flow run ended with, gathered while it runs."""

    flow: str  # train, score or run
    name: str = ""  # the flow run's name in Prefect
    as_of: str | None = None
    source: str | None = None
    warnings: list[RunWarning] = field(default_factory=list)
    report: str | None = None  # the run's HTML report, once written (linked from the summary)
    error: str | None = None  # the one-line reason of a failed run
    result: dict[str, Any] | None = None  # what the flow returned, once it has

    def add(self, kind: str, message: str) -> None:
        if kind not in WARNING_KINDS:
            raise ValueError(f"warning kind {kind!r} is not one of {', '.join(WARNING_KINDS)}: "
                             "add it to pipelines.config.WARNING_KINDS")
        warning = RunWarning(kind, message)
        if warning not in self.warnings:  # one fact found twice (a stale table named by two steps) is one warning
            self.warnings.append(warning)

    def state(self, degraded_by: tuple[str, ...]) -> str:
        """'failed', 'degraded' (a warning of a kind in degraded_by) or 'completed'."""
        if self.error is not None:
            return "failed"
        return "degraded" if self.degrading(degraded_by) else "completed"

    def degrading(self, degraded_by: tuple[str, ...]) -> list[RunWarning]:
        return [w for w in self.warnings if w.kind in degraded_by]


_current: ContextVar[RunOutcome | None] = ContextVar("custscore_run_outcome", default=None)


@contextmanager
def collecting(outcome: RunOutcome):
    """Make `outcome` the one that add_warning and set_report reach while the block runs."""
    token = _current.set(outcome)
    try:
        yield outcome
    finally:
        _current.reset(token)


def current() -> RunOutcome | None:
    """The outcome of the flow run in progress (None outside one)."""
    return _current.get()


def add_warning(kind: str, message: str) -> None:
    """Add a warning to the run in progress and log it (kind: one of pipelines.config.WARNING_KINDS)."""
    if kind not in WARNING_KINDS:
        raise ValueError(f"warning kind {kind!r} is not one of {', '.join(WARNING_KINDS)}")
    log.warning("%s: %s", kind, message)
    outcome = current()
    if outcome is not None:
        outcome.add(kind, message)


def set_report(path: str) -> None:
    """Name the run's HTML report, so the summary artifact links to it."""
    outcome = current()
    if outcome is not None:
        outcome.report = str(path)


def warnings_of_result(result: dict[str, Any]) -> list[RunWarning]:
    """The warnings a flow's summary already holds, each with its kind.

    data: a table's own warnings (a stale table, whale orders) and the data's (a header-only table
    left out); quarantine: rows set aside; model: a trained model that was not promoted;
    registry: a new lineage over published runs; drift and backtest: the published run's drift
    warnings and those of the backtests made after publishing.
    """
    found = []
    for table, row in (result.get("report") or {}).items():
        found += [RunWarning("data", f"{table}: {text}") for text in row.get("warnings", ())]
        if row.get("quarantined"):
            reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(row.get("reasons", {}).items()))
            found.append(RunWarning("quarantine", f"{table}: {row['quarantined']:,} of {row['read']:,} rows quarantined"
                                                  + (f" ({reasons})" if reasons else "")))
    published = result.get("published") or {}
    drift = set((published.get("drift") or {}).get("warnings", ()))
    backtest = set(published.get("warnings", ()))
    found += [RunWarning("drift" if text in drift else "backtest" if text in backtest else "data", text)
              for text in result.get("warnings", ())]
    for kind, trained in (result.get("training") or {}).items():
        if not trained.get("promoted", True):
            found.append(RunWarning("model", f"{kind} model v{trained['version']} not promoted: {trained['reason']}"))
    if result.get("registry"):
        found.append(RunWarning("registry", result["registry"]))
    return found
