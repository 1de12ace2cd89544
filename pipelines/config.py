"""Configuration: YAML under configs/ validated into frozen typed objects at the entry point.

Business code receives these objects, never raw dicts. Unknown keys are errors, so a typo
in a config file stops the run with the key's path instead of being silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.attributes import AttributePolicy
from features.build import FeatureSpec
from features.engines import EngineSettings
from features.validation.plausibility import CurrencyConversion, PlausibilityRules, WhaleOrderRule
from models.params import ChurnParams, ValueParams
from serving.actions import ActionPolicy
from serving.backtest import BacktestConfig
from serving.credit_settings import PaymentRiskSettings
from serving.drift import DriftSettings
from serving.prospect_rules import PotentialRule
from serving.scorecard import ScorecardRules
from serving.segments import SegmentRules
from serving.settings import ScoringConfig, ScoringSettings

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIGS_DIR / "default.yaml"
HOME_ENV = "CUSTSCORE_HOME"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    source: Path | None = None
    data_end: date | None = None
    max_quarantine_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    default_margin_rate: Annotated[float, Field(ge=-1, le=1)] = 0.30
    # DuckDB's memory cap for validation and the feature queries (beyond it DuckDB spills to the
    # run's work folder). 2GB kept a 1M-customer run under 4.5 GiB; 1GB ran out of memory there.
    duckdb_memory_limit: Annotated[str, Field(pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$")] = "2GB"
    # Exact copies of a transaction line without line_id: an order log has identical lines by
    # design (an item scanned twice), so they are kept and counted unless told to drop them.
    duplicate_lines: Literal["keep", "drop_exact"] = "keep"
    # Plausibility (features/validation/plausibility.py). A timestamp before min_date is a placeholder for "no
    # date" (1900-01-01, 1970-01-01, 0001-01-01) and is quarantined; CDNOW's history starts in 1997.
    min_date: date = PlausibilityRules().min_date
    # Rates into one base currency; null: amounts in more than one currency refuse the input.
    currency: CurrencyConversion | None = None
    # A transactions, invoices or interactions table ending this many days before the latest one is
    # named with a warning (a stale extract); null: off.
    max_source_lag_days: Annotated[int, Field(gt=0)] | None = PlausibilityRules().max_source_lag_days
    # Orders far above the rest are named with a warning and kept; null: off.
    whale_order: WhaleOrderRule | None = PlausibilityRules().whale_order

    def plausibility(self) -> PlausibilityRules:
        """The settings validation needs for dates, currencies, stale tables and whale orders."""
        return PlausibilityRules(min_date=self.min_date, currency=self.currency,
                                 max_source_lag_days=self.max_source_lag_days, whale_order=self.whale_order)


class DemoConfig(_Frozen):
    customers: Annotated[int, Field(gt=0)] = 5000
    seed: int = 7
    end: date = date(2026, 9, 30)

    def folder_name(self) -> str:
        """The folder under the home's demo-data/ holding the demo tables of these settings."""
        return f"n{self.customers}-s{self.seed}-{self.end.isoformat()}"


class FeatureConfig(FeatureSpec):
    """The `features:` section: the feature set itself (every field of features.build.FeatureSpec,
    handed to the features layer as it is) and what the pipelines decide around it."""

    # Not a setting: the label horizons when `seasonal`, else none (CustscoreConfig sets it).
    season_horizons_days: tuple[int, ...] = Field((), exclude=True)
    # BG/NBD + Gamma-Gamma outputs as model features, fitted per snapshot (models/btyd_columns.py),
    # with training.design fixed; the design search decides for itself.
    btyd: bool = False
    # Last year's window of each label horizon (under 365 days): the customer's revenue, order
    # days and share of the year in it, and all customers' share (features/families/season*.py).
    seasonal: bool = True
    # Only these feature columns reach the models (null: all). The others are still built:
    # baselines, segments and the level anchor read them.
    model_features: tuple[str, ...] | None = None
    # Which customers columns may become attr_<column> features (features/attributes.py): not
    # personal data, identifiers, free text or outcome names, unless allowed.
    attributes: AttributePolicy = AttributePolicy()


