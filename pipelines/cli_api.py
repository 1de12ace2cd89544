"""`custscore api serve` and `custscore api keys create | list | revoke`: the read API and its keys.

The app itself is `serving.api.create_app`; this module opens the reader and the key file of the
home and runs uvicorn. Importing it costs Typer only; FastAPI and uvicorn load when a command runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

api_app = typer.Typer(help="The read API over published scores: serve it, manage its keys.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
api_app.add_typer(keys_app, name="keys")

KEY_FILE = "api_keys.json"


def key_file(paths):
    """The home's API key file (hashes only, mode 0600)."""
    return paths.root / KEY_FILE


def open_reader(paths, cfg):
    """What the API reads: PostgreSQL when configured (pipelines.sinks.reading_sink), else the home's Parquet
    store, indexed in memory for millisecond reads."""
    from pipelines.sinks import postgres_sink
    from serving.store import ScoreStore

    postgres = postgres_sink(cfg)
    return postgres if postgres is not None else ScoreStore(paths.store, index_runs=True)


def reader_label(reader, paths) -> str:
    """Where the API reads, for its first line (a database URL redacted)."""
    shown = getattr(reader, "shown", None)
    return f"PostgreSQL {shown}" if shown else str(paths.store)


@api_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 127.0.0.1 keeps the API on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8000,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config (default: configs/default.yaml): "
                                                "the PostgreSQL sink to read and the action list's defaults.")] = None,
) -> None:
    """Serve the read API (OpenAPI docs at /docs); every endpoint but /healthz needs a key."""
    from pipelines.cli import _check_run_inputs, _fail, _prepare, _run_guarded, _s, console

    _check_run_inputs(None, config)
    paths = _prepare()
    from pipelines.runs import RunRequest, resolve_config

    cfg = _run_guarded(resolve_config, RunRequest(config=_s(config)))
    import uvicorn

    from serving.api import ApiKeys, KeyFileError, create_app
    from serving.postgres import PostgresSinkError

    keys = ApiKeys(key_file(paths))
    try:
        active = [k for k in keys.list() if k.revoked_at is None]
    except KeyFileError as exc:
        _fail(str(exc))
    reader = open_reader(paths, cfg)
    try:
        warm_up(reader)
    except PostgresSinkError as exc:  # the database is down or refuses us: say so in one line (URL redacted)
        _fail(str(exc).splitlines()[0])
    if not active:
        console.print("no active API key yet: every /v1 request will get 401; `custscore api keys create --name NAME` makes one")
    console.print(f"custscore read API on http://{host}:{port} (docs: /docs), reading {reader_label(reader, paths)}",
                  highlight=False)
    uvicorn.run(create_app(reader, keys, cfg.actions), host=host, port=port, log_config=log_config(), server_header=False)


def warm_up(reader) -> None:
    """Index the latest run before the first request (a second or two at 1M customers), if there is one."""
    try:
        reader.read_scores_page(limit=1)
    except LookupError:
        pass  # no run published yet: the first request after a publish indexes it


class PathOnlyInAccessLog(logging.Filter):
    """Uvicorn's access log line with the path but not the query string: a key misplaced in a URL never reaches a log.

    (Uvicorn logs no headers, so a key sent as it should be is never logged either.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, full_path, version, status = record.args
            record.args = (client, method, str(full_path).split("?", 1)[0], version, status)
        return True


def log_config() -> dict:
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "filters": {"path_only": {"()": PathOnlyInAccessLog}}}
    config["handlers"] = {**LOGGING_CONFIG["handlers"],
                          "access": {**LOGGING_CONFIG["handlers"]["access"], "filters": ["path_only"]}}
    config["loggers"] = {**LOGGING_CONFIG["loggers"],
                         "serving": {"handlers": ["default"], "level": "WARNING", "propagate": False}}
    return config


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option("--name", help="Who the key is for, e.g. crm.")]) -> None:
    """Create a key; it is printed once, on the last line, and only its hash is kept."""
    from pipelines.cli import _fail, _prepare
    from serving.api.keys import ApiKeys, KeyFileError

    paths = _prepare()
    try:
        key = ApiKeys(key_file(paths)).create(name)
    except KeyFileError as exc:
        _fail(str(exc))
    typer.echo(f"API key {name!r} created; it is shown only now, so store it in a secret manager. "
               f"Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>':")
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Show every key's name, id, creation and revocation time (never the key)."""
    from rich.table import Table

    from pipelines.cli import _fail, _prepare, console
    from serving.api.keys import ApiKeys, KeyFileError

    paths = _prepare()
    try:
        records = ApiKeys(key_file(paths)).list()
    except KeyFileError as exc:
        _fail(str(exc))
    if not records:
        console.print("no API key yet; `custscore api keys create --name NAME` makes one")
        return
    grid = Table("name", "key id", "created (UTC)", "status", title=f"API keys in {key_file(paths)}")
    for k in records:
        grid.add_row(k.name, k.key_id, k.created_at, f"revoked {k.revoked_at}" if k.revoked_at else "active")
    console.print(grid)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name, as `custscore api keys list` shows it.")]) -> None:
    """Revoke a key: a running API refuses it from its next request on."""
    from pipelines.cli import _fail, _prepare, console
    from serving.api.keys import ApiKeys, KeyFileError

    paths = _prepare()
    try:
        record = ApiKeys(key_file(paths)).revoke(name)
    except KeyFileError as exc:
        _fail(str(exc))
    console.print(f"API key {record.name!r} (id {record.key_id}) revoked at {record.revoked_at}", highlight=False)
