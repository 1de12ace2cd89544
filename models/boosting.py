"""Shared LightGBM training: input checks, parameters, early stopping, cut at the best round."""

from __future__ import annotations

import logging
import re
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.params import TreeParams

logger = logging.getLogger(__name__)


def check_feature_matrix(X: pd.DataFrame, feature_names: list[str], where: str) -> pd.DataFrame:
    """Return X[feature_names], raising on missing columns or non-numeric, non-category dtypes."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{where}: expected a pandas DataFrame, got {type(X).__name__}")
    missing = [c for c in feature_names if c not in X.columns]
    if missing:
        raise KeyError(
            f"{where}: feature columns {missing[:5]} are not in the matrix "
            f"({len(missing)} missing); pass the feature list the matrix was built with"
        )
    matrix = X[list(feature_names)]
    bad = [
        f"{c} ({matrix[c].dtype})"
        for c in matrix.columns
        if not (
            isinstance(matrix[c].dtype, pd.CategoricalDtype)
            or pd.api.types.is_numeric_dtype(matrix[c])
        )
    ]
    if bad:
        raise TypeError(
            f"{where}: columns {bad[:5]} are neither numeric nor pandas 'category'; convert "
            "text attributes with .astype('category')"
        )
    return matrix


def check_target(y: Any, n_rows: int, where: str) -> np.ndarray:
    """Return y as a finite float array with one value per matrix row."""
    arr = np.asarray(y, dtype=float).ravel()
    if arr.size != n_rows:
        raise ValueError(f"{where}: target has {arr.size} values but the matrix has {n_rows} rows")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{where}: target has {bad.size} missing or infinite values (first at row {bad[0]}); "
            "labels must exist only where the label window is fully observed"
        )
    return arr


# LightGBM parameters that shape the binned matrix; a booster reusing it must agree on them.
DATASET_KEYS = ("max_bin", "bin_construct_sample_cnt", "min_child_samples", "num_threads", "seed",
                "deterministic", "verbosity")


def dataset_params(params: TreeParams) -> dict[str, Any]:
    """How LightGBM bins the matrix: shared by every booster trained on one binned matrix."""
    return {
        "max_bin": params.max_bin,
        "bin_construct_sample_cnt": params.bin_construct_sample_cnt,
        # pre-filtering of unsplittable features depends on the leaf minimum
        "min_child_samples": params.min_child_samples,
        "num_threads": params.num_threads,
        "seed": params.seed,  # also seeds the rows sampled to find bin edges
        "deterministic": True,
        "verbosity": -1,
    }


def lightgbm_params(
    params: TreeParams, objective: str, metric: str, **extra: Any
) -> dict[str, Any]:
    """LightGBM parameter dict from a typed parameter object."""
    return {
        **dataset_params(params),
        "objective": objective,
        "metric": metric,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "max_depth": params.max_depth,
        "bagging_fraction": params.subsample,
        "bagging_freq": params.subsample_freq,
        "feature_fraction": params.colsample_bytree,
        "lambda_l2": params.reg_lambda,
        **extra,
    }


class BinnedMatrices:
    """Training and validation matrices binned once by LightGBM, for every booster fit on them.

    Binning (finding bin edges, then bucketing every value) costs about as much as 50-100
    boosting rounds of a 7-leaf tree, and the value model fits five boosters on the same
    rows: binning once and swapping only the labels gives the same trees (the bins depend
    on the features, not on the target) for a fifth of the cost. `train_subset` keeps the bins.
    """

    def __init__(self, X: pd.DataFrame, X_val: pd.DataFrame, ds_params: dict[str, Any]) -> None:
        # A placeholder label: LightGBM needs one to construct; every fit sets its own.
        self.train = lgb.Dataset(X, label=np.zeros(len(X)), categorical_feature="auto",
                                 params=ds_params, free_raw_data=True).construct()
        self.valid = lgb.Dataset(X_val, label=np.zeros(len(X_val)), reference=self.train,
                                 params=ds_params, free_raw_data=True).construct()

    def with_labels(self, y: np.ndarray, y_val: np.ndarray) -> tuple[lgb.Dataset, lgb.Dataset]:
        """The binned pair carrying these labels (the previous labels are replaced)."""
        self.train.set_label(y)
        self.valid.set_label(y_val)
        return self.train, self.valid

    def train_subset(self, rows: np.ndarray) -> lgb.Dataset:
        """A binned subset of the training rows (same bins), with the labels last set."""
        return self.train.subset(np.sort(np.asarray(rows, dtype=np.int32))).construct()

    def valid_subset(self, rows: np.ndarray) -> lgb.Dataset:
        """A binned subset of the validation rows (same bins), with the labels last set."""
        return self.valid.subset(np.sort(np.asarray(rows, dtype=np.int32))).construct()


def train_early_stopped(
    lgb_params: dict[str, Any],
    n_estimators: int,
    early_stopping_rounds: int,
    X: pd.DataFrame | None,
    y: np.ndarray,
    X_val: pd.DataFrame | None,
    y_val: np.ndarray,
    *,
    binned: BinnedMatrices | None = None,
    train_rows: np.ndarray | None = None,
    valid_rows: np.ndarray | None = None,
    ensemble_size: int = 1,
) -> lgb.Booster:
    """Train with early stopping on the validation set and return a booster cut at the best round.

    Cutting the model (rather than only remembering best_iteration) keeps explanation
    cost and saved models at the size that was actually chosen. With `binned`, X and X_val
    are not read: the matrices binned once are reused with these labels; `train_rows`
    then trains on those rows of the training matrix only, `valid_rows` stops on those
    validation rows only (y and y_val cover every row; the others' labels are not read). With `ensemble_size` k > 1, k
    members differing only in their row and column sampling seeds are each early-stopped
    and averaged into one booster (`average_boosters`); the first member is the single model.
    """
    if binned is None:
        binned = BinnedMatrices(X, X_val, {k: lgb_params[k] for k in DATASET_KEYS if k in lgb_params})
    train_set, valid_set = binned.with_labels(y, y_val)
    if train_rows is not None:
        train_set = binned.train_subset(train_rows)
    if valid_rows is not None:
        valid_set = binned.valid_subset(valid_rows)
    members = [
        _train_member(member_params(lgb_params, i), n_estimators, early_stopping_rounds, train_set, valid_set)
        for i in range(ensemble_size)
    ]
    return average_boosters(members)


def member_params(lgb_params: dict[str, Any], index: int) -> dict[str, Any]:
    """Parameters of ensemble member `index`: the first as given, the others with their own sampling seeds."""
    if index == 0:
        return lgb_params
    seed = int(lgb_params.get("seed", 0)) + index
    return {**lgb_params, "bagging_seed": seed, "feature_fraction_seed": seed}


def _train_member(
    lgb_params: dict[str, Any], n_estimators: int, early_stopping_rounds: int,
    train_set: lgb.Dataset, valid_set: lgb.Dataset,
) -> lgb.Booster:
    """One early-stopped booster, cut at its best round."""
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=n_estimators,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    logger.info("%s: best iteration %d of %d", lgb_params["objective"], best, n_estimators)
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    trimmed.best_iteration = best
    return trimmed


_TREE_HEADER = re.compile(r"(?m)^Tree=\d+\n")
_SCALED_LINE = re.compile(r"(?m)^(leaf_value|internal_value)=(.*)$")


def average_boosters(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One booster whose raw score is the mean of the boosters' raw scores (same data, same features).

    The trees of all members are put in one model with every leaf (and internal) value
    divided by their number: raw scores add over trees, so the sum is the mean. One booster
    keeps everything downstream unchanged: exact TreeSHAP contributions of the merged model
    are the mean of the members' and still add up to its raw score. `best_iteration` is the
    merged model's number of trees, so LightGBM's predict uses all of them.
    """
    if len(boosters) == 1:
        return boosters[0]
    return _merged_boosters(boosters, 1.0 / len(boosters), "average_boosters")


def added_boosters(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One booster whose raw score is the sum of the boosters' raw scores (same features, same bins).

    E.g. log(order days) + log(revenue per order day) = log(revenue): the trees of all boosters in
    one model, so exact TreeSHAP of the sum stays one booster's, adding up to its raw score. The
    model text keeps the first booster's header (its objective names the link LightGBM applies
    when asked for more than the raw score).
    """
    if len(boosters) == 1:
        return boosters[0]
    return _merged_boosters(boosters, 1.0, "added_boosters")


def _merged_boosters(boosters: list[lgb.Booster], factor: float, caller: str) -> lgb.Booster:
    """The trees of every booster in one model, each leaf and internal value multiplied by `factor`."""
    texts = [b.model_to_string() for b in boosters]
    if any("\nis_linear=1\n" in text for text in texts):
        # a linear tree's leaf is a constant plus coefficients; only the constants would be scaled
        raise ValueError(f"{caller}: linear trees cannot be merged by their leaf values")
    names = {tuple(b.feature_name()) for b in boosters}
    if len(names) > 1:
        raise ValueError(f"{caller}: the boosters were trained on different feature columns")
    header, _ = texts[0].split("\nTree=0\n", 1)
    # Per-tree byte sizes only speed up loading; without them LightGBM parses the trees in order.
    header = re.sub(r"(?m)^tree_sizes=.*\n?", "", header + "\n")
    footer = "end of trees" + texts[0].split("end of trees", 1)[1]
    trees = []
    for text in texts:
        body = text[text.index("\nTree=0\n") + 1:text.index("end of trees")]
        trees += [_scaled_tree(block, factor) for block in _TREE_HEADER.split(body)[1:]]
    merged_text = header + "".join(f"Tree={i}\n{block}" for i, block in enumerate(trees)) + footer
    merged = lgb.Booster(model_str=merged_text)
    merged.best_iteration = merged.num_trees()
    return merged


def _scaled_tree(block: str, factor: float) -> str:
    """A tree block of a LightGBM model text with its leaf and internal values multiplied by `factor`."""
    def scale(match: re.Match[str]) -> str:
        values = " ".join(repr(float(v) * factor) for v in match.group(2).split())
        return f"{match.group(1)}={values}"

    return _SCALED_LINE.sub(scale, block)