class LabelConfig(_Frozen):
    churn_horizon_days: Annotated[int, Field(gt=0)] = 90
    value_horizon_days: Annotated[int, Field(gt=0)] = 365


class TooGoodLimits(_Frozen):
    # A model this good out of time has almost always seen the outcome (a column recording it, an
    # identifier joined to it): it is registered but not promoted, with a warning naming what
    # crossed which limit. null switches a limit off.
    roc_auc_above: Annotated[float, Field(gt=0.5, le=1)] | None = 0.98  # churn validation ROC-AUC
    normalized_gini_above: Annotated[float, Field(gt=0, le=1)] | None = 0.98  # value validation normalized Gini
    # One feature carrying more than this share of the booster's total split gain. Honest models
    # reached 0.41-0.51 (churn) and 0.30-0.63 (value revenue) on demo, CDNOW and Online Retail data.
    feature_gain_share_above: Annotated[float, Field(gt=0, le=1)] | None = 0.7


class CalibrationGate(_Frozen):
    # A challenger that beats the champion's headline metric is still not promoted when its
    # calibration on the same out-of-time rows is worse than the champion's by more than this:
    # scores are acted on as probabilities and amounts, not only as a ranking. null: not checked.
    # Churn, Brier score (mean squared error of the probabilities: a proper score, no bins to choose).
    # On 5,000 demo customers a monthly retrain moved it by 0.002 and the champion's own calibrator,
    # fitted on rows it is now measured on, gained 0.0014 over honest cross-fitting. Class weighting
    # left uncalibrated lost 0.015 on synthetic data (tests/pipelines/test_calibration_gate.py).
    brier_above_champion: Annotated[float, Field(ge=0, le=1)] | None = 0.005
    # Value, absolute aggregate bias (%) of the level scoring would publish, in percentage points:
    # two honest monthly models differed by 6.4 points on the same demo rows.
    bias_pct_above_champion: Annotated[float, Field(ge=0)] | None = 10.0


class TrainingConfig(_Frozen):
    n_snapshots: Annotated[int, Field(ge=2)] = 6
    step_days: Annotated[int, Field(gt=0)] = 30
    n_validation_snapshots: Annotated[int, Field(ge=1)] = 2
    min_history_days: Annotated[int, Field(ge=0)] = 180
    # Training cost grows with rows, quality barely does: on the demo data 41k training
    # customers came within 0.0011 AUC / 0.0023 Gini (churn) and 0.0014 Gini (value) of 81k
    # (benchmarks/results/training.md); with 50k, fit + tracking + gate of both models took
    # 48 CPU s at 1M customers, against 327 CPU s with 200k before.
    max_customers: Annotated[int, Field(gt=0)] | None = 50_000
    # Rescale the value level to BG/NBD's: auto = when validation shows it lowers the bias or the
    # scored population has aged beyond the training snapshots (models/level.py).
    level_anchor: Literal["auto", "always", "never"] = "auto"
    # search: choose the feature set, churn objective and BG/NBD blend out of time from the fixed
    # menu of models/design.py; fixed: use features.btyd, models.churn.objective and scoring.btyd_blend as set.
    design: Literal["search", "fixed"] = "search"
    # The search's candidates train on a hash sample of at most this many customers; the chosen
    # design is then fitted on the whole training sample.
    design_max_customers: Annotated[int, Field(gt=0)] | None = 20_000
    # Promotion is blocked for a model that looks too good to be true (pipelines/tracking.py).
    too_good: TooGoodLimits = TooGoodLimits()
    # Promotion also compares calibration with the champion's (pipelines/tracking.py).
    calibration_gate: CalibrationGate = CalibrationGate()


class ModelsConfig(_Frozen):
    churn: ChurnParams = ChurnParams()
    value: ValueParams = ValueParams()


