"""One call for a scoring run: `score_run(chunks, models, settings, ...) -> ScoredRun`.

The whole path of a run lives here, in one layer: BG/NBD + Gamma-Gamma fitted once on the
scored population (for the champions' BTYD columns, the level anchor and the blend alike),
every chunk predicted, explained and written (serving/scoring.py), the anchor and the blend
applied to the run's numbers, then value tiers, segments and account grades (serving/scorecard.py),
which need the whole run.
The caller gives the feature chunks and, when the champions read BTYD columns, a way to get
the population's BTYD inputs before the first chunk; publishing is a sink's job.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from features.transactions import BTYD_INPUT_COLUMNS
from serving.drift import DRIFT_TABLE, DriftMeter
from serving.payment_risk import PAYMENT_RISK_TABLE, PaymentRiskScoring, with_p_pay_late
from serving.reference_adjustments import BtydReference, adjusted_by_reference
from serving.scorecard import TABLE_NAME as ACCOUNT_GRADES
from serving.scorecard import account_grades_table, capturing_scorecard_features
from serving.scored_run import ScoredRun
from serving.scoring import ScoringModels, ScoringResult, score_all
from serving.segments import assign_segments, segment_summary
from serving.settings import ScoringSettings

log = logging.getLogger(__name__)

_BTYD_HORIZON = re.compile(r"^btyd_\w+_(\d+)d$")


class BtydInputsNeededError(ValueError):
    """The champions read BTYD columns but the caller gave no way to get the population's BTYD inputs."""


def score_run(
    chunks: Iterable[pd.DataFrame],
    models: ScoringModels,
    settings: ScoringSettings,
    workdir: Path,
    *,
    run_id: str,
    as_of: dt.date,
    btyd_inputs: Callable[[], pd.DataFrame] | None = None,
    progress: Callable[[int], None] | None = None,
    payment: PaymentRiskScoring | None = None,
) -> ScoredRun:
    """Score, explain, adjust and segment every customer of the feature chunks; the run as tables.

    `btyd_inputs`: the population's customer_id + BTYD_INPUT_COLUMNS (e.g. one query), called
    once when the champions read BTYD columns; otherwise those inputs are taken from the chunks
    as they pass. The reason texts stay in files under `workdir` (the run's tables read them).
    `payment`: the payment-risk part (serving/payment_risk.py), its tables published with the run.
    """
    horizons = btyd_horizons_of(models)
    reference: BtydReference | None = None
    captured: list[pd.DataFrame] = []
    scorecard_features: list[pd.DataFrame] = []
    chunks = capturing_scorecard_features(chunks, scorecard_features)
    if payment is not None:
        chunks = payment.observing(chunks)
    if horizons:
        if btyd_inputs is None:
            raise BtydInputsNeededError(f"the champions read BTYD columns of horizons {horizons}: give score_run the "
                                        "population's BTYD inputs (btyd_inputs)")
        reference = BtydReference(btyd_inputs())
        chunks = (reference.with_columns(chunk, horizons) for chunk in chunks)
    elif needs_btyd_reference(models, settings):
        chunks = _capturing_btyd_inputs(chunks, captured)
    meter = DriftMeter.for_models(models)
    if meter is not None:
        chunks = meter.observing(chunks)  # after the BTYD columns are added: the champions may read them
    result = score_all(chunks, models, settings, workdir, progress, run_id=run_id)
    if payment is not None:  # its work ran while score_all pulled the chunks
        result.timings["payment_risk"] = payment.seconds
    if needs_btyd_reference(models, settings) and reference is None:
        reference = BtydReference(_captured_inputs(captured, btyd_inputs))
    return finished_run(result, models, settings, run_id=run_id, as_of=as_of, meter=meter, reference=reference,
                        scorecard_features=scorecard_features, payment=payment)


