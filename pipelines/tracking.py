"""MLflow tracking and the model registry: runs, registered models and the champion gate.

One experiment per model kind (`custscore-churn`, `custscore-value`, `custscore-payment`), registered models of
the same names, and two aliases: `champion` (what scoring loads) and `previous-champion`,
with the history of champions as a tag, so rollbacks go back one champion each. A new version becomes champion only when it beats both the rule baseline
and the current champion on the same out-of-time data, and its calibration there is no worse
than the champion's beyond a tolerance.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import AnyType, ColSpec, Schema

from models.model_files import FORMAT as MODEL_FILE_FORMAT
from models.model_files import ModelFileError, read_model_file, write_model_file
from pipelines.model_pyfunc import ModelPredictor

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
MODEL_KINDS = ("churn", "value")
# Kinds trained only when the data holds what they need (payment risk: invoices; prospects: something
# to know them by); a run scores without them, so they are not among MODEL_KINDS, the champions every score needs.
OPTIONAL_MODEL_KINDS = ("payment", "prospect")
REGISTERED_KINDS = (*MODEL_KINDS, *OPTIONAL_MODEL_KINDS)
# The headline metric decides grades and promotion; both are "higher is better".
HEADLINE_METRIC = {"churn": "roc_auc", "value": "normalized_gini", "payment": "roc_auc", "prospect": "roc_auc"}
# A challenger must beat the champion by more than noise to take its place.
MIN_IMPROVEMENT = 0.0
# The calibration figure the gate compares with the champion's beside the headline; both are
# "lower is better": the churn probabilities' Brier score, and the absolute aggregate bias (%)
# of the value level scoring would publish (level anchor applied where it applies).
CALIBRATION_METRIC = {"churn": "brier", "value": "abs_level_bias_pct", "payment": "brier", "prospect": "brier"}
_CALIBRATION_LABEL = {"brier": "Brier score", "abs_level_bias_pct": "absolute aggregate bias of the value level"}
_PIP_REQUIREMENTS = ["lightgbm==4.7.0", "pandas==3.1.1", "numpy==2.4.6", "scikit-learn==1.9.1", "skops==0.16.0"]
MODEL_FILE = "model.skops"
# Registered model tag: the versions that held `champion`, oldest first (comma-separated).
CHAMPION_HISTORY_TAG = "champion_history"
_HISTORY_KEPT = 100
# Model version tag holding the SHA-256 of the model file, recorded at registration.
MODEL_FILE_TAG = "model_file_sha256"
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")


def model_name(kind: str) -> str:
    """Registered model and experiment name for a model kind."""
    if kind not in REGISTERED_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {REGISTERED_KINDS}")
    return f"custscore-{kind}"


def configure_tracking(tracking_uri: str, artifact_root: Path) -> None:
    """Point MLflow at the tracking store and create one experiment per model kind."""
    with _environment_variable_kept("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(tracking_uri)
    for kind in REGISTERED_KINDS:
        ensure_experiment(model_name(kind), artifact_root / kind)


@contextlib.contextmanager
def _environment_variable_kept(name: str):
    """Undo what the block writes to one environment variable.

    mlflow.set_tracking_uri exports the URI as MLFLOW_TRACKING_URI (for subprocesses), and
    HomePaths.tracking_uri reads that variable as the user's own choice: left there, a second
    custscore home in the same process (tests, a long-lived worker) would track and load
    champions in the first home's database.
    """
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def ensure_experiment(name: str, artifact_location: Path) -> str:
    """Return the id of the named experiment, creating it with a local artifact folder."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    artifact_location.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=artifact_location.resolve().as_uri())


def _signature_frame(X: pd.DataFrame) -> pd.DataFrame:
    out = X.head(5).copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None).astype(str)
        elif pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("float64")  # integers cannot carry the missing values scoring may see
    return out


def _signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The pyfunc's signature: the model's columns by name, any numeric or text type in each.

    A typed schema would refuse the project's own `custscore features` table: a count is int64
    there (float64 with missing values elsewhere, category for attributes), and MLflow will not
    convert int64 to float64. ModelPredictor turns every column into what the model reads.
    """
    inferred = infer_signature(example, output)
    inputs = Schema([ColSpec(AnyType(), spec.name, required=spec.required) for spec in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version in the registry and the run that produced it."""

    name: str
    version: str
    run_id: str


