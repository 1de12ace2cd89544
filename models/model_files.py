"""Model files that hold data, never code: write, checksum and read a fitted model.

A pickle runs whatever code its bytes name when it is loaded, so a tampered model file would
run a command inside a scheduled scoring run. custscore stores a fitted model with skops
(a zip of a JSON schema and NumPy arrays; boosters are kept as LightGBM's model text inside
it) and reads it back only when every type in the file is on `TRUSTED_TYPES`. Types skops
itself trusts (builtins, NumPy, scikit-learn estimators such as the isotonic calibrator) need
no entry. A new fitted class must be added here on purpose: writing a model that holds a type
not on the list fails at once, not when the champion is next loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

FORMAT = "skops"

TRUSTED_TYPES: tuple[str, ...] = (
    "lightgbm.basic.Booster",
    "models.churn.ChurnModel",
    "models.level.LevelAnchor",
    "models.params.ChurnParams",
    "models.payment_risk.PaymentRiskModel",
    "models.params.ValueParams",
    "models.prospect.ProspectModel",
    "models.prospect.ProspectValue",
    "models.reason_reference.ReasonReference",
    "models.value.FrequencySeverityRegressor",
    "models.value.PointRegressor",
    "models.value.ValueModel",
)


class ModelFileError(ValueError):
    """A model file that cannot be written or read safely."""


def write_model_file(model: Any, path: Path) -> str:
    """Write the fitted model to `path`; returns the file's SHA-256 for the registry to record."""
    sio.dump(model, path)
    unknown = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if unknown:
        path.unlink()
        raise ModelFileError(
            f"the fitted {type(model).__name__} holds types that model files do not trust: {unknown}; "
            "add them to models.model_files.TRUSTED_TYPES if they hold data only"
        )
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_file(path: Path, expected_sha256: str, label: str) -> Any:
    """Read a model file whose bytes match the recorded checksum and whose types are all trusted.

    `label` names the model in errors (e.g. "custscore-churn v3").
    """
    if not path.is_file():
        raise ModelFileError(f"{label}: model file {path} is missing; retrain with --retrain or roll back")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ModelFileError(
            f"{label}: model file {path.name} has SHA-256 {actual[:16]}..., the registry recorded "
            f"{expected_sha256[:16]}... at registration; the file was changed or damaged, so it is not "
            "loaded (retrain with --retrain or roll back)"
        )
    try:
        return sio.load(path, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise ModelFileError(f"{label}: model file {path.name} names types outside the trusted list: {exc}; "
                             "a model stored by an older custscore (whose classes have moved) is not read: "
                             "retrain with --retrain") from exc
    except Exception as exc:  # noqa: BLE001 - any failure to decode the matching bytes is a damaged file
        raise ModelFileError(f"{label}: model file {path.name} cannot be read: {type(exc).__name__}: {exc}") from exc