def finished_run(result: ScoringResult, models: ScoringModels, settings: ScoringSettings, *, run_id: str, as_of: dt.date,
                 meter: DriftMeter | None, reference: BtydReference | None,
                 scorecard_features: list[pd.DataFrame], payment: PaymentRiskScoring | None = None) -> ScoredRun:
    """What needs the whole run, over its numbers: drift of the scores, anchor and blend, value tiers, segments, grades.

    `meter` has counted the run's features, `reference` is the population's BG/NBD fit (needed
    when `needs_btyd_reference`), `scorecard_features` the scorecard's columns of every chunk,
    `payment` the payment-risk part that observed the chunks (its tables join the run).
    Whoever scored the chunks (one machine, or Spark's tasks) hands the same things here.
    """
    tables = drift_tables(meter, result, settings)
    log.info("scoring seconds by stage: %s", {k: round(v, 1) for k, v in result.timings.items()})
    numbers = result.numbers
    if needs_btyd_reference(models, settings):
        if reference is None:
            raise BtydInputsNeededError("the run's anchor or blend needs BG/NBD fitted on its population: give finished_run "
                                        "the population's BtydReference")
        numbers = adjusted_by_reference(numbers, reference, models.level_anchor, models.blend_weights(settings.scoring.btyd_blend),
                                        settings)
    segmented = assign_segments(numbers, settings.segments)
    summary = segment_summary(segmented, settings.segments)
    if payment is not None:
        tables |= payment.tables(as_of)
    graded = with_p_pay_late(segmented, tables.get(PAYMENT_RISK_TABLE))  # the scorecard's credit reads it
    tables[ACCOUNT_GRADES] = account_grades_table(graded, scorecard_features, settings.scorecard)
    return ScoredRun(run_id, _stamped(segmented, run_id, as_of, models), result.score_parts, result.explanation_parts,
                     pa.Table.from_pandas(summary, preserve_index=False), tables=tables,
                     timings=result.timings, cpu_timings=result.cpu_timings)


def drift_tables(meter: DriftMeter | None, result: ScoringResult, settings: ScoringSettings) -> dict[str, pa.Table]:
    """The run's drift table, scores counted from the models' own outputs (before anchor and blend); none without a reference.

    The seconds drift took are added to the run's stage timings as `drift`.
    """
    if meter is None:
        return {}
    meter.add_scores(result.numbers)
    table = meter.table(settings.drift)
    result.timings["drift"] = meter.seconds
    result.cpu_timings["drift"] = meter.cpu_seconds
    return {DRIFT_TABLE: table}


def btyd_horizons_of(models: ScoringModels) -> list[int]:
    """Horizons of the BG/NBD columns the champions read (their design put them among the features)."""
    names = [*models.churn.feature_names_, *models.value.feature_names_]
    return sorted({int(m.group(1)) for n in names if (m := _BTYD_HORIZON.match(n))})


def needs_btyd_reference(models: ScoringModels, settings: ScoringSettings) -> bool:
    """Whether the run needs BG/NBD + Gamma-Gamma on its population: for a blend, or for a level anchor that may apply."""
    anchor = models.level_anchor
    anchor_may_apply = anchor is not None and (anchor.use_anchor_ or anchor.mode == "auto")
    return anchor_may_apply or any(w > 0 for w in models.blend_weights(settings.scoring.btyd_blend))


def _capturing_btyd_inputs(chunks: Iterable[pd.DataFrame], into: list[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks unchanged; the BTYD input columns of their customers with an order appended to `into`."""
    columns = ["customer_id", *BTYD_INPUT_COLUMNS]
    for chunk in chunks:
        into.append(chunk.loc[chunk["days_since_first_order"].notna(), columns].reset_index(drop=True))
        yield chunk


def _captured_inputs(captured: list[pd.DataFrame], btyd_inputs: Callable[[], pd.DataFrame] | None) -> pd.DataFrame:
    """The inputs the chunks carried; queried when no chunk passed (an empty population)."""
    if captured:
        return pd.concat(captured, ignore_index=True)
    if btyd_inputs is not None:
        return btyd_inputs()
    return pd.DataFrame(columns=["customer_id", *BTYD_INPUT_COLUMNS])


def _stamped(numbers: pd.DataFrame, run_id: str, as_of: dt.date, models: ScoringModels) -> pa.Table:
    """The run's numbers with the columns that are the same on every row."""
    table = pa.Table.from_pandas(numbers, preserve_index=False)
    constant = {"run_id": run_id, "as_of": as_of, "churn_model_version": models.churn_version,
                "value_model_version": models.value_version}
    for name, value in constant.items():
        table = table.append_column(name, pa.array([value] * table.num_rows, type=pa.date32() if name == "as_of" else pa.string()))
    return table