def log_model_version(kind: str, model: Any, X_example: pd.DataFrame) -> RegisteredVersion:
    """Log the model in the active run as data (no pickle), register it and record its file's checksum.

    MLflow gets a pyfunc "from code": the code is custscore's own `pipelines/pyfunc_entry.py`
    and the fitted model a skops file beside it, so `mlflow.pyfunc.load_model` works for
    other tools. custscore itself never runs that code: `load_champion` reads the model file
    after checking it against the SHA-256 recorded here on the model version.
    """
    example = _signature_frame(X_example)
    output = ModelPredictor(model, kind).predict(example)
    with tempfile.TemporaryDirectory(prefix="custscore-model-") as folder:
        model_file = Path(folder) / MODEL_FILE
        checksum = write_model_file(model, model_file)
        chatter = io.StringIO()
        with contextlib.redirect_stderr(chatter):  # MLflow prints registry progress to stderr
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_ENTRY),
                artifacts={"model_file": str(model_file)},
                model_config={"kind": kind, MODEL_FILE_TAG: checksum},
                signature=_signature(example, output),
                input_example=example,
                pip_requirements=_PIP_REQUIREMENTS,
                registered_model_name=model_name(kind),
            )
    log.debug("mlflow: %s", chatter.getvalue().strip())
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(model_name(kind), version, MODEL_FILE_TAG, checksum)
    client.set_model_version_tag(model_name(kind), version, "model_file_format", MODEL_FILE_FORMAT)
    run_id = mlflow.active_run().info.run_id
    return RegisteredVersion(model_name(kind), version, run_id)


def log_json(obj: Any, artifact_file: str) -> None:
    """Log a JSON-serialisable object as an artifact of the active run."""
    mlflow.log_text(json.dumps(obj, indent=2, default=str, ensure_ascii=False), artifact_file)


def log_metrics_beside_baseline(model_metrics: dict[str, float], baseline_metrics: dict[str, float]) -> None:
    """Log every metric as `model_<m>` and `baseline_<m>` so they sit side by side in the UI."""
    values = {}
    for key, value in model_metrics.items():
        if _is_number(value):
            values[f"model_{key}"] = float(value)
    for key, value in baseline_metrics.items():
        if _is_number(value):
            values[f"baseline_{key}"] = float(value)
    mlflow.log_metrics(values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value)


def log_figures(figures: dict[str, Any]) -> None:
    """Log matplotlib figures as PNG artifacts under plots/."""
    import matplotlib.pyplot as plt

    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}.png")
        plt.close(fig)


@dataclass(frozen=True)
class Champion:
    """The current champion of a model kind, loaded from the registry."""

    model: Any
    version: str
    run_id: str


def load_champion(kind: str, client: MlflowClient | None = None) -> Champion | None:
    """Load `models:/custscore-<kind>@champion`, or None when there is no champion yet.

    Raises ModelFileError (naming model, version and what differs) when the model file is
    missing, changed since registration, or from a custscore that stored pickles.
    """
    client = client or MlflowClient()
    try:
        mv = client.get_model_version_by_alias(model_name(kind), CHAMPION)
    except MlflowException:
        return None
    # By version, not by alias again: a second read of the alias could return another version.
    return Champion(read_registered_model(mv), str(mv.version), mv.run_id)


