"""Exact path-dependent TreeSHAP for small LightGBM trees, as lookup tables over split decisions.

LightGBM's `pred_contrib=True` runs the recursive TreeSHAP algorithm per row and tree. For
a leaf l with distinct path features P_l, the values it computes are the Shapley values of
the product game v_l(S) = value_l * prod_{j in P_l} (o_j if j in S else z_j), where o_j is
1 when the row satisfies every split on feature j along the path (else 0) and z_j is the
product of the cover fractions (child count / parent count) of those splits. Every o_j is
a function of the tree's split decisions, so with b splits in a tree a row's contribution
from that tree depends only on its b-bit decision code: a (features x 2**b) table per tree
built once per booster. Explaining a chunk is then vectorised split tests, one gather and
a few column additions per tree; the result equals LightGBM's to rounding (~1e-15).

Split semantics follow LightGBM's Tree::NumericalDecision and Tree::CategoricalDecision
(include/LightGBM/tree.h) and pandas `category` columns are coded as the Python package's
_data_from_pandas does (training categories, unseen and missing -> NaN).
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MAX_SPLITS_PER_TREE = 10
"""Trees with more splits fall back to pred_contrib: the table has 2**splits columns."""

ROW_BLOCK = 16_384
"""Rows explained at once: keeps one block's per-feature accumulators near the CPU caches."""

_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold is a float literal
_MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
_LEAF_KEYS = {"leaf_index", "leaf_value", "leaf_weight", "leaf_count"}
_SPLIT_KEYS = {"split_index", "split_feature", "split_gain", "threshold", "decision_type", "default_left",
               "missing_type", "internal_value", "internal_weight", "internal_count", "left_child", "right_child"}


class UnsupportedModel(ValueError):
    """The booster uses something the table explainer does not reproduce exactly."""


@dataclass(frozen=True)
class Split:
    """One internal node's test: the row goes left when it passes."""

    feature: int
    threshold: float
    default_left: bool
    missing_type: int  # 0 None, 1 Zero, 2 NaN (LightGBM's numbering)
    categories: np.ndarray | None  # categories that go left; None for a numerical split


@dataclass(frozen=True)
class TreeTable:
    """A tree's splits and its contributions per decision code: table[k, code] for features[k]."""

    splits: tuple[Split, ...]
    features: np.ndarray
    table: np.ndarray


@dataclass(frozen=True)
class _LeafPath:
    """A leaf's value, count and the (split index, went left, feature, cover fraction) steps to it."""

    value: float
    count: float
    steps: tuple[tuple[int, bool, int, float], ...]


# --------------------------------------------------------------------------- model checks


def unsupported_reason(model: dict[str, Any], max_splits: int = MAX_SPLITS_PER_TREE) -> str | None:
    """Why a dump_model() dict cannot be explained by tables, or None if it can."""
    if model.get("num_tree_per_iteration", 1) != 1 or model.get("num_class", 1) != 1:
        return f"it has {model.get('num_class')} classes (multiclass output is not supported)"
    if model.get("average_output"):
        return "it averages its trees (random forest mode)"
    for tree in model.get("tree_info", []):  # linear trees are caught by their leaf fields later
        if tree["num_leaves"] - 1 > max_splits:
            return (f"tree {tree.get('tree_index')} has {tree['num_leaves'] - 1} splits, above the "
                    f"limit of {max_splits} (MAX_SPLITS_PER_TREE)")
    return None


# --------------------------------------------------------------------------- building tables


def _parse_split(node: dict[str, Any], tree_index: int) -> Split:
    """A Split from a dump_model() split node, rejecting anything not reproduced exactly."""
    missing = _MISSING_TYPES.get(node.get("missing_type"))
    if missing is None:
        raise UnsupportedModel(f"tree {tree_index} node {node.get('split_index')}: unknown missing_type "
                               f"{node.get('missing_type')!r}")
    if node["decision_type"] == "==":
        cats = np.array(sorted(int(c) for c in str(node["threshold"]).split("||")), dtype=np.int64)
        return Split(int(node["split_feature"]), math.nan, bool(node["default_left"]), missing, cats)
    if node["decision_type"] != "<=":
        raise UnsupportedModel(f"tree {tree_index} node {node.get('split_index')}: unknown decision_type "
                               f"{node['decision_type']!r}")
    return Split(int(node["split_feature"]), float(node["threshold"]), bool(node["default_left"]),
                 missing, None)


def _node_count(node: dict[str, Any]) -> float:
    """Training rows that reached a node (LightGBM's data_count used for cover fractions)."""
    return float(node["leaf_count"] if _is_leaf(node) else node["internal_count"])


