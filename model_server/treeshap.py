"""Exact path-dependent TreeSHAP for binary sklearn GradientBoostingClassifier, compiled with numba.

Gives the same per-feature values as ``shap.TreeExplainer(model).shap_values(X)`` with
feature_perturbation="tree_path_dependent" on the raw log-odds output.

Method: in path-dependent TreeSHAP (Lundberg et al. 2018, Algorithm 2) a leaf's contribution to a
row depends on the row only through which of the leaf path's unique features the row agrees with
(the path's "one fractions"); the "zero fractions" are products of cover ratios fixed by the tree.
So for every leaf and every agreement pattern the EXTEND/UNWIND path sums are computed once, when
the explainer is built, and explaining a row becomes: evaluate each split once, build each leaf's
agreement bitmask, and add the table entries. Rows are explained in parallel with the GIL released;
small batches use a serial kernel so single-row latency carries no thread fan-out cost.

Matching shap's numerics: inputs are rounded to float32 first (as sklearn and shap both do for
these trees), node cover is ``weighted_n_node_samples``, leaf values are scaled by the learning
rate and a missing value follows the node's default (missing-value) child.

Compiling the three kernels takes about 15 s, so the machine code is cached on disk (``cache=True``)
and a later process on the same machine loads it in well under a second. numba picks the directory:
``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` beside this file, else the user's cache dir (the
first one it can write). A cache entry is used only when this file's content hash and the CPU
(name and features) match; anything else is recompiled and added. Where no directory is writable
the kernels compile in-process on first use, as without a cache (see ``warm``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import prange
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier

# Below this many rows the serial kernel is used: thread fan-out costs more than it saves.
PARALLEL_MIN_ROWS = 64
# A leaf with k unique path features needs 2**k * k table entries (8 bytes each); models whose
# worst case exceeds this are left to shap.
MAX_TABLE_ENTRIES = 4_000_000

log = logging.getLogger("model_server")


def _cached_njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """numba.njit with an on-disk cache, or without one when no cache directory is writable."""

    def decorate(func: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
            log.warning(
                "numba cache unavailable, %s compiles in every process: %s", func.__name__, exc
            )
            return numba.njit(**options)(func)

    return decorate


@numba.njit(inline="always")
def _extend_path(zero, one, pweight, depth, zero_fraction, one_fraction):
    zero[depth] = zero_fraction
    one[depth] = one_fraction
    pweight[depth] = 1.0 if depth == 0 else 0.0
    for i in range(depth - 1, -1, -1):
        pweight[i + 1] += one_fraction * pweight[i] * (i + 1) / (depth + 1)
        pweight[i] = zero_fraction * pweight[i] * (depth - i) / (depth + 1)


@numba.njit(inline="always")
def _unwound_path_sum(zero, one, pweight, depth, path_index):
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
def _build_tables(leaf_value, leaf_k, leaf_slot_start, slot_zero, leaf_table_start, n_entries):
    """table[start + mask * k + j]: leaf's contribution to its j-th unique feature under mask."""
    table = np.zeros(n_entries, dtype=np.float64)
    size = leaf_k.max() + 1 if leaf_k.shape[0] > 0 else 1
    zero = np.empty(size, dtype=np.float64)
    one = np.empty(size, dtype=np.float64)
    pweight = np.empty(size, dtype=np.float64)
    for leaf in range(leaf_k.shape[0]):
        k = leaf_k[leaf]
        value = leaf_value[leaf]
        slots = leaf_slot_start[leaf]
        start = leaf_table_start[leaf]
        for mask in range(1 << k):
            # Element 0 is the root's empty feature, as in the recursion.
            _extend_path(zero, one, pweight, 0, 1.0, 1.0)
            for j in range(k):
                one_fraction = 1.0 if (mask >> j) & 1 else 0.0
                _extend_path(zero, one, pweight, j + 1, slot_zero[slots + j], one_fraction)
            for j in range(k):
                w = _unwound_path_sum(zero, one, pweight, k, j + 1)
                table[start + mask * k + j] = w * (one[j + 1] - zero[j + 1]) * value
    return table