def read_registered_model(mv: Any) -> Any:
    """The fitted model of a registry model version, read from its file after the checksum check."""
    label = f"{mv.name} v{mv.version}"
    checksum = (mv.tags or {}).get(MODEL_FILE_TAG)
    if checksum is None:
        raise ModelFileError(
            f"{label} has no recorded model-file checksum: it was stored by an earlier custscore as a pickle, "
            "which custscore no longer loads; train a new one with `custscore run --retrain`"
        )
    with tempfile.TemporaryDirectory(prefix="custscore-model-") as copy:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # download progress bars
                local_file = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{mv.name}/{mv.version}/artifacts/{MODEL_FILE}", dst_path=copy)
        except MlflowException as exc:
            raise ModelFileError(f"{label}: its model file cannot be fetched from the artifact store: "
                                 f"{str(exc).splitlines()[0]}") from exc
        return read_model_file(Path(local_file), checksum, label)


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a challenger takes the champion alias, and why (logged either way)."""

    promote: bool
    reason: str


def too_good_to_be_true(metric: str, value: float, metric_limit: float | None,
                        gains: dict[str, float], gain_share_limit: float | None) -> str | None:
    """Why a model looks too good to be true (a metric or one feature's gain share above its limit), or None."""
    if metric_limit is not None and np.isfinite(value) and value > metric_limit:
        return (f"validation {metric} {value:.4f} is above {metric_limit:g}: too good to be true; look for a "
                f"column that records the outcome (features.attributes.exclude)")
    total = float(sum(gains.values()))
    if gain_share_limit is not None and total > 0:
        feature, gain = max(gains.items(), key=lambda item: (item[1], item[0]))
        if gain / total > gain_share_limit:
            return (f"feature {feature} carries {gain / total:.0%} of the total gain, above {gain_share_limit:g}: "
                    f"too good to be true; check that it is known before the outcome")
    return None


@dataclass(frozen=True)
class CalibrationComparison:
    """Challenger and champion calibration on the same out-of-time rows ("lower is better").

    `tolerance`: how much worse than the champion's the challenger's figure may be (None: not checked).
    `setting`: the config key of the tolerance, named in a refusal so the user knows what to change.
    """

    metric: str
    challenger: float
    champion: float
    tolerance: float | None
    setting: str = ""

    def comparable(self) -> bool:
        return self.tolerance is not None and bool(np.isfinite(self.challenger) and np.isfinite(self.champion))

    def too_much_worse(self) -> bool:
        # Rounded so that float noise (0.165 - 0.16 = 0.005000000000000004) does not make a difference
        # exactly at the tolerance "beyond" it.
        return self.comparable() and round(self.challenger - self.champion, 9) > self.tolerance

    def refusal(self) -> str:
        return (f"its {self._label} {self._figure(self.challenger)} is worse than the champion's "
                f"{self._figure(self.champion)} by {self._figure(self.challenger - self.champion)}, beyond the "
                f"tolerance {self._tolerance} ({self.setting})")

    def approval(self) -> str:
        return (f"its {self._label} {self._figure(self.challenger)} is within {self._tolerance} of the "
                f"champion's {self._figure(self.champion)}")

    @property
    def _label(self) -> str:
        return _CALIBRATION_LABEL.get(self.metric, self.metric)

    def _figure(self, x: float) -> str:
        return f"{x:.2f}%" if self.metric.endswith("_pct") else f"{x:.4f}"

    @property
    def _tolerance(self) -> str:
        return f"{self.tolerance:g} percentage points" if self.metric.endswith("_pct") else f"{self.tolerance:g}"


def decide_promotion(
    metric: str,
    challenger: float,
    baseline: float,
    champion: float | None,
    min_improvement: float = MIN_IMPROVEMENT,
    too_good: str | None = None,
    calibration: CalibrationComparison | None = None,
) -> PromotionDecision:
    """The champion gate: not too good to be true, beat the baseline, and the current champion when there is one.

    `too_good`: the warning of `too_good_to_be_true`, when the model looks it.
    `calibration`: challenger and champion calibration on the same rows; a challenger that beats the
    champion's headline metric is still kept when its calibration is worse beyond the tolerance
    (a better ranking does not excuse probabilities or a level the business would act on wrongly).
    """
    if not np.isfinite(challenger):
        return PromotionDecision(False, f"challenger {metric} is not a number")
    if too_good is not None:
        return PromotionDecision(False, f"not promoted: {too_good}")
    if not challenger > baseline:
        return PromotionDecision(
            False, f"challenger {metric} {challenger:.4f} does not beat the baseline {baseline:.4f}"
        )
    if champion is None:
        return PromotionDecision(
            True, f"first model to beat the baseline: {metric} {challenger:.4f} > baseline {baseline:.4f}"
        )
    if champion == float("-inf"):
        return PromotionDecision(
            True, f"the champion cannot score this data (its features are missing or its model file cannot be read); "
            f"challenger {metric} "
            f"{challenger:.4f} beats the baseline {baseline:.4f}"
        )
    if not challenger > champion + min_improvement:
        return PromotionDecision(
            False,
            f"challenger {metric} {challenger:.4f} does not beat the champion {champion:.4f} "
            f"on the same out-of-time data",
        )
    beats = f"challenger {metric} {challenger:.4f} beats the champion {champion:.4f}"
    if calibration is not None and calibration.too_much_worse():
        return PromotionDecision(False, f"{beats} on the same out-of-time data, but {calibration.refusal()}")
    checked = f", and {calibration.approval()}" if calibration is not None and calibration.comparable() else ""
    return PromotionDecision(
        True, f"{beats} and the baseline {baseline:.4f} on the same out-of-time data{checked}",
    )


_UNCHECKED = object()


def apply_promotion(kind: str, version: str, decision: PromotionDecision, client: MlflowClient | None = None,
                    compared_with: str | None | object = _UNCHECKED) -> PromotionDecision:
    """Move `champion` to the version (keeping the old one as `previous-champion`) if promoted.

    `compared_with`: the champion version the gate measured (None: there was none). The alias is
    read again just before it moves; if another version holds it now, the challenger beat a
    champion that is gone, so nothing moves and the returned decision says why.
    """
    client = client or MlflowClient()
    name = model_name(kind)
    current = current_champion_version(kind, client)
    if decision.promote and compared_with is not _UNCHECKED and current != compared_with:
        decision = PromotionDecision(
            False, f"not promoted: the champion changed from {_version_label(compared_with)} to "
            f"{_version_label(current)} after the gate compared against it; retrain to compare with the new champion")
    client.set_model_version_tag(name, version, "promotion_decision", "promoted" if decision.promote else "kept")
    client.set_model_version_tag(name, version, "promotion_reason", decision.reason)
    if not decision.promote:
        return decision
    _make_champion(kind, [*champion_history(kind, client), str(version)], client)
    return decision


def current_champion_version(kind: str, client: MlflowClient | None = None) -> str | None:
    """The version the `champion` alias points at now, None when unset."""
    client = client or MlflowClient()
    try:
        return str(client.get_model_version_by_alias(model_name(kind), CHAMPION).version)
    except MlflowException:
        return None


def _version_label(version) -> str:
    return f"v{version}" if version is not None else "no champion"


class RegistryRefusal(ValueError):
    """A change of champion the registry refuses (no such version, nothing to roll back to...); one line."""


def champion_history(kind: str, client: MlflowClient | None = None) -> list[str]:
    """The versions that held `champion`, oldest first, ending with the current champion.

    Kept as a tag of the registered model, so a rollback goes back one champion each time
    instead of swapping the same two. A registry from before the tag knows only its two aliases.
    """
    client = client or MlflowClient()
    try:
        tags = client.get_registered_model(model_name(kind)).tags or {}
    except MlflowException:
        return []
    history = [v for v in tags.get(CHAMPION_HISTORY_TAG, "").split(",") if v]
    aliases = aliased_versions(kind, client)
    if not history:
        history = [mv.version for mv in (aliases[PREVIOUS_CHAMPION], aliases[CHAMPION]) if mv is not None]
    current = aliases[CHAMPION]
    if current is not None and history[-1:] != [current.version]:  # the alias was moved by hand
        history.append(current.version)
    return history


def _make_champion(kind: str, history: list[str], client: MlflowClient) -> None:
    """Point `champion` at the last version of `history`, `previous-champion` at the one before, and keep the history."""
    name = model_name(kind)
    client.set_registered_model_alias(name, CHAMPION, history[-1])
    if len(history) > 1:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, history[-2])
    else:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    client.set_registered_model_tag(name, CHAMPION_HISTORY_TAG, ",".join(history[-_HISTORY_KEPT:]))


