"""`--engine duckdb|spark` for `custscore run` and `custscore train` (docs/SPARK.md).

The flag reaches the flows through $CUSTSCORE_ENGINE, which `pipelines.config.load_config`
applies over the file's `engine:` section: the flows, their Prefect deployments and the
config file all name the engine the same way.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated

import typer

from features.engines import ENGINES

EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="duckdb (one machine) or spark (Apache Spark; default: the config's engine.name).")]


def use_engine(engine: str | None) -> None:
    """Check the flag and hand it to the flows; one line and exit code 2 when it cannot work."""
    from pipelines.cli import _fail

    if engine is None:
        return
    if engine not in ENGINES:
        _fail(f"--engine {engine!r} is not an engine; use one of {', '.join(ENGINES)}")
    if engine == "spark" and importlib.util.find_spec("pyspark") is None:
        _fail("--engine spark needs pyspark and Java: install them with scripts/spark.sh "
              "(or pip install -c constraints.txt -e '.[spark]' and a Java 17 runtime)")
    from pipelines.config import ENGINE_ENV

    os.environ[ENGINE_ENV] = engine