@numba.njit(inline="always")
def _explain_rows(X, phi, raw, start, stop, go_left, model):
    """Add the SHAP values of rows start..stop over all trees into ``phi``, their leaves to ``raw``.

    Trees are the outer loop so one tree's nodes, paths and table stay in cache across rows.
    A row reaches exactly the leaf whose agreement mask is full (it agrees with every step of
    that path), so the same pass evaluates the trees: ``raw`` gets the reached leaves' values
    added in tree order, the arithmetic of sklearn's ``_raw_predict``.
    """
    (
        tree_node_start,
        tree_leaf_start,
        node_feature,
        node_threshold,
        node_default_left,
        step_node,
        step_left,
        step_slot,
        leaf_step_start,
        leaf_k,
        leaf_slot_start,
        slot_feature,
        leaf_table_start,
        table,
        leaf_value,
    ) = model
    for t in range(tree_node_start.shape[0] - 1):
        first_node = tree_node_start[t]
        for r in range(start, stop):
            x = X[r]
            for node in range(first_node, tree_node_start[t + 1]):
                feature = node_feature[node]
                if feature >= 0:
                    value = x[feature]
                    if np.isnan(value):
                        go_left[node - first_node] = node_default_left[node]
                    else:
                        go_left[node - first_node] = value <= node_threshold[node]
            for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
                k = leaf_k[leaf]
                full = (1 << k) - 1
                mask = full
                for s in range(leaf_step_start[leaf], leaf_step_start[leaf + 1]):
                    # Branch-free: clear the slot's bit when the row leaves this leaf's path here.
                    off_path = go_left[step_node[s] - first_node] != step_left[s]
                    mask &= ~(np.int64(off_path) << step_slot[s])
                slots = leaf_slot_start[leaf]
                entry = leaf_table_start[leaf] + mask * k
                for j in range(k):
                    phi[r, slot_feature[slots + j]] += table[entry + j]
                if mask == full:
                    raw[r] += leaf_value[leaf]


@_cached_njit(nogil=True)
def _shap_serial(X, model, base):
    phi = np.zeros(X.shape, dtype=np.float64)
    raw = np.full(X.shape[0], base, dtype=np.float64)
    go_left = np.empty(_max_tree_nodes(model[0]), dtype=np.bool_)
    _explain_rows(X, phi, raw, 0, X.shape[0], go_left, model)
    return raw, phi


