"""Exact path-dependent TreeSHAP for binary sklearn GradientBoostingClassifier, compiled with numba.

Gives the same per-feature values as ``shap.TreeExplainer(model).shap_values(X)`` with
feature_perturbation="tree_path_dependent" on the raw log-odds output.

Method: in path-dependent TreeSHAP (Lundberg et al. 2018, Algorithm 2) a leaf's contribution to a
row depends on the row only through which of the leaf path's unique features the row agrees with
(the path's "one fractions"); the "zero fractions" are products of cover ratios fixed by the tree.
So for every leaf and every agreement pattern the EXTEND/UNWIND path sums are computed once, when
the explainer is built. A leaf's agreement pattern is in turn fixed by the outcomes of the splits
on its path, so the leaves of a whole subtree (a "group": up to MAX_GROUP_BITS splits counting
its ancestors; the whole tree at depth 3, each half at depth 4) share one table with a row per
pattern of the group's split outcomes, holding the sum of its leaves' contributions by feature.
Explaining a row is then, per group: evaluate its splits, read one table row, add it. Row by
row this cost 1,000 rows 8 ms on v2.3.1, against 30 ms for the per-leaf tables it replaced (41
against 411 ms on v2.4.0). Batches are explained column-wise (``_shap_columns``), a few rows
one at a time (``_shap_serial``), both in one thread: a parallel kernel measured no faster on
two shared cores, and a replica is sized as one process on one core.

Matching shap's numerics: inputs are rounded to float32 first (as sklearn and shap both do for
these trees), node cover is ``weighted_n_node_samples``, leaf values are scaled by the learning
rate and a missing value follows the node's default (missing-value) child.

Compiling the kernels takes about 8 s, so the machine code is cached on disk (``cache=True``)
and a later process on the same machine loads it in well under a second. numba picks the directory:
``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` beside this file, else the user's cache dir (the
first one it can write). A cache entry is used only when this file's content hash and the CPU
(name and features) match; anything else is recompiled and added. Where no directory is writable
the kernels compile in-process on first use, as without a cache (see ``warm``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numba
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher
    from sklearn.ensemble import GradientBoostingClassifier

# From this many rows on, a batch is explained column-wise (``_shap_columns``), in blocks of
# COLUMN_BLOCK rows (its columns, values and patterns stay in the first-level caches). Measured
# on v2.3.1 (minimum of 3,000 calls, row-wise against column-wise): 1 row 14 against 19 µs,
# 4 rows 44 against 33 µs, 1,000 rows 9.7 against 3.4 ms.
COLUMNS_MIN_ROWS = 4
COLUMN_BLOCK = 256
# A leaf with k unique path features needs 2**k * k table entries (8 bytes each); models whose
# worst case exceeds this are left to shap.
MAX_TABLE_ENTRIES = 4_000_000
# Leaves are explained in groups (whole subtrees) whose split outcomes, at most this many, index
# one table of summed contributions: 2**bits rows of the group's features. Measured on v2.3.1
# (depth 3, one group a tree) and v2.4.0 (depth 4, two): see GradientBoostingTreeShap.
MAX_GROUP_BITS = 8

log = logging.getLogger("model_server")

# The kernels' arrays (numba ignores these annotations: it types each call by its arguments).
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
# The kernels' model: the explainer's arrays in ARRAY_NAMES order.
KernelArrays = tuple[npt.NDArray[Any], ...]

_Kernel = TypeVar("_Kernel", bound=Callable[..., Any])


def _cached_njit(*, nogil: bool = False) -> Callable[[_Kernel], Dispatcher[_Kernel]]:
    """numba.njit with an on-disk cache, or without one when no cache directory is writable."""

    def decorate(func: _Kernel) -> Dispatcher[_Kernel]:
        try:
            return numba.njit(cache=True, nogil=nogil)(func)
        except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
            log.warning(
                "numba cache unavailable, %s compiles in every process: %s", func.__name__, exc
            )
            return numba.njit(nogil=nogil)(func)

    return decorate


@numba.njit(inline="always")
def _extend_path(
    zero: Floats,
    one: Floats,
    pweight: Floats,
    depth: int,
    zero_fraction: float,
    one_fraction: float,
) -> None:
    zero[depth] = zero_fraction
    one[depth] = one_fraction
    pweight[depth] = 1.0 if depth == 0 else 0.0
    for i in range(depth - 1, -1, -1):
        pweight[i + 1] += one_fraction * pweight[i] * (i + 1) / (depth + 1)
        pweight[i] = zero_fraction * pweight[i] * (depth - i) / (depth + 1)


@numba.njit(inline="always")
def _unwound_path_sum(
    zero: Floats, one: Floats, pweight: Floats, depth: int, path_index: int
) -> float:
    one_fraction = one[path_index]
    zero_fraction = zero[path_index]
    next_one_portion = pweight[depth]
    total = 0.0
    if one_fraction != 0:
        for i in range(depth - 1, -1, -1):
            tmp = next_one_portion / ((i + 1) * one_fraction)
            total += tmp
            next_one_portion = pweight[i] - tmp * zero_fraction * (depth - i)
    else:
        for i in range(depth - 1, -1, -1):
            total += pweight[i] / (zero_fraction * (depth - i))
    return total * (depth + 1)


@_cached_njit(nogil=True)
def _build_tables(
    leaf: tuple[Floats, Ints, Ints, Ints, Ints],
    step: tuple[Bools, Ints, Ints],
    slot: tuple[Floats, Ints],
    group: tuple[Ints, Ints, Ints, Ints, Ints],
    n_entries: int,
    n_group_entries: int,
    n_patterns: int,
) -> tuple[Floats, Ints]:
    """Each group's table: its leaves' contributions summed per pattern of its split outcomes.

    First the per-leaf tables (Algorithm 2's path sums for every agreement mask of the leaf's
    unique features), then, for every pattern of the group's split outcomes, each leaf's mask
    under that pattern and the sum of the entries it selects, by feature. ``pattern_leaf`` is
    the leaf a pattern reaches in its group, or -1 when it leaves the group.
    """
    leaf_value, leaf_k, leaf_slot_start, leaf_table_start, leaf_step_start = leaf
    step_left, step_slot, step_bit = step
    slot_zero, slot_position = slot
    group_leaf_start, group_bit_start, group_feature_start, group_table_start = group[:4]
    group_pattern_start = group[4]
    table = np.zeros(n_entries, dtype=np.float64)
    size = leaf_k.max() + 1 if leaf_k.shape[0] > 0 else 1
    zero = np.empty(size, dtype=np.float64)
    one = np.empty(size, dtype=np.float64)
    pweight = np.empty(size, dtype=np.float64)
    for lf in range(leaf_k.shape[0]):
        k = leaf_k[lf]
        value = leaf_value[lf]
        slots = leaf_slot_start[lf]
        start = leaf_table_start[lf]
        for mask in range(1 << k):
            # Element 0 is the root's empty feature, as in the recursion.
            _extend_path(zero, one, pweight, 0, 1.0, 1.0)
            for j in range(k):
                one_fraction = 1.0 if (mask >> j) & 1 else 0.0
                _extend_path(zero, one, pweight, j + 1, slot_zero[slots + j], one_fraction)
            for j in range(k):
                w = _unwound_path_sum(zero, one, pweight, k, j + 1)
                table[start + mask * k + j] = w * (one[j + 1] - zero[j + 1]) * value
    group_table = np.zeros(n_group_entries, dtype=np.float64)
    pattern_leaf = np.full(n_patterns, -1, dtype=np.int64)
    for g in range(group_leaf_start.shape[0] - 1):
        n_bits = group_bit_start[g + 1] - group_bit_start[g]
        width = group_feature_start[g + 1] - group_feature_start[g]
        for pattern in range(1 << n_bits):
            row = group_table_start[g] + pattern * width
            for lf in range(group_leaf_start[g], group_leaf_start[g + 1]):
                k = leaf_k[lf]
                full = (1 << k) - 1
                mask = full
                for s in range(leaf_step_start[lf], leaf_step_start[lf + 1]):
                    went_left = (pattern >> step_bit[s]) & 1 == 1
                    if went_left != step_left[s]:
                        mask &= ~(1 << step_slot[s])
                slots = leaf_slot_start[lf]
                entry = leaf_table_start[lf] + mask * k
                for j in range(k):
                    group_table[row + slot_position[slots + j]] += table[entry + j]
                if mask == full:
                    pattern_leaf[group_pattern_start[g] + pattern] = lf
    return group_table, pattern_leaf


@_cached_njit(nogil=True)
def _shap_serial(X: Floats, model: KernelArrays, base: float) -> tuple[Floats, Floats]:
    """(log-odds, SHAP values) of a few rows, one row at a time.

    Per group the row's split outcomes form the pattern that indexes the group's table: one
    look-up per group, its features' values added. Trees are the outer loop so one tree's
    tables stay in cache across rows. The pattern also gives the value of the leaf the row
    reaches (0.0 in the tree's other groups: adding it changes no float), so the same pass
    evaluates the trees: ``raw`` gets the reached leaves' values added in tree order, the
    arithmetic of sklearn's ``_raw_predict``.
    """
    (
        tree_group_start,
        group_bit_start,
        bit_feature,
        bit_threshold,
        bit_default_left,
        group_feature_start,
        group_feature,
        group_table_start,
        group_table,
        group_pattern_start,
        pattern_value,
    ) = model
    phi = np.zeros(X.shape, dtype=np.float64)
    raw = np.full(X.shape[0], base, dtype=np.float64)
    for t in range(tree_group_start.shape[0] - 1):
        for r in range(X.shape[0]):
            x = X[r]
            for g in range(tree_group_start[t], tree_group_start[t + 1]):
                first_bit = group_bit_start[g]
                pattern = 0
                for b in range(first_bit, group_bit_start[g + 1]):
                    value = x[bit_feature[b]]
                    went_left = (value <= bit_threshold[b]) | (
                        np.isnan(value) & bit_default_left[b]
                    )
                    pattern |= np.int64(went_left) << (b - first_bit)
                features = group_feature_start[g]
                width = group_feature_start[g + 1] - features
                row = group_table_start[g] + pattern * width
                for j in range(width):
                    phi[r, group_feature[features + j]] += group_table[row + j]
                raw[r] += pattern_value[group_pattern_start[g] + pattern]
    return raw, phi


@_cached_njit(nogil=True)
def _shap_columns(X: Floats, model: KernelArrays, base: float) -> tuple[Floats, Floats]:
    """The same values as ``_shap_serial`` (the same additions in the same order), for a batch.

    Here each step runs down a block of rows at once: the rows' outcomes of one split (a
    compare over a column, which the compiler vectorises), then each of the group's features'
    look-ups for every row. For one row the transposes cost more than they save.
    """
    (
        tree_group_start,
        group_bit_start,
        bit_feature,
        bit_threshold,
        bit_default_left,
        group_feature_start,
        group_feature,
        group_table_start,
        group_table,
        group_pattern_start,
        pattern_value,
    ) = model
    n_rows, n_features = X.shape
    columns = np.ascontiguousarray(X.T)
    phi = np.zeros((n_features, n_rows), dtype=np.float64)
    raw = np.full(n_rows, base, dtype=np.float64)
    pattern = np.empty(COLUMN_BLOCK, dtype=np.int64)
    for first in range(0, n_rows, COLUMN_BLOCK):
        size = min(n_rows - first, COLUMN_BLOCK)
        for t in range(tree_group_start.shape[0] - 1):
            for g in range(tree_group_start[t], tree_group_start[t + 1]):
                first_bit = group_bit_start[g]
                pattern[:size] = 0
                for b in range(first_bit, group_bit_start[g + 1]):
                    column = columns[bit_feature[b]]
                    threshold = bit_threshold[b]
                    default_left = bit_default_left[b]
                    shift = b - first_bit
                    for i in range(size):
                        value = column[first + i]
                        went_left = (value <= threshold) | (np.isnan(value) & default_left)
                        pattern[i] |= np.int64(went_left) << shift
                features = group_feature_start[g]
                width = group_feature_start[g + 1] - features
                table = group_table_start[g]
                for j in range(width):
                    out = phi[group_feature[features + j]]
                    for i in range(size):
                        out[first + i] += group_table[table + pattern[i] * width + j]
                values = group_pattern_start[g]
                for i in range(size):
                    raw[first + i] += pattern_value[values + pattern[i]]
    return raw, np.ascontiguousarray(phi.T)


@_cached_njit(nogil=True)
def _log_odds(X: Floats, model: KernelArrays, base: float) -> Floats:
    """The log-odds alone, as ``_shap_serial`` adds them (the same additions in the same order,
    so the same bits), for an answer that asks for no reasons: no table is read."""
    (
        tree_group_start,
        group_bit_start,
        bit_feature,
        bit_threshold,
        bit_default_left,
        _group_feature_start,
        _group_feature,
        _group_table_start,
        _group_table,
        group_pattern_start,
        pattern_value,
    ) = model
    raw = np.full(X.shape[0], base, dtype=np.float64)
    for t in range(tree_group_start.shape[0] - 1):
        for r in range(X.shape[0]):
            x = X[r]
            for g in range(tree_group_start[t], tree_group_start[t + 1]):
                first_bit = group_bit_start[g]
                pattern = 0
                for b in range(first_bit, group_bit_start[g + 1]):
                    value = x[bit_feature[b]]
                    went_left = (value <= bit_threshold[b]) | (
                        np.isnan(value) & bit_default_left[b]
                    )
                    pattern |= np.int64(went_left) << (b - first_bit)
                raw[r] += pattern_value[group_pattern_start[g] + pattern]
    return raw


@_cached_njit(nogil=True)
def _log_odds_columns(X: Floats, model: KernelArrays, base: float) -> Floats:
    """``_log_odds`` for a batch, column-wise as ``_shap_columns`` walks it (the same additions
    in the same order)."""
    (
        tree_group_start,
        group_bit_start,
        bit_feature,
        bit_threshold,
        bit_default_left,
        _group_feature_start,
        _group_feature,
        _group_table_start,
        _group_table,
        group_pattern_start,
        pattern_value,
    ) = model
    n_rows = X.shape[0]
    columns = np.ascontiguousarray(X.T)
    raw = np.full(n_rows, base, dtype=np.float64)
    pattern = np.empty(COLUMN_BLOCK, dtype=np.int64)
    for first in range(0, n_rows, COLUMN_BLOCK):
        size = min(n_rows - first, COLUMN_BLOCK)
        for t in range(tree_group_start.shape[0] - 1):
            for g in range(tree_group_start[t], tree_group_start[t + 1]):
                first_bit = group_bit_start[g]
                pattern[:size] = 0
                for b in range(first_bit, group_bit_start[g + 1]):
                    column = columns[bit_feature[b]]
                    threshold = bit_threshold[b]
                    default_left = bit_default_left[b]
                    shift = b - first_bit
                    for i in range(size):
                        value = column[first + i]
                        went_left = (value <= threshold) | (np.isnan(value) & default_left)
                        pattern[i] |= np.int64(went_left) << shift
                values = group_pattern_start[g]
                for i in range(size):
                    raw[first + i] += pattern_value[values + pattern[i]]
    return raw


Path = list[tuple[int, bool]]
Group = tuple[list[int], list[tuple[int, Path]]]


def tree_groups(left: list[int], right: list[int]) -> list[Group]:
    """A tree's leaves cut into groups of whole subtrees, in depth-first order (left first).

    Each group is (its split nodes: the subtree root's ancestors, then the subtree's own splits,
    preorder; its leaves with their paths as (node, went_left) steps). A subtree is one group
    when its splits and its ancestors number at most MAX_GROUP_BITS; a single leaf always is.
    """
    groups: list[Group] = []
    stack: list[tuple[int, Path]] = [(0, [])]
    while stack:
        root, above = stack.pop()
        splits: list[int] = []
        leaves: list[tuple[int, Path]] = []
        below: list[tuple[int, Path]] = [(root, above)]
        while below:
            node, path = below.pop()
            if left[node] < 0:
                leaves.append((node, path))
                continue
            splits.append(node)
            below.append((right[node], [*path, (node, False)]))
            below.append((left[node], [*path, (node, True)]))
        if left[root] >= 0 and len(above) + len(splits) > MAX_GROUP_BITS:
            stack.append((right[root], [*above, (root, False)]))
            stack.append((left[root], [*above, (root, True)]))
            continue
        groups.append(([node for node, _ in above] + splits, leaves))
    return groups


def _table_entries_bound(model: GradientBoostingClassifier) -> int:
    total = 0
    for estimator in model.estimators_[:, 0]:
        depth = int(estimator.tree_.max_depth)
        total += int(estimator.tree_.n_leaves) * (1 << depth) * depth
    return total


def _group_entries(model: GradientBoostingClassifier) -> int:
    n_features = int(model.n_features_in_)
    total = 0
    for estimator in model.estimators_[:, 0]:
        tree = estimator.tree_
        for bits, _ in tree_groups(tree.children_left.tolist(), tree.children_right.tolist()):
            total += (1 << len(bits)) * min(len(bits), n_features)
    return total


def constant_init_raw(model: GradientBoostingClassifier) -> float:
    """The raw prediction every row starts from: the prior's log-odds (0.0 for init="zero").

    sklearn computes it with the loss's ``get_init_raw_predictions``; calling its own method on
    one row gives the very float it adds to every row. A custom ``init`` estimator depends on
    the row, which the kernels cannot model (``is_supported`` rejects it).
    """
    probe = np.zeros((1, int(model.n_features_in_)), dtype=np.float64)
    return float(model._raw_predict_init(probe)[0, 0])


def _has_constant_init(model: GradientBoostingClassifier) -> bool:
    from sklearn.dummy import DummyClassifier

    init = getattr(model, "init_", None)
    return init == "zero" or isinstance(init, DummyClassifier)


def is_supported(model: Any) -> bool:
    """Binary GradientBoostingClassifier (prior or zero init) with trees shallow enough for the
    per-leaf tables."""
    # Imported here: a start from the cached tables (model_server.table_cache) needs no
    # scikit-learn, which costs about 2 s of imports.
    from sklearn.ensemble import GradientBoostingClassifier

    return (
        isinstance(model, GradientBoostingClassifier)
        and hasattr(model, "estimators_")
        and model.estimators_.ndim == 2
        and model.estimators_.shape[1] == 1
        and model.estimators_.shape[0] > 0
        and _has_constant_init(model)
        and _table_entries_bound(model) <= MAX_TABLE_ENTRIES
        and _group_entries(model) <= MAX_TABLE_ENTRIES
    )


# The explainer's arrays, in the order the kernels take them.
ARRAY_NAMES = (
    "tree_group_start",
    "group_bit_start",
    "bit_feature",
    "bit_threshold",
    "bit_default_left",
    "group_feature_start",
    "group_feature",
    "group_table_start",
    "group_table",
    "group_pattern_start",
    "pattern_value",
)


class GradientBoostingTreeShap:
    """Per-feature path-dependent SHAP values of a binary GradientBoostingClassifier's log-odds."""

    def __init__(self, model: GradientBoostingClassifier) -> None:
        if not is_supported(model):
            raise ValueError("only binary sklearn GradientBoostingClassifier models are supported")
        self.n_features = int(model.n_features_in_)
        scale = float(model.learning_rate)
        step_left: list[bool] = []
        step_slot: list[int] = []
        step_bit: list[int] = []
        leaf_step_start = [0]
        leaf_k: list[int] = []
        leaf_value: list[float] = []
        leaf_slot_start: list[int] = []
        slot_zero: list[float] = []
        slot_position: list[int] = []
        leaf_table_start: list[int] = []
        n_entries = 0
        tree_group_start = [0]
        group_leaf_start = [0]
        group_bit_start = [0]
        bit_feature: list[int] = []
        bit_threshold: list[float] = []
        bit_default_left: list[bool] = []
        group_feature_start = [0]
        group_feature: list[int] = []
        group_table_start = [0]
        group_pattern_start = [0]
        for estimator in model.estimators_[:, 0]:
            tree = estimator.tree_
            left = tree.children_left.tolist()
            right = tree.children_right.tolist()
            features = tree.feature.tolist()
            thresholds = tree.threshold.tolist()
            cover = tree.weighted_n_node_samples.tolist()
            values = tree.value.reshape(tree.node_count).tolist()
            if hasattr(tree, "missing_go_to_left"):
                default_left = [bool(flag) for flag in tree.missing_go_to_left]
            else:
                default_left = [True] * tree.node_count
            for bits, leaves in tree_groups(left, right):
                bit_of = {node: i for i, node in enumerate(bits)}
                bit_feature.extend(features[node] for node in bits)
                bit_threshold.extend(thresholds[node] for node in bits)
                bit_default_left.extend(default_left[node] for node in bits)
                position: dict[int, int] = {}
                for leaf, path in leaves:
                    # Unique features in order of first use; zero fraction multiplies cover ratios.
                    slots: dict[int, int] = {}
                    zeros: list[float] = []
                    for parent, went_left in path:
                        child = left[parent] if went_left else right[parent]
                        ratio = cover[child] / cover[parent]
                        slot = slots.setdefault(features[parent], len(slots))
                        if slot == len(zeros):
                            zeros.append(ratio)
                        else:
                            zeros[slot] = ratio * zeros[slot]
                        step_left.append(went_left)
                        step_slot.append(slot)
                        step_bit.append(bit_of[parent])
                    k = len(slots)
                    leaf_step_start.append(len(step_left))
                    leaf_k.append(k)
                    leaf_value.append(values[leaf] * scale)
                    leaf_slot_start.append(len(slot_zero))
                    slot_zero.extend(zeros)
                    slot_position.extend(position.setdefault(f, len(position)) for f in slots)
                    leaf_table_start.append(n_entries)
                    n_entries += (1 << k) * k
                group_leaf_start.append(len(leaf_k))
                group_bit_start.append(len(bit_feature))
                group_feature.extend(position)
                group_feature_start.append(len(group_feature))
                group_table_start.append(group_table_start[-1] + (1 << len(bits)) * len(position))
                group_pattern_start.append(group_pattern_start[-1] + (1 << len(bits)))
            tree_group_start.append(len(group_leaf_start) - 1)

        def ints(values: list[int]) -> np.ndarray:
            return np.asarray(values, dtype=np.int64)

        self.leaf_value = np.asarray(leaf_value, dtype=np.float64)
        group_table, pattern_leaf = _build_tables(
            (
                self.leaf_value,
                ints(leaf_k),
                ints(leaf_slot_start),
                ints(leaf_table_start),
                ints(leaf_step_start),
            ),
            (np.asarray(step_left, dtype=np.bool_), ints(step_slot), ints(step_bit)),
            (np.asarray(slot_zero, dtype=np.float64), ints(slot_position)),
            (
                ints(group_leaf_start),
                ints(group_bit_start),
                ints(group_feature_start),
                ints(group_table_start),
                ints(group_pattern_start),
            ),
            n_entries,
            group_table_start[-1],
            group_pattern_start[-1],
        )
        self.tree_group_start = ints(tree_group_start)
        self.group_bit_start = ints(group_bit_start)
        self.bit_feature = ints(bit_feature)
        self.bit_threshold = np.asarray(bit_threshold, dtype=np.float64)
        self.bit_default_left = np.asarray(bit_default_left, dtype=np.bool_)
        self.group_feature_start = ints(group_feature_start)
        self.group_feature = ints(group_feature)
        self.group_table_start = ints(group_table_start)
        self.group_table = group_table
        self.group_pattern_start = ints(group_pattern_start)
        # The reached leaf's value under each pattern, 0.0 where the pattern leaves the group.
        reached = np.maximum(pattern_leaf, 0)
        self.pattern_value = np.where(pattern_leaf >= 0, self.leaf_value[reached], 0.0)
        # Built once: the kernels' argument, typed by numba's dispatcher on every call.
        self._model = self._arrays()
        self.init_raw = constant_init_raw(model)

    @classmethod
    def from_arrays(
        cls, arrays: tuple[np.ndarray, ...], n_features: int, init_raw: float
    ) -> GradientBoostingTreeShap:
        """The explainer whose ``arrays()`` these are, without the model they were built from."""
        if len(arrays) != len(ARRAY_NAMES):
            raise ValueError(f"expected {len(ARRAY_NAMES)} arrays, got {len(arrays)}")
        explainer = cls.__new__(cls)
        explainer.n_features = n_features
        explainer.init_raw = init_raw
        for name, array in zip(ARRAY_NAMES, arrays, strict=True):
            setattr(explainer, name, array)
        explainer._model = explainer._arrays()
        return explainer

    def arrays(self) -> tuple[np.ndarray, ...]:
        """What the kernels read, in ARRAY_NAMES order: with n_features and init_raw, all of it."""
        return self._model

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name in ARRAY_NAMES)

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw log-odds of shape (n_rows,), SHAP values of shape (n_rows, n_features)).

        The log-odds equal sklearn's ``decision_function``: the same leaves, added in the same
        order to the same initial value.
        """
        matrix = self._matrix(X)
        if matrix.shape[0] < COLUMNS_MIN_ROWS:
            return _shap_serial(matrix, self._model, self.init_raw)
        return _shap_columns(matrix, self._model, self.init_raw)

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """The raw log-odds of shape (n_rows,) without the SHAP values: ``explain``'s, bit for
        bit, at the cost of the trees' splits only."""
        matrix = self._matrix(X)
        if matrix.shape[0] < COLUMNS_MIN_ROWS:
            return _log_odds(matrix, self._model, self.init_raw)
        return _log_odds_columns(matrix, self._model, self.init_raw)

    def _matrix(self, X: np.ndarray) -> np.ndarray:
        matrix = np.asarray(X)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns")
        # The trees split float32 inputs; round exactly as sklearn and shap both do.
        return np.ascontiguousarray(matrix.astype(np.float32).astype(np.float64))

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """SHAP values of shape (n_rows, n_features), equal to shap.TreeExplainer's."""
        return self.explain(X)[1]

    def warm(self) -> None:
        """Compile (or load from the cache) both kernels now instead of on a request."""
        row = np.zeros((1, self.n_features), dtype=np.float64)
        _shap_serial(row, self._model, self.init_raw)
        _shap_columns(row, self._model, self.init_raw)
        _log_odds(row, self._model, self.init_raw)
        _log_odds_columns(row, self._model, self.init_raw)