def _is_leaf(node: dict[str, Any]) -> bool:
    """Leaves have no split (a single-leaf tree's only node has no leaf_index either)."""
    return "split_index" not in node


def _check_known_keys(node: dict[str, Any], tree_index: int) -> None:
    """Refuse nodes with fields this module does not model (leaf_coeff: a linear tree, ...)."""
    unknown = set(node) - (_LEAF_KEYS if _is_leaf(node) else _SPLIT_KEYS)
    if unknown:
        what = "a linear tree" if "leaf_coeff" in unknown else "fields this explainer does not know"
        raise UnsupportedModel(f"tree {tree_index} is {what} (node fields {sorted(unknown)})")


def _walk_tree(root: dict[str, Any], tree_index: int) -> tuple[list[Split], list[_LeafPath]]:
    """Splits in depth-first order and every leaf's path, from a dump_model() tree structure."""
    splits: list[Split] = []
    leaves: list[_LeafPath] = []
    stack: list[tuple[dict[str, Any], tuple[tuple[int, bool, int, float], ...]]] = [(root, ())]
    while stack:
        node, steps = stack.pop()
        _check_known_keys(node, tree_index)
        if _is_leaf(node):
            leaves.append(_LeafPath(float(node["leaf_value"]), _node_count(node), steps))
            continue
        split = _parse_split(node, tree_index)
        index = len(splits)
        splits.append(split)
        parent = _node_count(node)
        for child, left in ((node["right_child"], False), (node["left_child"], True)):
            fraction = _node_count(child) / parent
            stack.append((child, steps + ((index, left, split.feature, fraction),)))
    return splits, leaves


def _shapley_weights(k: int) -> np.ndarray:
    """w[s] = s!(k-s-1)!/k!: the weight of a coalition of s other players among k."""
    return np.array([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)])


def _elementary_symmetric(values: list[float]) -> list[float]:
    """e_0..e_m of the values: coefficients of prod (1 + v t)."""
    coef = [1.0]
    for v in values:
        coef = [a + v * b for a, b in zip(coef + [0.0], [0.0] + coef, strict=True)]
    return coef


def leaf_table(value: float, zero: np.ndarray) -> np.ndarray:
    """Shapley values [pattern, position] of the product game of one leaf.

    Position p's player has o_p = bit p of the pattern and z_p = zero[p]. For player j,
    phi_j = value (o_j - z_j) sum_{S subset of ones minus j} w(|S|) prod_{i outside S, i != j} z_i;
    the sum over S of each size is an elementary symmetric polynomial of the z's of the ones.
    """
    k = len(zero)
    weights = _shapley_weights(k)
    table = np.zeros((2**k, k))
    for pattern in range(2**k):
        ones = [(pattern >> p) & 1 for p in range(k)]
        for j in range(k):
            if ones[j] == zero[j]:
                continue
            on = [zero[i] for i in range(k) if i != j and ones[i]]
            off = math.prod(zero[i] for i in range(k) if i != j and not ones[i])
            e = _elementary_symmetric(on)
            total = sum(weights[s] * e[len(on) - s] for s in range(len(on) + 1))
            table[pattern, j] = value * (ones[j] - zero[j]) * off * total
    return table


def _leaf_contributions(leaf: _LeafPath, n_splits: int) -> tuple[list[int], np.ndarray]:
    """Features on a leaf's path and their contributions for every decision code, (k, 2**b)."""
    features = list(dict.fromkeys(f for _, _, f, _ in leaf.steps))
    codes = np.arange(2**n_splits)
    pattern = np.zeros(codes.size, dtype=np.int64)
    zero = np.ones(len(features))
    for position, feature in enumerate(features):
        satisfied = np.ones(codes.size, dtype=bool)
        for split, left, f, fraction in leaf.steps:
            if f == feature:
                satisfied &= ((codes >> split) & 1).astype(bool) == left
                zero[position] *= fraction
        pattern |= satisfied.astype(np.int64) << position
    return features, leaf_table(leaf.value, zero)[pattern].T


def build_tree_table(tree: dict[str, Any]) -> tuple[TreeTable | None, float]:
    """A tree's table (None for a single leaf) and its expected value (bias share)."""
    structure = tree["tree_structure"]
    if _is_leaf(structure):
        return None, float(structure["leaf_value"])
    splits, leaves = _walk_tree(structure, tree.get("tree_index", -1))
    root_count = _node_count(structure)
    features = sorted({s.feature for s in splits})
    slot = {f: i for i, f in enumerate(features)}
    table = np.zeros((len(features), 2 ** len(splits)))
    expected = 0.0
    for leaf in leaves:
        expected += leaf.count / root_count * leaf.value  # as Tree::ExpectedValue
        leaf_features, contrib = _leaf_contributions(leaf, len(splits))
        for row, feature in zip(contrib, leaf_features, strict=True):
            table[slot[feature]] += row
    return TreeTable(tuple(splits), np.array(features, dtype=np.intp), table), expected


