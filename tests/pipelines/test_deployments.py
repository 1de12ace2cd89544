"""Scheduled deployments: the crons of configs/ reach Prefect's API, so runs happen unattended."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.slow


def test_deployments_register_with_configured_cron_schedules(prefect_harness, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    from pipelines.config import load_config
    from pipelines.deployments import build_deployments, register_deployments

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    deployments = build_deployments(data=str(tmp_path / "data"))
    ids = register_deployments(deployments)
    cfg = load_config()

    async def read_back():
        async with get_client() as client:
            return [await client.read_deployment(i) for i in ids]

    registered = {d.name: d for d in asyncio.run(read_back())}
    assert set(registered) == {"custscore-monthly-retrain", "custscore-daily-score"}
    retrain, score = registered["custscore-monthly-retrain"], registered["custscore-daily-score"]
    assert retrain.schedules[0].schedule.cron == cfg.schedules.retrain_cron
    assert score.schedules[0].schedule.cron == cfg.schedules.score_cron
    assert retrain.parameters["retrain"] is True and retrain.parameters["data"] == str(tmp_path / "data")
    assert score.parameters["data"] == str(tmp_path / "data")
    # Both wait for a run in progress instead of failing when their crons meet.
    assert retrain.parameters["wait"] is True and score.parameters["wait"] is True


def test_deployments_store_data_and_config_as_absolute_paths(tmp_path, monkeypatch):
    from pipelines.deployments import build_deployments

    monkeypatch.setenv("CUSTSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("demo:\n  customers: 100\n")
    deployments = build_deployments(config="mine.yaml", data="tables")
    for deployment in deployments:
        # A scheduled run starts in the serving process's folder: a relative path would point elsewhere.
        assert deployment.parameters["data"] == str(tmp_path / "tables")
        assert deployment.parameters["config"] == str(tmp_path / "mine.yaml")


def test_deploy_says_what_the_schedules_will_read(tmp_path, monkeypatch):
    from pipelines.deployments import scheduled_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text("demo:\n  customers: 1200\n  seed: 3\n")
    demo = scheduled_source(config="small.yaml")
    assert "scheduled runs score the demo data (1,200 generated customers, seed 3)" in demo and "--data DIR" in demo
    assert scheduled_source(data="tables") == f"scheduled runs read {tmp_path / 'tables'}"
