"""The engine setting: `engine:` in the config, `--engine` on the command line, and a default install without Spark."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import ENGINE_ENV, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_engine_flag(monkeypatch):
    monkeypatch.delenv(ENGINE_ENV, raising=False)


def test_the_default_engine_is_duckdb_with_a_local_spark_master_ready():
    engine = load_config().engine
    assert engine.name == "duckdb"
    assert engine.spark.master == "local[2]" and engine.spark.conf == {} and engine.spark.work_path is None


def test_engine_spark_alone_or_as_a_section_with_spark_settings(tmp_path):
    short = tmp_path / "short.yaml"
    short.write_text("engine: spark\n")
    assert load_config(short).engine.name == "spark"
    full = tmp_path / "full.yaml"
    full.write_text("engine:\n  name: spark\n  spark:\n    master: spark://head:7077\n"
                    "    conf: {spark.executor.memory: 8g}\n    source: s3a://bucket/custscore/input\n"
                    "    work_path: s3a://bucket/custscore/work\n")
    spark = load_config(full).engine.spark
    assert (spark.master, spark.conf, spark.source, spark.work_path) == (
        "spark://head:7077", {"spark.executor.memory": "8g"}, "s3a://bucket/custscore/input", "s3a://bucket/custscore/work")


def test_an_unknown_engine_or_spark_key_names_its_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("engine: flink\n")
    with pytest.raises(ConfigError, match="engine.name"):
        load_config(path)
    path.write_text("engine:\n  spark:\n    mastr: local[2]\n")
    with pytest.raises(ConfigError, match="engine.spark.mastr"):
        load_config(path)


def test_the_engine_flag_wins_over_the_file_and_keeps_its_spark_settings(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("engine:\n  name: duckdb\n  spark:\n    master: local[1]\n")
    monkeypatch.setenv(ENGINE_ENV, "spark")
    engine = load_config(path).engine
    assert (engine.name, engine.spark.master) == ("spark", "local[1]")


@pytest.mark.parametrize("command", ["run", "train"])
def test_an_unknown_engine_flag_is_one_line_before_any_work(tmp_path, monkeypatch, command):
    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, [command, "--engine", "flink"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --engine 'flink' is not an engine; use one of duckdb, spark")
    assert not (tmp_path / "home").exists()


def test_the_default_install_imports_no_pyspark():
    # pipelines.tasks is left out: MLflow itself imports pyspark whenever it is installed.
    code = ("import sys; import features.build, features.training_set, features.engines, features.validation; "
            "import pipelines.cli, pipelines.config; print('pyspark' in sys.modules, 'py4j' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_only_the_spark_engine_modules_import_pyspark_at_module_level():
    importers = []
    for path in sorted(p for folder in ("features", "models", "serving", "pipelines") for p in (ROOT / folder).rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "pyspark" for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers and all(path.startswith("features/engines/spark") for path in importers), importers
