"""The output contract: columns and Arrow schemas of the score table and the explanations table.

One score row per customer per run. Explanations are a long table beside it (one row per
reason: numbers and keys; the sentences are in the score table's reason_text_en / _zh),
joined on run_id and customer_id. `conform_scores` / `conform_explanations` turn a
pandas frame or an Arrow table into exactly these columns and types, or say which column
is missing or cannot be converted.
"""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

SCORE_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("as_of", pa.date32()),
        ("run_id", pa.string()),
        ("churn_model_version", pa.string()),
        ("value_model_version", pa.string()),
        ("p_churn", pa.float64()),
        ("expected_revenue", pa.float64()),
        ("expected_margin", pa.float64()),
        ("cost_to_serve", pa.float64()),
        ("net_value", pa.float64()),
        ("clv", pa.float64()),
        ("value_p10", pa.float64()),
        ("value_p90", pa.float64()),
        ("value_tier", pa.string()),
        ("segment", pa.string()),
        ("segment_label_en", pa.string()),
        ("segment_label_zh", pa.string()),
        ("segment_reason", pa.string()),
        ("reasons", pa.string()),  # JSON text, see serving.reason_encoding.reason_columns_table
        ("reason_text_en", pa.string()),
        ("reason_text_zh", pa.string()),
    ]
)
SCORE_COLUMNS: tuple[str, ...] = tuple(SCORE_SCHEMA.names)
# The score table as the store keeps it: texts per scoring chunk, everything else in one file.
SCORE_TEXT_COLUMNS: tuple[str, ...] = ("reasons", "reason_text_en", "reason_text_zh")
SCORE_TEXTS_SCHEMA = pa.schema([SCORE_SCHEMA.field("customer_id"), *(SCORE_SCHEMA.field(c) for c in SCORE_TEXT_COLUMNS)])
SCORE_NUMBERS_SCHEMA = pa.schema([f for f in SCORE_SCHEMA if f.name not in SCORE_TEXT_COLUMNS])

EXPLANATION_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("customer_id", pa.string()),
        ("score", pa.string()),  # 'churn' or 'value'
        ("direction", pa.string()),  # 'raises' or 'lowers'
        ("rank", pa.int16()),  # 1 = strongest reason in that direction
        ("feature", pa.string()),
        ("family", pa.string()),  # key of the feature's family (features/catalog.py)
        ("value", pa.string()),  # feature value as text (attributes are strings)
        ("contribution", pa.float64()),  # SHAP contribution in the model's raw output units
    ]
)
EXPLANATION_COLUMNS: tuple[str, ...] = tuple(EXPLANATION_SCHEMA.names)

SUMMARY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("group_by", pa.string()),  # 'segment' or 'value_tier'
        ("group", pa.string()),
        ("label_en", pa.string()),
        ("label_zh", pa.string()),
        ("customers", pa.int64()),
        ("share_customers", pa.float64()),
        ("current_value", pa.float64()),
        ("share_current_value", pa.float64()),
        ("predicted_value", pa.float64()),
        ("share_predicted_value", pa.float64()),
        ("mean_p_churn", pa.float64()),
    ]
)
SUMMARY_COLUMNS: tuple[str, ...] = tuple(SUMMARY_SCHEMA.names)


class ContractError(ValueError):
    """A table handed to the serving layer does not match the output contract."""


def conform_scores(table: pd.DataFrame | pa.Table, *, where: str = "scores") -> pa.Table:
    """Return the score rows as an Arrow table with exactly SCORE_COLUMNS in contract types."""
    return conform(table, SCORE_SCHEMA, where=where)


def conform_explanations(table: pd.DataFrame | pa.Table, *, where: str = "explanations") -> pa.Table:
    """Return explanation rows as an Arrow table with exactly EXPLANATION_COLUMNS."""
    return conform(table, EXPLANATION_SCHEMA, where=where)



def conform(table: pd.DataFrame | pa.Table, schema: pa.Schema, *, where: str) -> pa.Table:
    """Select the schema's columns in order and cast them; extra columns are dropped."""
    arrow = _to_arrow(table, where=where)
    missing = [name for name in schema.names if name not in arrow.column_names]
    if missing:
        raise ContractError(
            f"{where}: missing column(s) {missing}; the contract needs {list(schema.names)} "
            f"(got {arrow.column_names}). Add the missing columns before publishing."
        )
    columns = [_cast_column(arrow.column(field.name), field, where=where) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _to_arrow(table: pd.DataFrame | pa.Table, *, where: str) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise ContractError(
        f"{where}: expected a pandas DataFrame or a pyarrow Table, got {type(table).__name__}"
    )


def _cast_column(column: pa.ChunkedArray, field: pa.Field, *, where: str) -> pa.ChunkedArray:
    if column.type == field.type:
        return column
    try:
        if pa.types.is_date32(field.type) and (
            pa.types.is_timestamp(column.type) or pa.types.is_string(column.type)
        ):
            return _to_date(column)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_null(column.type):
            return pa.chunked_array([pa.nulls(len(column), field.type)])
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise ContractError(
            f"{where}: column {field.name!r} of type {column.type} cannot be converted to "
            f"{field.type}: {exc}"
        ) from exc


def _to_date(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        column = pc.strptime(column, format="%Y-%m-%d", unit="s")
    return column.cast(pa.timestamp("s")).cast(pa.date32())



def explanations_from_reasons(reasons: pd.DataFrame | pa.Table, customer_ids: pd.Series | pa.Array | list, run_id: str) -> pa.Table:
    """Return explanation rows (EXPLANATION_COLUMNS) from `serving.reasons` output of one chunk.

    `customer_ids[i]` is the customer of chunk row i (the `row` column of the reasons).
    """
    table = reasons if isinstance(reasons, pa.Table) else pa.Table.from_pandas(reasons, preserve_index=False)
    ids = customer_ids if isinstance(customer_ids, pa.Array) else pa.array(pd.Series(customer_ids).astype(str).to_numpy(), type=pa.string())
    rows = table.column("row")
    if len(rows) and pc.max(rows).as_py() >= len(ids):
        raise ContractError(f"explanations: reasons refer to chunk row {pc.max(rows).as_py()} but only {len(ids)} customer ids were given")
    table = table.append_column("customer_id", ids.take(rows)).append_column("run_id", pa.array([run_id] * table.num_rows, type=pa.string()))
    return conform_explanations(table)
