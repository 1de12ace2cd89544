"""Commands the CLI prints for the user to run next, spelled so they work from any shell.

`mlflow`, `prefect` and `custscore` are installed in the virtual environment's bin folder,
which is not on PATH unless the environment is activated: a hint naming a bare `mlflow ui`
fails with "command not found". Each hint names the executable beside the running Python,
or `python -m` when there is none.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

_MODULE = {"custscore": "pipelines.cli"}  # the console script's module, for `python -m`


def tool(name: str) -> str:
    """How to start an installed tool of this environment from any shell, quoted for it."""
    beside = Path(sys.executable).parent / name  # not resolved: a venv's python is a symlink out of it
    if beside.is_file():
        return shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m {_MODULE.get(name, name)}"


def mlflow_ui(tracking_uri: str) -> str:
    return f"{tool('mlflow')} ui --backend-store-uri {shlex.quote(tracking_uri)}"


def prefect_server(prefect_home: Path) -> str:
    return f"PREFECT_HOME={shlex.quote(str(prefect_home))} {tool('prefect')} server start"


def where_lines(tracking_uri: str, prefect_home: Path) -> str:
    """The summary's last lines: how to open the MLflow and Prefect UIs and export the scores."""
    return (f"[bold]MLflow UI[/]  {mlflow_ui(tracking_uri)}  (then http://127.0.0.1:5000)\n"
            f"[bold]Prefect UI[/] {prefect_server(prefect_home)}  (then http://127.0.0.1:4200)\n"
            f"[bold]export[/]     {tool('custscore')} scores export --output scores.csv")
