"""A model file holds data, not code: a tampered, truncated or pickled champion is refused, never run."""

from __future__ import annotations

import os
import pickle
from datetime import date
from pathlib import Path

import pytest
import skops.io as sio

from demo import generate_demo_data, write_demo_data
from tests.pipelines.flow_home import FIXED_DESIGN, config_file

pytestmark = pytest.mark.slow

N_CUSTOMERS = 400
AS_OF = "2026-07-01"


class _RunsAShellCommand:
    """A pickle payload: unpickling it runs `touch SENTINEL`."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


@pytest.fixture(scope="module")
def home(tmp_path_factory, prefect_harness):
    root = tmp_path_factory.mktemp("model-files")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=5, end=date(2026, 6, 30)), root / "data", "parquet")
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    from pipelines.flows import retrain_and_score_flow

    retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF, retrain=False, config=_config(root))
    yield root
    mp.undo()


def _config(root) -> str:
    return config_file(root, "fixed-design", FIXED_DESIGN)


def _score(root) -> dict:
    from pipelines.flows import score_flow

    return score_flow(data=str(root / "data"), as_of=AS_OF, config=_config(root))


def _champion_file(kind: str) -> tuple[Path, str]:
    import mlflow

    from pipelines import tracking

    version = tracking.current_champion_version(kind)
    folder = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{tracking.model_name(kind)}/{version}")
    return Path(folder) / "artifacts" / tracking.MODEL_FILE, version


def _manifest(root) -> bytes:
    return (root / "home" / "store" / "manifest.json").read_bytes()


@pytest.fixture()
def churn_file(home):
    """The churn champion's model file, put back as it was after the test."""
    path, version = _champion_file("churn")
    original = path.read_bytes()
    yield path, version
    path.write_bytes(original)


def test_models_are_stored_without_a_pickle_and_scoring_reads_them(home):
    stored = [p.name for p in (home / "home" / "mlartifacts").rglob("*") if p.is_file()]
    assert "model.skops" in stored and "pyfunc_entry.py" in stored
    assert not [name for name in stored if name.endswith((".pkl", ".pickle", ".joblib"))]
    assert _score(home)["published"]["rows"] > 0


def test_a_model_file_replaced_by_a_pickle_payload_is_refused_and_runs_nothing(home, churn_file, tmp_path):
    from models.model_files import ModelFileError

    path, version = churn_file
    sentinel = tmp_path / "sentinel"
    path.write_bytes(pickle.dumps(_RunsAShellCommand(sentinel)))
    manifest = _manifest(home)

    with pytest.raises(ModelFileError) as refused:
        _score(home)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"custscore-churn v{version}: model file model.skops has SHA-256 ")
    assert "the registry recorded" in message and "retrain with --retrain or roll back" in message
    assert not sentinel.exists()
    assert _manifest(home) == manifest


def test_a_truncated_model_file_is_refused_with_its_name_and_version(home, churn_file):
    from models.model_files import ModelFileError

    path, version = churn_file
    path.write_bytes(path.read_bytes()[:1000])
    manifest = _manifest(home)

    with pytest.raises(ModelFileError, match=rf"^custscore-churn v{version}: model file model.skops has SHA-256"):
        _score(home)
    assert _manifest(home) == manifest


def test_a_file_naming_code_is_refused_even_when_its_checksum_was_rewritten_too(home, churn_file, tmp_path):
    """Someone who can write the registry's tag as well still cannot make custscore call a function."""
    from mlflow.tracking import MlflowClient

    from models.model_files import ModelFileError, file_sha256
    from pipelines import tracking

    path, version = churn_file
    sio.dump({"booster_": os.system}, path)
    client = MlflowClient()
    recorded = client.get_model_version("custscore-churn", version).tags[tracking.MODEL_FILE_TAG]
    client.set_model_version_tag("custscore-churn", version, tracking.MODEL_FILE_TAG, file_sha256(path))
    try:
        with pytest.raises(ModelFileError, match=rf"^custscore-churn v{version}: model file model.skops names types "
                                                 r"outside the trusted list: .*system"):
            _score(home)
    finally:
        client.set_model_version_tag("custscore-churn", version, tracking.MODEL_FILE_TAG, recorded)


def test_a_champion_stored_by_an_earlier_custscore_is_refused_and_a_retrain_replaces_it(home):
    """A version without a recorded checksum (a pickle of an earlier release) is never loaded."""
    from mlflow.tracking import MlflowClient

    from models.model_files import ModelFileError
    from pipelines import tracking
    from pipelines.flows import retrain_and_score_flow

    _, version = _champion_file("value")
    MlflowClient().delete_model_version_tag("custscore-value", version, tracking.MODEL_FILE_TAG)

    with pytest.raises(ModelFileError) as refused:
        _score(home)
    assert str(refused.value) == (
        f"custscore-value v{version} has no recorded model-file checksum: it was stored by an earlier custscore "
        "as a pickle, which custscore no longer loads; train a new one with `custscore run --retrain`")

    result = retrain_and_score_flow(data=str(home / "data"), as_of=AS_OF, retrain=True, config=_config(home))
    value = result["training"]["value"]
    assert value["promoted"] and "its model file cannot be read" in value["reason"]
    assert tracking.load_champion("value").version == value["version"]
