"""What a custscore model returns through MLflow's pyfunc interface, and the pyfunc class itself.

The pyfunc flavour of an LGBMClassifier would return labels; these return scores: p_churn
for the churn model and the value frame for the value model. String columns arrive as text
at the pyfunc boundary and go back to categoricals here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from models.model_files import read_model_file


class ModelPredictor:
    """Scores of a fitted custscore model from a pyfunc input frame."""

    def __init__(self, model: Any, kind: str):
        self.model = model
        self.kind = kind

    def predict(self, model_input: pd.DataFrame) -> pd.DataFrame:
        X = as_model_matrix(model_input, self.model.feature_names_)
        if self.kind == "churn":
            return pd.DataFrame({"p_churn": self.model.predict_proba(X)}, index=model_input.index)
        if self.kind == "payment":
            return pd.DataFrame({"p_pay_late": self.model.predict_proba(X)}, index=model_input.index)
        return self.model.predict(X)


def as_model_matrix(frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """Select the model's features in order; numbers become float64 and text columns categoricals.

    The same feature arrives as int64 from one `custscore features` table and as float64 (with
    missing values) from another, or as nullable Int64: LightGBM reads them all as floats.
    """
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise ValueError(f"input lacks {len(missing)} feature(s) the model needs: {missing[:10]}")
    X = frame[feature_names].copy()
    for col in X.columns:
        X[col] = _model_column(X[col])
    return X


def _model_column(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    if values.dtype == object and values.dropna().map(_is_number).all():
        return pd.to_numeric(values).astype("float64")  # nullable integers after MLflow's schema check
    return values.astype("category")


def _is_number(value: Any) -> bool:
    return pd.api.types.is_number(value) and not isinstance(value, bool)


class CustscorePyfunc(mlflow.pyfunc.PythonModel):
    """The pyfunc MLflow loads from `pipelines/pyfunc_entry.py`: it reads the model file, never a pickle.

    The checksum it checks comes from the model's own MLmodel file, so it catches a damaged
    file; custscore's scoring checks the one recorded in the registry instead.
    """

    def load_context(self, context) -> None:
        config = context.model_config
        model = read_model_file(Path(context.artifacts["model_file"]), config["model_file_sha256"],
                                f"custscore-{config['kind']}")
        self.predictor = ModelPredictor(model, config["kind"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predictor.predict(model_input)