class ValuationConfig(_Frozen):
    annual_discount_rate: Annotated[float, Field(ge=0, lt=1)] = 0.10


class ScheduleConfig(_Frozen):
    retrain_cron: str = "0 2 1 * *"
    score_cron: str = "0 6 * * *"
    timezone: str = "UTC"


class ActionsConfig(ActionPolicy):
    """The `actions:` section: the defaults of `custscore actions` (serving/actions.py's
    ActionPolicy as it is; the command's flags override them one by one)."""


# What a run's warnings are about (pipelines/run_outcome.py); alerts.degraded_by picks among them.
WARNING_KINDS = ("data", "quarantine", "model", "registry", "backtest", "drift", "notify")


class AlertsConfig(_Frozen):
    """Where a failed or degraded run sends its message (a Prefect notification block) and when."""

    # "<block type slug>/<block name>" of a saved Prefect notification block, e.g. "slack-webhook/ops";
    # null: no message is sent (and none is missing: alerts are opt-in).
    block: Annotated[str, Field(pattern=r"^[a-z0-9-]+/[A-Za-z0-9_.-]+$")] | None = None
    # `on` would be read as the boolean true by YAML 1.1, hence notify_on.
    notify_on: tuple[Literal["failed", "degraded"], ...] = ("failed", "degraded")
    # Warning kinds that make a finished run degraded. Quarantined rows and a failed alert are left
    # out: a few rejected rows are routine (too many fail the run), and a broken alert cannot alert.
    degraded_by: tuple[Literal[WARNING_KINDS], ...] = ("data", "model", "registry", "backtest", "drift")

    @model_validator(mode="before")
    @classmethod
    def _on_is_notify_on(cls, data: object) -> object:
        if isinstance(data, dict) and True in data:
            raise ValueError("alerts: the key `on` is read by YAML as true; write it as notify_on: [failed, degraded]")
        return data


class ReportConfig(_Frozen):
    """The HTML report every scoring run writes (pipelines/report.py)."""

    # Both languages by default: the people who act on the scores read either, and a report costs about a second.
    languages: tuple[Literal["en", "zh"], ...] = ("en", "zh")
    # Waterfalls are one plot each (~0.3 s and ~40 kB): five top at-risk accounts keep the file small.
    at_risk_waterfalls: Annotated[int, Field(ge=0, le=50)] = 5
    # Rows of the top movers table: enough to act on, short enough to read.
    top_movers: Annotated[int, Field(ge=0, le=200)] = 10


class MonitoringConfig(_Frozen):
    """Watching the runs (docs/MONITORING.md)."""

    # PSI of features and scores against the champions' training reference (serving/drift.py).
    drift: DriftSettings = DriftSettings()
    # Published runs against what their customers then did, once a horizon has passed.
    backtest: BacktestConfig = BacktestConfig()