@_cached_njit(nogil=True, parallel=True)
def _shap_parallel(X, model, base, n_threads):
    # n_threads comes from the caller: numba.get_num_threads() inside the kernel is a call through
    # a ctypes pointer, which numba refuses to cache to disk.
    n_rows = X.shape[0]
    phi = np.zeros(X.shape, dtype=np.float64)
    raw = np.full(n_rows, base, dtype=np.float64)
    max_nodes = _max_tree_nodes(model[0])
    n_blocks = max(1, min(n_rows, 4 * n_threads))
    block = (n_rows + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        go_left = np.empty(max_nodes, dtype=np.bool_)
        _explain_rows(X, phi, raw, b * block, min(n_rows, (b + 1) * block), go_left, model)
    return raw, phi


@numba.njit(inline="always")
def _max_tree_nodes(tree_node_start):
    return max(1, np.max(np.diff(tree_node_start)))


def _table_entries_bound(model: GradientBoostingClassifier) -> int:
    total = 0
    for estimator in model.estimators_[:, 0]:
        depth = int(estimator.tree_.max_depth)
        total += int(estimator.tree_.n_leaves) * (1 << depth) * depth
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
    init = getattr(model, "init_", None)
    return init == "zero" or isinstance(init, DummyClassifier)


def is_supported(model: Any) -> bool:
    """Binary GradientBoostingClassifier (prior or zero init) with trees shallow enough for the
    per-leaf tables."""
    return (
        isinstance(model, GradientBoostingClassifier)
        and hasattr(model, "estimators_")
        and model.estimators_.ndim == 2
        and model.estimators_.shape[1] == 1
        and model.estimators_.shape[0] > 0
        and _has_constant_init(model)
        and _table_entries_bound(model) <= MAX_TABLE_ENTRIES
    )


class GradientBoostingTreeShap:
    """Per-feature path-dependent SHAP values of a binary GradientBoostingClassifier's log-odds."""

    def __init__(self, model: GradientBoostingClassifier) -> None:
        if not is_supported(model):
            raise ValueError("only binary sklearn GradientBoostingClassifier models are supported")
        self.n_features = int(model.n_features_in_)
        scale = float(model.learning_rate)
        node_feature: list[int] = []
        node_threshold: list[float] = []
        node_default_left: list[bool] = []
        step_node: list[int] = []
        step_left: list[bool] = []
        step_slot: list[int] = []
        tree_node_start = [0]
        tree_leaf_start = [0]
        leaf_step_start = [0]
        leaf_k: list[int] = []
        leaf_value: list[float] = []
        leaf_slot_start: list[int] = []
        slot_feature: list[int] = []
        slot_zero: list[float] = []
        leaf_table_start: list[int] = []
        n_entries = 0
        for estimator in model.estimators_[:, 0]:
            tree = estimator.tree_
            offset = len(node_feature)
            left = tree.children_left.tolist()
            right = tree.children_right.tolist()
            features = tree.feature.tolist()
            cover = tree.weighted_n_node_samples.tolist()
            values = tree.value.reshape(tree.node_count).tolist()
            if hasattr(tree, "missing_go_to_left"):
                default_left = [bool(flag) for flag in tree.missing_go_to_left]
            else:
                default_left = [True] * tree.node_count
            node_feature.extend(f if left[i] >= 0 else -1 for i, f in enumerate(features))
            node_threshold.extend(tree.threshold.tolist())
            node_default_left.extend(default_left)
            # Depth-first walk; each entry carries the path so far as (node, went_left) steps.
            stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
            while stack:
                node, path = stack.pop()
                if left[node] >= 0:
                    stack.append((right[node], [*path, (node, False)]))
                    stack.append((left[node], [*path, (node, True)]))
                    continue
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
                    step_node.append(offset + parent)
                    step_left.append(went_left)
                    step_slot.append(slot)
                k = len(slots)
                leaf_step_start.append(len(step_node))
                leaf_k.append(k)
                leaf_value.append(values[node] * scale)
                leaf_slot_start.append(len(slot_feature))
                slot_feature.extend(slots)
                slot_zero.extend(zeros)
                leaf_table_start.append(n_entries)
                n_entries += (1 << k) * k
            tree_node_start.append(len(node_feature))
            tree_leaf_start.append(len(leaf_k))
        self.tree_node_start = np.asarray(tree_node_start, dtype=np.int64)
        self.tree_leaf_start = np.asarray(tree_leaf_start, dtype=np.int64)
        self.node_feature = np.asarray(node_feature, dtype=np.int64)
        self.node_threshold = np.asarray(node_threshold, dtype=np.float64)
        self.node_default_left = np.asarray(node_default_left, dtype=np.bool_)
        self.step_node = np.asarray(step_node, dtype=np.int64)
        self.step_left = np.asarray(step_left, dtype=np.bool_)
        self.step_slot = np.asarray(step_slot, dtype=np.int64)
        self.leaf_step_start = np.asarray(leaf_step_start, dtype=np.int64)
        self.leaf_k = np.asarray(leaf_k, dtype=np.int64)
        self.leaf_slot_start = np.asarray(leaf_slot_start, dtype=np.int64)
        self.slot_feature = np.asarray(slot_feature, dtype=np.int64)
        self.leaf_table_start = np.asarray(leaf_table_start, dtype=np.int64)
        self.leaf_value = np.asarray(leaf_value, dtype=np.float64)
        self.table = _build_tables(
            self.leaf_value,
            self.leaf_k,
            self.leaf_slot_start,
            np.asarray(slot_zero, dtype=np.float64),
            self.leaf_table_start,
            n_entries,
        )
        # The workqueue threading layer (used where no OpenMP/TBB runtime exists) must not be
        # entered from two threads at once; one parallel kernel already uses every core anyway.
        self._parallel_lock = threading.Lock()
        # Built once: the kernels' argument, typed by numba's dispatcher on every call.
        self._model = self._arrays()
        self.init_raw = constant_init_raw(model)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.tree_node_start,
            self.tree_leaf_start,
            self.node_feature,
            self.node_threshold,
            self.node_default_left,
            self.step_node,
            self.step_left,
            self.step_slot,
            self.leaf_step_start,
            self.leaf_k,
            self.leaf_slot_start,
            self.slot_feature,
            self.leaf_table_start,
            self.table,
            self.leaf_value,
        )

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw log-odds of shape (n_rows,), SHAP values of shape (n_rows, n_features)).

        The log-odds equal sklearn's ``decision_function``: the same leaves, added in the same
        order to the same initial value.
        """
        matrix = np.asarray(X)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix with {self.n_features} columns")
        # The trees split float32 inputs; round exactly as sklearn and shap both do.
        matrix = np.ascontiguousarray(matrix.astype(np.float32).astype(np.float64))
        if matrix.shape[0] < PARALLEL_MIN_ROWS:
            return _shap_serial(matrix, self._model, self.init_raw)
        with self._parallel_lock:
            return _shap_parallel(matrix, self._model, self.init_raw, numba.get_num_threads())

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """SHAP values of shape (n_rows, n_features), equal to shap.TreeExplainer's."""
        return self.explain(X)[1]

    def warm(self) -> None:
        """Compile (or load from the cache) both kernels now instead of on a request."""
        row = np.zeros((1, self.n_features), dtype=np.float64)
        _shap_serial(row, self._model, self.init_raw)
        with self._parallel_lock:
            _shap_parallel(row, self._model, self.init_raw, numba.get_num_threads())
