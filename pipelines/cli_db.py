"""`custscore db init` (PostgreSQL schema and read-only role) and `custscore runs prune` (retention in every sink).

The reader's password is never a command-line value (it would sit in the shell history and in
`ps` for every user of the machine): it comes from an environment variable
(`--reader-password-env`, default CUSTSCORE_READER_PASSWORD), or, for a new role without one,
is generated and printed once, on the last line, for the person setting up the BI tool. A
rerun keeps an existing role's password unless the variable is set (then it is changed).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

db_app = typer.Typer(help="The PostgreSQL sink's database: schema, tables and a read-only role.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config (default: configs/default.yaml).")]
READER_VIEWS = "scores_current, explanations_current, segment_summary_current, current_run, published_runs, score_history"


@db_app.command("init")
def db_init(
    reader_role: Annotated[str, typer.Option("--reader-role", help="The read-only login role for BI tools and reports.")] = "custscore_reader",
    reader_password_env: Annotated[str, typer.Option(
        "--reader-password-env", help="Environment variable holding the reader's password (unset: generated for a new role).")]
    = "CUSTSCORE_READER_PASSWORD",
    config: ConfigOpt = None,
) -> None:
    """Create the schema, the runs table, the views and a read-only role (idempotent); print how a BI tool connects."""
    from pipelines.cli import _fail, _prepare, console
    from pipelines.config import ConfigError, load_config
    from pipelines.sinks import POSTGRES_URL_ENV, postgres_sink
    from serving.postgres import PostgresSinkError

    _prepare()
    try:
        sink = postgres_sink(load_config(config))
    except ConfigError as exc:
        _fail(str(exc))
    if sink is None:
        _fail(f"no PostgreSQL configured: set {POSTGRES_URL_ENV} (a postgresql:// URL naming user, host, port and database; custscore never shows its password) "
              "or sinks.postgres.url in the config")
    try:
        password = os.environ.get(reader_password_env) or None
        generated = password is None and not sink.role_exists(reader_role)
        if generated:
            password = secrets.token_urlsafe(24)
        reader_url = sink.init_database(reader_role, password)
    except (PostgresSinkError, ValueError) as exc:
        _fail(str(exc))
    finally:
        sink.close()
    console.print(f"schema {sink.schema} ready in PostgreSQL {sink.shown}", highlight=False, soft_wrap=True)
    console.print(f"reader role {reader_role}: SELECT on every table and view of {sink.schema}, also of runs published "
                  "later; no CREATE; read-only connections", highlight=False, soft_wrap=True)
    console.print(f"views: {READER_VIEWS}", highlight=False, soft_wrap=True)
    console.print(f"a BI tool connects with: {reader_url}", highlight=False, soft_wrap=True)
    if generated:
        console.print(f"the reader's password, shown this once (store it in your BI tool or a vault): {password}",
                      highlight=False, soft_wrap=True)
    elif os.environ.get(reader_password_env):
        console.print(f"the reader's password was set from ${reader_password_env}", highlight=False)
    else:
        console.print(f"the reader's password is unchanged (set ${reader_password_env} to change it)", highlight=False)


def runs_prune(
    keep: Annotated[int, typer.Option("--keep", min=1, help="How many of the latest runs to keep (the current run always stays).")],
    config: ConfigOpt = None,
) -> None:
    """Delete all but the N latest published runs, in the store and in PostgreSQL; print what was removed."""
    from pipelines.cli import _fail, _prepare, console
    from pipelines.config import ConfigError, load_config
    from pipelines.sinks import configured_sinks
    from serving.postgres import PostgresSinkError
    from serving.retention import prune_runs

    paths = _prepare()
    try:
        sinks = configured_sinks(load_config(config), paths)
    except ConfigError as exc:
        _fail(str(exc))
    for named in sinks:
        try:
            removed = prune_runs(named.sink, keep)
        except PostgresSinkError as exc:
            _fail(str(exc))
        if not removed:
            console.print(f"{named.label}: nothing to remove ({keep} or fewer runs)", highlight=False, soft_wrap=True)
        for run in removed:
            console.print(f"{named.label}: removed run {run.run_id} (as of {run.as_of}, {run.score_rows:,} rows)",
                          highlight=False, soft_wrap=True)