def rollback_champion(kind: str, client: MlflowClient | None = None) -> str:
    """Give `champion` back to the champion before it; returns the version now champion.

    Each rollback goes one champion further back; with none left, RegistryRefusal (never a
    roll forward to the version just rolled back from).
    """
    client = client or MlflowClient()
    name = model_name(kind)
    history = champion_history(kind, client)
    if not history:
        raise RegistryRefusal(f"{name} has no champion to roll back from; `custscore run` trains one")
    if len(history) < 2:
        raise RegistryRefusal(
            f"{name} v{history[-1]} is the first champion on record: there is no earlier one to roll back to; "
            f"`custscore models promote {kind} VERSION` makes any registered version champion")
    _make_champion(kind, history[:-1], client)
    return history[-2]


def promote_version(kind: str, version: str, *, force: bool = False,
                    client: MlflowClient | None = None) -> str | None:
    """Make a registered version champion by hand, with the checks the gate would want.

    It must exist, its model file must read back (checksum and trusted types), and it must have
    passed the champion gate when it was trained, unless `force`. Returns the previous champion
    (None when there was none).
    """
    client = client or MlflowClient()
    name = model_name(kind)
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryRefusal(f"{name} has no version {version}; `custscore models list` shows the registered "
                              "versions") from None
    history = champion_history(kind, client)
    if history[-1:] == [str(mv.version)]:
        raise RegistryRefusal(f"{name} v{version} is already the champion; nothing changed")
    read_registered_model(mv)  # ModelFileError when missing, changed or untrusted: never promote what cannot load
    tags = mv.tags or {}
    if tags.get("promotion_decision") != "promoted" and not force:
        why = tags.get("promotion_reason", "no gate decision recorded")
        raise RegistryRefusal(f"{name} v{version} did not pass the champion gate ({why}); "
                              "pass --force to make it champion anyway")
    if force and tags.get("promotion_decision") != "promoted":
        client.set_model_version_tag(name, str(version), "promoted_by_hand", "forced past the champion gate")
    _make_champion(kind, [*history, str(mv.version)], client)
    return history[-1] if history else None


