"""The read API's load benchmark at a tiny size: both phases complete every request without an error."""

from __future__ import annotations

import json

import pytest

from benchmarks.api_load.run import main


@pytest.mark.slow
def test_the_load_benchmark_runs_both_phases_without_errors(tmp_path):
    out = tmp_path / "api_load.json"
    result = main(["--customers", "3000", "--requests", "300", "--clients", "10", "--time-limit", "120", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    for phase in ("idle", "publishing"):
        figures = result[phase]
        assert figures["requests"] == 300 and figures["errors"] == {} and not figures["timed_out"], figures
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