# --------------------------------------------------------------------------- explaining rows


class _BlockColumns:
    """One row block's feature values and the masks several splits on a feature share."""

    def __init__(self, columns: dict[int, np.ndarray], start: int, stop: int) -> None:
        self.raw = {f: c[start:stop] for f, c in columns.items()}
        self.n = stop - start
        self._zeroed: dict[int, np.ndarray] = {}
        self._nan: dict[int, np.ndarray] = {}
        self._zero: dict[int, np.ndarray] = {}

    def zeroed(self, feature: int) -> np.ndarray:
        """Values with NaN read as 0, as LightGBM does unless the split's missing type is NaN."""
        if feature not in self._zeroed:
            raw = self.raw[feature]
            self._zeroed[feature] = np.where(np.isnan(raw), 0.0, raw)
        return self._zeroed[feature]

    def is_nan(self, feature: int) -> np.ndarray:
        """Where the value is missing."""
        if feature not in self._nan:
            self._nan[feature] = np.isnan(self.raw[feature])
        return self._nan[feature]

    def is_zero(self, feature: int) -> np.ndarray:
        """Where the (NaN-as-0) value counts as zero for a split with missing type Zero."""
        if feature not in self._zero:
            self._zero[feature] = np.abs(self.zeroed(feature)) <= _ZERO_THRESHOLD
        return self._zero[feature]


def goes_left(split: Split, block: _BlockColumns, out: np.ndarray) -> np.ndarray:
    """LightGBM's decision for every row of the block, written to `out`: True where it goes left."""
    f = split.feature
    if split.categories is not None:
        column = block.raw[f]
        # C++ truncates to int first: (-1, 0) reads as category 0; NaN, negatives and values
        # beyond int range come out negative and go right
        valid = (column > -1) & (column < 2**31)
        codes = np.where(valid, column, 0).astype(np.int64)
        np.logical_and(valid, np.isin(codes, split.categories), out=out)
    elif split.missing_type == 2:  # NaN goes the default way; NaN <= t is False (right)
        np.less_equal(block.raw[f], split.threshold, out=out)
        if split.default_left:
            np.logical_or(out, block.is_nan(f), out=out)
    else:
        np.less_equal(block.zeroed(f), split.threshold, out=out)
        if split.missing_type == 1:  # (near) zero, NaN included, goes the default way
            if split.default_left:
                np.logical_or(out, block.is_zero(f), out=out)
            else:
                np.greater(out, block.is_zero(f), out=out)  # out and not zero
    return out


def decision_codes(tree: TreeTable, block: _BlockColumns) -> np.ndarray:
    """Each row's decision code (bit i set when the row goes left at split i), as table indices."""
    dtype = np.uint8 if len(tree.splits) <= 8 else np.uint16
    code = np.zeros(block.n, dtype=dtype)
    left = np.empty(block.n, dtype=bool)
    bit = np.empty(block.n, dtype=dtype)
    for i, split in enumerate(tree.splits):
        goes_left(split, block, left)
        np.multiply(left.view(np.uint8), dtype(1 << i), out=bit)
        np.add(code, bit, out=code)
    return code.astype(np.intp)