def aliased_versions(kind: str, client: MlflowClient | None = None) -> dict[str, RegisteredVersion | None]:
    """The versions behind `champion` and `previous-champion` (None where the alias is unset)."""
    client = client or MlflowClient()
    out: dict[str, RegisteredVersion | None] = {}
    for alias in (CHAMPION, PREVIOUS_CHAMPION):
        try:
            mv = client.get_model_version_by_alias(model_name(kind), alias)
            out[alias] = RegisteredVersion(model_name(kind), str(mv.version), mv.run_id)
        except MlflowException:
            out[alias] = None
    return out


@dataclass(frozen=True)
class VersionSummary:
    """One registered version as `custscore models list` shows it."""

    kind: str
    version: str
    registered_at: datetime
    aliases: tuple[str, ...]
    decision: str  # promoted, kept, or "-" (no gate decision recorded)
    reason: str
    as_of: str | None
    metric: str
    model_metric: float | None
    baseline_metric: float | None
    grade: str | None


def registered_versions(kind: str, client: MlflowClient | None = None) -> list[VersionSummary]:
    """Every registered version of a kind, newest first, with its gate decision and out-of-time metrics."""
    client = client or MlflowClient()
    name, metric = model_name(kind), HEADLINE_METRIC[kind]
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    # search_model_versions leaves `aliases` empty on some stores: read them by alias instead.
    aliases = {alias: mv.version for alias, mv in aliased_versions(kind, client).items() if mv is not None}
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        run = _run_or_none(client, mv.run_id)
        metrics, params, tags = (run.data.metrics, run.data.params, run.data.tags) if run else ({}, {}, {})
        rows.append(VersionSummary(
            kind, str(mv.version), datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
            tuple(alias for alias, version in aliases.items() if version == str(mv.version)), (mv.tags or {}).get("promotion_decision", "-"),
            (mv.tags or {}).get("promotion_reason", ""), params.get("scoring_date"), metric,
            metrics.get(f"model_{metric}"), metrics.get(f"baseline_{metric}"), tags.get("grade")))
    return rows


def _run_or_none(client: MlflowClient, run_id: str | None):
    try:
        return client.get_run(run_id) if run_id else None
    except MlflowException:
        return None


def run_name(kind: str, scoring_date: str, started: datetime) -> str:
    """A training run's name, distinct per run of a kind: `churn as of 2026-07-01, trained 2026-07-02 03:04:05 UTC`."""
    return f"{kind} as of {scoring_date}, trained {started:%Y-%m-%d %H:%M:%S} UTC"


def registry_location() -> str:
    """Where the registry lives (the tracking URI), for messages."""
    return mlflow.get_tracking_uri()


def registry_mismatch(kind: str, version: str | None, run_id: str | None,
                      client: MlflowClient | None = None) -> str | None:
    """What the registry lacks of a model version (and its MLflow run) a published run names, or None.

    A version number alone is not proof: a registry created anew numbers its first model v1
    again, so the version must also come from the same MLflow run.
    """
    client = client or MlflowClient()
    name = model_name(kind)
    if version is not None:
        try:
            registered = client.get_model_version(name, str(version))
        except MlflowException:
            return f"{name} v{version} (MLflow run {run_id}), which the registry does not have"
        if run_id is not None and registered.run_id != run_id:
            return f"{name} v{version} from MLflow run {run_id}, but the registry's v{version} comes from run {registered.run_id}"
        return None
    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException:
            return f"the {kind} model's MLflow run {run_id}, which the tracking store does not have"
    return None


def grade_of(run_id: str, client: MlflowClient | None = None) -> str | None:
    """The grade a training run gave its model (tag `grade`), None if it has none."""
    client = client or MlflowClient()
    try:
        return client.get_run(run_id).data.tags.get("grade")
    except MlflowException:
        return None
