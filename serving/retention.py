"""Retention: keep the N latest published runs of a sink, never the current one removed."""

from __future__ import annotations

from serving.store import PublishedRun


def prune_runs(sink, keep: int) -> list[PublishedRun]:
    """Delete all but the `keep` latest runs (latest as_of, then last published); the runs removed, oldest first.

    A sink with its own `prune` (PostgreSQL: one transaction) does it itself; otherwise the runs
    go one by one through `delete_run`, which refuses the latest, so the current run always stays.
    """
    if keep < 1:
        raise ValueError(f"keep {keep}: keep at least 1 run (the current run is never removed)")
    if hasattr(sink, "prune"):
        return sorted(sink.prune(keep), key=lambda r: (r.as_of, r.published_at, r.run_id))
    runs = sink.list_runs()  # oldest first
    doomed = list(runs["run_id"])[: max(len(runs) - keep, 0)]
    return [sink.delete_run(run_id) for run_id in doomed]