class TreeExplainer:
    """Per-tree contribution tables of one booster, built once and reused for every chunk."""

    def __init__(self, model: dict[str, Any], max_splits: int = MAX_SPLITS_PER_TREE,
                 pandas_categorical: list[list[Any]] | None = None) -> None:
        reason = unsupported_reason(model, max_splits)
        if reason is not None:
            raise UnsupportedModel(f"TreeExplainer: cannot explain this booster exactly: {reason}")
        self.n_features = int(model["max_feature_idx"]) + 1
        self.pandas_categorical = pandas_categorical
        self.trees: list[TreeTable] = []
        self.bias = 0.0
        for tree in model["tree_info"]:
            table, expected = build_tree_table(tree)
            self.bias += expected
            if table is not None:
                self.trees.append(table)
        self.used_features = sorted({s.feature for t in self.trees for s in t.splits})

    @classmethod
    def from_booster(cls, booster: lgb.Booster, max_splits: int = MAX_SPLITS_PER_TREE) -> TreeExplainer:
        """Tables for the trees that booster.predict uses by default (up to best_iteration)."""
        # the booster's own category lists: dump_model() passes them through JSON (dates -> text)
        return cls(booster.dump_model(), max_splits, booster.pandas_categorical)

    def contributions(self, X: pd.DataFrame, num_threads: int | None = None) -> np.ndarray:
        """(n, f + 1) contributions of X's rows, bias last, as pred_contrib=True returns them."""
        columns = self.numeric_columns(X)
        n = len(X)
        out = np.empty((n, self.n_features + 1))
        blocks = [(start, min(start + ROW_BLOCK, n)) for start in range(0, n, ROW_BLOCK)]
        workers = max(1, min(num_threads or 2, len(blocks)))
        if workers == 1:
            for start, stop in blocks:
                self._explain_block(columns, out, start, stop)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="treeshap") as pool:
                list(pool.map(lambda b: self._explain_block(columns, out, *b), blocks))
        return out

    def numeric_columns(self, X: pd.DataFrame) -> dict[int, np.ndarray]:
        """The float64 value of each used feature as LightGBM sees it (categories as training codes)."""
        if X.shape[1] != self.n_features:
            raise ValueError(f"TreeExplainer: the matrix has {X.shape[1]} columns but the model has "
                             f"{self.n_features} features; pass X[booster.feature_name()]")
        cat_cols = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
        training = self.pandas_categorical
        if training is not None and len(training) != len(cat_cols):
            raise ValueError(f"TreeExplainer: the matrix has {len(cat_cols)} category columns "
                             f"({cat_cols[:5]}) but the model was trained with {len(training)}; "
                             "keep the training dtypes")
        categories = dict(zip(cat_cols, training if training is not None else [None] * len(cat_cols), strict=True))
        # LightGBM casts the whole matrix to one dtype (float32 when every column fits it)
        dtypes = [np.dtype(np.int16 if c in categories else X[c].dtype).type for c in X.columns]
        target = np.result_type(*dtypes, np.float32)
        result: dict[int, np.ndarray] = {}
        for index in self.used_features:
            column = X.iloc[:, index]
            if column.name in categories:
                result[index] = _category_codes(column, categories[column.name])
            else:
                result[index] = np.asarray(column.to_numpy(dtype=target, na_value=np.nan), dtype=np.float64)
        return result

    def _explain_block(self, columns: dict[int, np.ndarray], out: np.ndarray, start: int, stop: int) -> None:
        """Fill out[start:stop] with the contributions of those rows."""
        block = _BlockColumns(columns, start, stop)
        acc = np.zeros((self.n_features + 1, block.n))  # feature-major: each addition is contiguous
        acc[self.n_features] = self.bias
        gathered = np.empty((max((len(t.features) for t in self.trees), default=0), block.n))
        for tree in self.trees:
            values = gathered[: len(tree.features)]
            # codes are < 2**splits by construction, so clip never clips (and skips the checks)
            np.take(tree.table, decision_codes(tree, block), axis=1, mode="clip", out=values)
            for row, feature in enumerate(tree.features):
                np.add(acc[feature], values[row], out=acc[feature])
        out[start:stop] = acc.T


def _category_codes(column: pd.Series, categories: list[Any] | None) -> np.ndarray:
    """Training-category codes of a pandas category column as float64, NaN for missing/unseen."""
    if categories is not None and list(column.cat.categories) != list(categories):
        column = column.cat.set_categories(categories)
    codes = column.cat.codes.to_numpy().astype(np.float64)
    codes[codes == -1] = np.nan
    return codes


# --------------------------------------------------------------------------- cache per booster


_cache: weakref.WeakKeyDictionary[lgb.Booster, tuple[tuple[int, int, int], TreeExplainer | str]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def explainer_for(booster: lgb.Booster, max_splits: int = MAX_SPLITS_PER_TREE) -> TreeExplainer | str:
    """The booster's cached TreeExplainer, or the reason it cannot have one (logged once)."""
    key = (booster.num_trees(), booster.best_iteration, max_splits)
    with _cache_lock:
        cached = _cache.get(booster)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            found: TreeExplainer | str = TreeExplainer.from_booster(booster, max_splits)
        except (UnsupportedModel, KeyError, TypeError, ValueError) as exc:
            # anything this module does not understand is explained by LightGBM itself
            found = f"{type(exc).__name__}: {exc}"
            logger.warning("explain: using LightGBM pred_contrib (slower) for this booster: %s", found)
        _cache[booster] = (key, found)
        return found
