"""A home whose mlflow.db is gone never silently starts a new lineage over the published runs."""

from __future__ import annotations

from datetime import date

import pytest

from demo import generate_demo_data, write_demo_data

pytestmark = pytest.mark.slow

N_CUSTOMERS = 400
AS_OF = "2026-07-01"


@pytest.fixture(scope="module")
def home(tmp_path_factory, prefect_harness):
    root = tmp_path_factory.mktemp("lost-registry")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=3, end=date(2026, 6, 30)), root / "data", "parquet")
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield root
    mp.undo()


def _run(root, retrain: bool) -> dict:
    from pipelines.flows import retrain_and_score_flow

    return retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, retrain=retrain)


def _forget_the_open_database() -> None:
    """See the home as the next `custscore` process would: MLflow keeps the deleted database open.

    Its stores and SQLAlchemy engines are cached per URI for the life of the process, so in this
    process the unlinked file would live on; a new command opens the path afresh.
    """
    from mlflow.store.model_registry.sqlalchemy_store import (
        SqlAlchemyStore as RegistryStore,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    for store_class in (TrackingStore, RegistryStore):
        for engine in store_class._engine_map.values():
            engine.dispose()
        store_class._engine_map.clear()
    tracking_utils._tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    registry_utils._get_store_registry()._get_store_with_resolved_uri.cache_clear()


def _manifest(root) -> bytes:
    return (root / "home" / "store" / "manifest.json").read_bytes()


def test_a_deleted_registry_is_refused_until_retrain_starts_a_new_lineage(home):
    from mlflow.tracking import MlflowClient

    from pipelines.runs import LostRegistryError

    first = _run(home, retrain=False)
    first_id = first["published"]["run_id"]
    assert first["training"]["churn"]["version"] == "1" and "registry" not in first
    manifest = _manifest(home)
    (home / "home" / "mlflow.db").unlink()
    _forget_the_open_database()

    with pytest.raises(LostRegistryError) as refused:
        _run(home, retrain=False)
    message = str(refused.value)
    assert "\n" not in message
    assert f"store {home / 'home' / 'store'}" in message and f"run {first_id}" in message
    assert "custscore-churn v1" in message and "custscore-value v1" in message
    assert "`custscore run --retrain` starts a new lineage on purpose" in message
    assert _manifest(home) == manifest  # nothing published
    assert MlflowClient().search_registered_models() == []  # nothing trained or registered

    renewed = _run(home, retrain=True)
    assert renewed["registry"].startswith("new: store ") and first_id in renewed["registry"]
    assert renewed["training"]["churn"]["version"] == "1"  # the new registry numbers from 1 again...
    assert renewed["published"]["run_id"] != first_id  # ...but its run does not replace the old lineage's run

    again = _run(home, retrain=False)  # the new lineage is now the store's last run: no refusal, no training
    assert again["training"] == {} and "registry" not in again