class PostgresConfig(_Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # A URL holds a password: prefer the environment variable CUSTSCORE_POSTGRES_URL (it wins over this).
    url: str | None = None
    schema_name: Annotated[str, Field(alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "custscore"
    # The switch of a publish waits this long for readers holding the views (readers arriving meanwhile
    # wait behind it, so it is also how long a dashboard may stall), then lets them through and retries.
    switch_lock_timeout_seconds: Annotated[float, Field(gt=0)] = 3.0
    switch_attempts: Annotated[int, Field(ge=1)] = 5


class SinksConfig(_Frozen):
    postgres: PostgresConfig = PostgresConfig()


class ScorecardConfig(ScorecardRules):
    """The `scorecard:` section: weights and grade thresholds of the key-account scorecard
    (serving/scorecard.py's ScorecardRules as it is; docs/SCORECARD.md)."""


ENGINE_ENV = "CUSTSCORE_ENGINE"


class EngineConfig(EngineSettings):
    """The `engine:` section: `engine: spark` alone, or `name` with a `spark:` block (features/engines).

    The CLI's `--engine` reaches the flows through $CUSTSCORE_ENGINE, which wins over the file,
    so a scheduled deployment can switch engine the same way.
    """

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, data: object) -> object:
        return {"name": data} if isinstance(data, str) else data


class PaymentRiskConfig(PaymentRiskSettings):
    """The `payment_risk:` section: the payment-risk model's label and the credit grades
    (serving/payment_risk.py's PaymentRiskSettings as it is; docs/CREDIT.md)."""
class ProspectsConfig(_Frozen):
    """The `prospects:` section: the prospect model and the prospects that join the scorecard (docs/PROSPECTS.md)."""

    # Off: prospects stay unscored `new`, as they do when the data has nothing to know them by.
    enabled: bool = True
    # Prospects are a few percent of the customers table at any date, so more and closer snapshots
    # than churn's: 12 a month apart gave about 3,300 training rows on the 5,000-customer demo.
    n_snapshots: Annotated[int, Field(ge=1)] = 12
    step_days: Annotated[int, Field(ge=1)] = 30
    # prospect_value learns from the customers whose first order fell in this many days before
    # (scoring date - value horizon): a recent year of converters whose whole first horizon is seen.
    value_lookback_days: Annotated[int, Field(ge=30)] = 365
    # Every prospect_value is a mean over at least this many converters with similar attributes.
    min_converters_per_leaf: Annotated[int, Field(ge=5)] = 50
    # The classifier's settings: the churn model's defaults suit a few thousand rows.
    model: ChurnParams = ChurnParams()
    # The gate's too-good limits for this model. Days since sign-up is a prospect's strongest honest
    # signal (a sign-up of last week is usually about to buy; one of last year has waited): it carried
    # 71% of the gain on the 100,000-customer demo, so one feature may carry up to 0.9 here.
    too_good: TooGoodLimits = TooGoodLimits(feature_gain_share_above=0.9)
    # Which prospects join the scorecard as potential accounts (serving/prospects.py PotentialRule):
    # by default the fifth with the highest expected value, a share a sales team can work.
    potential: PotentialRule = PotentialRule()


class CustscoreConfig(_Frozen):
    data: DataConfig = DataConfig()
    # duckdb: one machine, as always; spark: validation, features, labels and training sets on Spark.
    engine: EngineConfig = EngineConfig()
    demo: DemoConfig = DemoConfig()
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    training: TrainingConfig = TrainingConfig()
    models: ModelsConfig = ModelsConfig()
    valuation: ValuationConfig = ValuationConfig()
    scoring: ScoringConfig = ScoringConfig()
    segments: SegmentRules
    schedules: ScheduleConfig = ScheduleConfig()
    actions: ActionsConfig = ActionsConfig()
    alerts: AlertsConfig = AlertsConfig()
    report: ReportConfig = ReportConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    sinks: SinksConfig = SinksConfig()
    scorecard: ScorecardConfig = ScorecardConfig()
    payment_risk: PaymentRiskConfig = PaymentRiskConfig()
    prospects: ProspectsConfig = ProspectsConfig()

    @model_validator(mode="before")
    @classmethod
    def _season_horizons_from_labels(cls, data: object) -> object:
        """features.season_horizons_days: the label horizons when features.seasonal, else none."""
        if not isinstance(data, dict):
            return data
        features, labels = data.get("features") or {}, data.get("labels") or {}
        if isinstance(features, BaseModel):
            features = features.model_dump()
        elif isinstance(features, dict) and "season_horizons_days" in features:
            raise ValueError("features.season_horizons_days is not a setting: season features follow "
                             "features.seasonal and the label horizons; set those instead")
        if isinstance(labels, BaseModel):
            labels = labels.model_dump()
        if not isinstance(features, dict) or not isinstance(labels, dict):
            return data
        horizons = [labels.get("churn_horizon_days", 90), labels.get("value_horizon_days", 365)]
        seasons = tuple(h for h in horizons if isinstance(h, int) and h > 0) if features.get("seasonal", True) else ()
        return {**data, "features": {**features, "season_horizons_days": seasons}}

    def scoring_settings(self) -> ScoringSettings:
        """What a scoring run takes from this configuration (its sections as they are)."""
        return ScoringSettings(value_horizon_days=self.labels.value_horizon_days,
                               churn_horizon_days=self.labels.churn_horizon_days,
                               annual_discount_rate=self.valuation.annual_discount_rate,
                               scoring=self.scoring, segments=self.segments, drift=self.monitoring.drift,
                               scorecard=self.scorecard)

    def with_overrides(self, **sections: dict) -> CustscoreConfig:
        """Return a copy with some fields of some sections replaced (CLI flags)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        return CustscoreConfig.model_validate(data)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or does not match the schema."""


def load_config(path: Path | None = None) -> CustscoreConfig:
    """Read and validate a YAML config (default: configs/default.yaml)."""
    path = Path(path) if path else DEFAULT_CONFIG
    raw = _read_yaml(path)
    raw = _engine_from_environment(raw)
    segments_file = raw.pop("segments_file", "segments.yaml")
    if "segments" not in raw:
        raw["segments"] = _read_yaml(_segments_path(path, segments_file))
    try:
        return CustscoreConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: configuration does not match the schema:\n{_explain(exc)}") from exc


def _engine_from_environment(raw: dict) -> dict:
    """$CUSTSCORE_ENGINE (set by `--engine`) names the engine whatever the file says; its spark settings stay."""
    name = os.environ.get(ENGINE_ENV)
    if not name:
        return raw
    section = raw.get("engine")
    section = {"name": section} if isinstance(section, str) or section is None else dict(section)
    return {**raw, "engine": {**section, "name": name}}


def _resolve(config_path: Path, relative: str) -> Path:
    candidate = config_path.parent / relative
    return candidate if candidate.exists() else CONFIGS_DIR / relative


def _segments_path(config_path: Path, segments_file: object) -> Path:
    """The segment rules file a config names: next to the config, else among the shipped configs/."""
    if not isinstance(segments_file, str) or not segments_file.strip():
        raise ConfigError(f"{config_path}: segments_file must be a file name (got {segments_file!r}); "
                          "e.g. segments_file: segments.yaml")
    path = _resolve(config_path, segments_file)
    if not path.exists():
        raise ConfigError(f"{config_path}: segments_file {segments_file!r} is found neither next to it "
                          f"({config_path.parent / segments_file}) nor in {CONFIGS_DIR}; fix the name or copy the file there")
    return path


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping.

    PyYAML keeps the last of two equal keys, so a second `monitoring:` block would silently
    replace the first; a config must say each thing once.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` brings defaults a key written beside it may override: no duplicate
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # the base loader rejects an unhashable key with its own message
            if key in first_line:
                raise DuplicateKeyError(key, line, first_line[key])
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    """A key that appears twice in one YAML mapping, with both lines."""

    def __init__(self, key: object, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: key {key!r} appears twice in the same block (first at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


def read_yaml_text(text: str) -> object:
    """Parse YAML like `yaml.safe_load`, but a key written twice in one mapping is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: configuration file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: is a folder, not a configuration file; give a YAML file, e.g. {DEFAULT_CONFIG}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                          "save the configuration as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        raw = read_yaml_text(text) or {}
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}, line {exc.line}: key {exc.key!r} appears twice in the same block (first at "
                          f"line {exc.first_line}); keep one and merge the settings into it") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}{_yaml_position(exc)}: not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    return raw


def _yaml_position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # PyYAML's own text spans several lines with a caret drawing; the position is given apart.
    problem = getattr(exc, "problem", None)
    return " ".join(str(problem or exc).split())


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        lines.append(f"  - {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def custscore_home() -> Path:
    """The custscore home folder: $CUSTSCORE_HOME, else ./.custscore."""
    return Path(os.environ.get(HOME_ENV, ".custscore")).resolve()
