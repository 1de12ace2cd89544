"""What `custscore models list` prints: every registered version with its metrics, date, aliases and gate decision."""

from __future__ import annotations

from rich.table import Table

from pipelines.arguments import check_choice
from pipelines.tracking import REGISTERED_KINDS, VersionSummary

REASON_WIDTH = 90  # the gate's reason is a sentence; the table shows its start, MLflow keeps it whole


def check_kind(kind: str) -> None:
    check_choice(kind, REGISTERED_KINDS, "KIND")


def versions_table(rows: list[VersionSummary]) -> Table:
    grid = Table("model", "version", "aliases", "as of", "registered (UTC)", "metric", "model", "baseline", "grade",
                 "gate", title="registered models (newest first)")
    grid.add_column("gate's reason", overflow="fold")
    for r in rows:
        grid.add_row(r.kind, f"v{r.version}", ", ".join(r.aliases) or "-", r.as_of or "-",
                     f"{r.registered_at:%Y-%m-%d %H:%M}", r.metric, _figure(r.model_metric),
                     _figure(r.baseline_metric), r.grade or "-", r.decision, _short(r.reason))
    return grid


def _figure(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _short(text: str) -> str:
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"
