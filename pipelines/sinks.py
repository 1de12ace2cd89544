"""Which score sinks a run publishes to and readers read from: the home's store, and PostgreSQL when configured.

The store under the home folder is always first: it is what `runs`, `scores` and the registry
check rely on, and it needs nothing but a disk. PostgreSQL is added when `CUSTSCORE_POSTGRES_URL`
(which wins) or `sinks.postgres.url` names a server. Its URL is only ever shown redacted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipelines.config import CustscoreConfig
from pipelines.environment import HomePaths
from pipelines.faults import DatabaseFaultError, redacted
from serving.sink import ScoreSink, open_sink
from serving.store import PublishedRun, RunMetadata

POSTGRES_URL_ENV = "CUSTSCORE_POSTGRES_URL"


class SinkPublishError(DatabaseFaultError):
    """A sink after the store failed: the store has the run, that sink does not (a rerun replaces it in both)."""


@dataclass(frozen=True)
class NamedSink:
    """A sink and how messages name it (never with a password)."""

    label: str
    sink: ScoreSink


def postgres_url(cfg: CustscoreConfig) -> str | None:
    """The PostgreSQL URL: the environment variable, else the config, else None (no PostgreSQL)."""
    return os.environ.get(POSTGRES_URL_ENV) or cfg.sinks.postgres.url or None


def postgres_sink(cfg: CustscoreConfig):
    """The configured PostgreSQL sink, or None."""
    url = postgres_url(cfg)
    if url is None:
        return None
    from serving.postgres import PostgresSink

    settings = cfg.sinks.postgres
    return PostgresSink(url, settings.schema_name, switch_lock_timeout=settings.switch_lock_timeout_seconds,
                        switch_attempts=settings.switch_attempts)


def configured_sinks(cfg: CustscoreConfig, paths: HomePaths) -> list[NamedSink]:
    """Every sink a run publishes to, the store first."""
    sinks = [NamedSink(f"the store {paths.store}", open_sink(paths.store))]
    postgres = postgres_sink(cfg)
    if postgres is not None:
        sinks.append(NamedSink(f"PostgreSQL {postgres.shown} (schema {postgres.schema})", postgres))
    return sinks


def reading_sink(cfg: CustscoreConfig, paths: HomePaths) -> ScoreSink:
    """Where readers (the API, the CLI's readers) read: PostgreSQL when configured, else the store."""
    postgres = postgres_sink(cfg)
    return postgres if postgres is not None else open_sink(paths.store)


def publish_after_store(sinks: list[NamedSink], metadata: RunMetadata, scored, first: PublishedRun) -> None:
    """Publish to the sinks after the store; the first failure is one line naming the sink and what the store holds."""
    for named in sinks[1:]:
        try:
            named.sink.publish(metadata, scored)
        except Exception as exc:  # any failure of that sink: the run stays in the store, say so in one line
            reason = redacted(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            raise SinkPublishError(
                f"publishing run {metadata.run_id} to {named.label} failed: {reason}. The store has the run "
                f"({first.score_rows:,} rows, published); run again to publish it there too (a rerun replaces the run "
                "in every sink)") from None
