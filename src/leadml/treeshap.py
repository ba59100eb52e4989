"""Exact TreeSHAP for a LightGBM binary model, compiled, at the speed of scoring.

LightGBM's own `predict(pred_contrib=True)` walks every tree once per lead with the recursive
TreeSHAP algorithm (Lundberg et al., 2020): O(trees x leaves x depth^2) work a lead, plus the
cost of one call into the library. The reasons sales read come from it on every score, so that
cost is paid on every request.

Here the same numbers are computed with the work moved to load time ("Fast TreeSHAP v2", Yang,
2021). Path-dependent TreeSHAP is a sum over leaves. For one leaf, let F be the distinct features
on its path, z_j the share of training leads that follow the path at the splits on feature j
(its cover fraction) and o_j = 1 if the lead follows the path at every split on j. The leaf adds
to feature i in F

    v * (o_i - z_i) * sum over S subset of {j in F, j != i, o_j = 1} of
        |S|! (|F| - |S| - 1)! / |F|! * prod over j in F \\ S \\ {i} of z_j,

which depends on the lead only through the pattern o (|F| bits). Every (leaf, pattern) is
tabulated once; a lead then costs one decision per split node and one table look-up per leaf.
Trees are at most `MAX_PATH_FEATURES` distinct features deep (leadml's LightGBM has depth 5);
for deeper trees `TreeShap.for_booster` returns None and LightGBM's own path is used.

The decisions replay LightGBM's (numerical: missing-value handling per node, `<=` threshold;
categorical: category sets, negative and missing codes to the right), so the contributions agree
with `pred_contrib` to rounding (checked at load by `leadml.explain.Explainer`, tested to 1e-9).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float64]

#: Deepest path (in distinct features) tabulated: a leaf's table has 2^d rows of d numbers.
MAX_PATH_FEATURES = 8
#: LightGBM's missing-value types, as the dump names them.
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
#: LightGBM treats |x| <= this as zero for "Zero" missing handling (kZeroThreshold).
_ZERO = 1e-35
#: Leads per compiled call: bounds the split-decision matrix (splits x leads booleans).
CHUNK_ROWS = 2048


@functools.cache
def compile_kernels() -> tuple[Any, Any]:
    """The compiled kernels (contributions, tabulate), built once per process.

    Call it where a pause is harmless (the API calls it at start, before it accepts requests;
    `leadml score` on its first explainer): it imports numba (LLVM, about a second) and compiles
    both kernels for the one set of argument types `TreeShap` passes (a few seconds of CPU, or a
    fraction of a second when numba's cache next to this module, or in the user's cache folder
    when the package folder is read-only, already holds them). With the types given up front
    numba compiles here and never again: a later call with other types is refused instead of
    compiled, so a model loaded while requests are served (an API reload) never pays for a
    compilation. Inputs are typed read-only, which also accepts writable arrays."""
    # numba loads LLVM: deferred to the first explainer, so scoring without reasons never pays.
    from numba import njit, types

    def array(dtype: Any, ndim: int, readonly: bool = True) -> Any:
        return types.Array(dtype, ndim, "C", readonly=readonly)

    f8, i4, i8, b1, i1 = types.float64, types.int32, types.int64, types.boolean, types.int8
    contributions_signature = types.void(
        array(f8, 2),  # leads
        array(i4, 1),  # feature
        array(f8, 1),  # threshold
        array(b1, 1),  # categorical
        array(b1, 1),  # default_left
        array(i1, 1),  # missing
        array(i8, 1),  # cat_start
        array(i8, 1),  # cat_length
        array(b1, 1),  # cat_bits
        array(i4, 2),  # path_node
        array(b1, 2),  # path_left
        array(i1, 2),  # path_slot
        array(i1, 1),  # path_length
        array(i8, 1),  # leaf_width
        array(i4, 2),  # slot_feature
        array(f8, 1),  # table
        array(i8, 1),  # table_start
        f8,  # expected
        array(f8, 2, readonly=False),  # out
    )
    tabulate_signature = types.void(
        array(f8, 1), array(f8, 2), array(i8, 1), array(f8, 1, readonly=False), array(i8, 1)
    )
    # The contributions keep the GIL (no nogil): one lead's kernel is tens of microseconds, and
    # releasing the GIL for it handed it to the API's ledger writer thread, which the request
    # then waited for (up to a switch interval, 5 ms): measured, ledger-on single-lead
    # throughput with reasons rose from 64-72 % to 86 % of ledger-off with the GIL kept.
    contributions = njit([contributions_signature], cache=True)(_contributions)
    tabulate = njit([tabulate_signature], cache=True, nogil=True)(_tabulate)
    return contributions, tabulate


def _contributions(
    X: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    categorical: np.ndarray,
    default_left: np.ndarray,
    missing: np.ndarray,
    cat_start: np.ndarray,
    cat_length: np.ndarray,
    cat_bits: np.ndarray,
    path_node: np.ndarray,
    path_left: np.ndarray,
    path_slot: np.ndarray,
    path_length: np.ndarray,
    leaf_width: np.ndarray,
    slot_feature: np.ndarray,
    table: np.ndarray,
    table_start: np.ndarray,
    expected: float,
    out: np.ndarray,
) -> None:
    n_rows = X.shape[0]
    n_nodes = feature.shape[0]
    # Every split's decision for every lead first (node-major), then leaf by leaf, so that a
    # leaf's table is read once for all leads rather than once a lead.
    left = np.empty((n_nodes, n_rows), dtype=np.bool_)
    for node in range(n_nodes):
        column = feature[node]
        kind = missing[node]
        for row in range(n_rows):
            value = X[row, column]
            if categorical[node]:
                # LightGBM casts to int first: a missing code becomes negative (on x86) and,
                # like every negative code, goes right.
                code = -1 if np.isnan(value) else int(value)
                left[node, row] = 0 <= code < cat_length[node] and cat_bits[cat_start[node] + code]
                continue
            if np.isnan(value) and kind != 2:
                value = 0.0
            if (kind == 1 and -_ZERO <= value <= _ZERO) or (kind == 2 and np.isnan(value)):
                left[node, row] = default_left[node]
            else:
                left[node, row] = value <= threshold[node]
    for leaf in range(path_length.shape[0]):
        width = leaf_width[leaf]
        everything = (1 << width) - 1
        start = table_start[leaf]
        for row in range(n_rows):
            failed = 0
            for step in range(path_length[leaf]):
                if left[path_node[leaf, step], row] != path_left[leaf, step]:
                    failed |= 1 << path_slot[leaf, step]
            at = start + (everything & ~failed) * width
            for slot in range(width):
                out[row, slot_feature[leaf, slot]] += table[at + slot]
    for row in range(n_rows):
        out[row, out.shape[1] - 1] = expected


def _tabulate(
    values: np.ndarray,
    zero: np.ndarray,
    width: np.ndarray,
    table: np.ndarray,
    table_start: np.ndarray,
) -> None:
    """table[table_start[leaf] + pattern * width + i]: the leaf's contribution to its i-th path
    feature for a lead with that pattern (see the module docstring)."""
    max_width = zero.shape[1]
    factorial = np.ones(max_width + 1)
    for k in range(1, max_width + 1):
        factorial[k] = factorial[k - 1] * k
    for leaf in range(values.shape[0]):
        d = width[leaf]
        for pattern in range(1 << d):
            for i in range(d):
                one_i = (pattern >> i) & 1
                others = pattern & ~(1 << i)
                total = 0.0
                subset = others
                while True:  # every subset of the features the lead follows, i excluded
                    size = 0
                    product = 1.0
                    for j in range(d):
                        if j == i:
                            continue
                        if (subset >> j) & 1:
                            size += 1
                        else:
                            product *= zero[leaf, j]
                    total += factorial[size] * factorial[d - size - 1] / factorial[d] * product
                    if subset == 0:
                        break
                    subset = (subset - 1) & others
                table[table_start[leaf] + pattern * d + i] = (
                    values[leaf] * (one_i - zero[leaf, i]) * total
                )


class TreeShap:
    """Exact TreeSHAP contributions (leads x (features + 1), expected value last) of a booster."""

    def __init__(self, dump: dict[str, Any], n_features: int) -> None:
        self.n_features = n_features
        features: list[int] = []
        thresholds: list[float] = []
        categorical: list[bool] = []
        default_left: list[bool] = []
        missing: list[int] = []
        cat_start: list[int] = []
        cat_length: list[int] = []
        cat_bits: list[bool] = []
        leaf_values: list[float] = []
        leaf_paths: list[list[tuple[int, bool, int]]] = []
        leaf_zero: list[list[float]] = []
        leaf_features: list[list[int]] = []
        expected = 0.0
        for tree in dump["tree_info"]:
            root = tree["tree_structure"]
            if "split_index" not in root:  # a single leaf: all of it is expected value
                expected += float(root["leaf_value"])
                continue
            total = float(root["internal_count"])
            stack: list[tuple[dict[str, Any], list[tuple[int, bool, dict[str, Any]]]]] = [
                (root, [])
            ]
            while stack:
                node, path = stack.pop()
                if "split_index" not in node:
                    slots: dict[int, int] = {}
                    zero: list[float] = []
                    steps = []
                    for index, went_left, parent in path:
                        feature = int(parent["split_feature"])
                        child = parent["left_child"] if went_left else parent["right_child"]
                        fraction = _count(child) / float(parent["internal_count"])
                        if feature not in slots:
                            slots[feature] = len(slots)
                            zero.append(1.0)
                        zero[slots[feature]] *= fraction
                        steps.append((index, went_left, slots[feature]))
                    value = float(node["leaf_value"])
                    expected += value * _count(node) / total
                    leaf_values.append(value)
                    leaf_paths.append(steps)
                    leaf_zero.append(zero)
                    leaf_features.append(list(slots))
                    continue
                index = len(features)
                features.append(int(node["split_feature"]))
                is_categorical = node["decision_type"] == "=="
                categorical.append(is_categorical)
                default_left.append(bool(node["default_left"]))
                missing.append(_MISSING[str(node["missing_type"])])
                if is_categorical:
                    codes = [int(c) for c in str(node["threshold"]).split("||")]
                    bits = np.zeros(max(codes) + 1, dtype=bool)
                    bits[codes] = True
                    cat_start.append(len(cat_bits))
                    cat_length.append(len(bits))
                    cat_bits.extend(bits.tolist())
                    thresholds.append(0.0)
                else:
                    cat_start.append(0)
                    cat_length.append(0)
                    thresholds.append(float(node["threshold"]))
                stack.append((node["right_child"], [*path, (index, False, node)]))
                stack.append((node["left_child"], [*path, (index, True, node)]))
        width = max((len(z) for z in leaf_zero), default=1)
        depth = max((len(p) for p in leaf_paths), default=1)
        if width > MAX_PATH_FEATURES:
            raise ValueError(f"paths of {width} distinct features are too deep to tabulate")
        n_leaves = len(leaf_values)
        # Small integer types: one lead reads every leaf's path, so its size is the cost.
        self._feature = np.asarray(features, dtype=np.int32)
        self._threshold = np.asarray(thresholds, dtype=np.float64)
        self._categorical = np.asarray(categorical, dtype=np.bool_)
        self._default_left = np.asarray(default_left, dtype=np.bool_)
        self._missing = np.asarray(missing, dtype=np.int8)
        self._cat_start = np.asarray(cat_start, dtype=np.int64)
        self._cat_length = np.asarray(cat_length, dtype=np.int64)
        self._cat_bits = np.asarray(cat_bits or [False], dtype=np.bool_)
        self._path_node = np.zeros((n_leaves, depth), dtype=np.int32)
        self._path_left = np.zeros((n_leaves, depth), dtype=np.bool_)
        self._path_slot = np.zeros((n_leaves, depth), dtype=np.int8)
        self._path_length = np.zeros(n_leaves, dtype=np.int8)
        self._leaf_width = np.zeros(n_leaves, dtype=np.int64)
        self._slot_feature = np.zeros((n_leaves, width), dtype=np.int32)
        zero_fractions = np.ones((n_leaves, width))
        for leaf, (steps, zero, owners) in enumerate(
            zip(leaf_paths, leaf_zero, leaf_features, strict=True)
        ):
            self._path_length[leaf] = len(steps)
            for step, (index, went_left, slot) in enumerate(steps):
                self._path_node[leaf, step] = index
                self._path_left[leaf, step] = went_left
                self._path_slot[leaf, step] = slot
            self._leaf_width[leaf] = len(zero)
            zero_fractions[leaf, : len(zero)] = zero
            self._slot_feature[leaf, : len(owners)] = owners
        sizes = (1 << self._leaf_width) * self._leaf_width
        self._table_start = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
        self._table = np.zeros(int(sizes.sum()))
        kernel, tabulate = compile_kernels()
        self._kernel = _direct_call(kernel)
        tabulate(
            np.asarray(leaf_values, dtype=np.float64),
            zero_fractions,
            self._leaf_width,
            self._table,
            self._table_start,
        )
        self.expected_value = expected

    @classmethod
    def for_booster(cls, booster: Any) -> TreeShap | None:
        """The compiled explainer of a binary LightGBM booster, or None when its trees are too
        deep to tabulate (LightGBM's own TreeSHAP then serves)."""
        iteration = booster.best_iteration if booster.best_iteration > 0 else None
        try:
            return cls(booster.dump_model(num_iteration=iteration), booster.num_feature())
        except ValueError:
            return None

    def contributions(self, matrix: npt.ArrayLike) -> FloatMatrix:
        """Per-feature contributions in raw margin, with the expected value as the last column
        (the layout of LightGBM's `pred_contrib`)."""
        X = np.ascontiguousarray(np.atleast_2d(np.asarray(matrix, dtype=np.float64)))
        if X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {X.shape[1]}")
        out = np.zeros((X.shape[0], self.n_features + 1))
        if len(X) <= CHUNK_ROWS:  # the API's one lead: no slices to make
            self._chunk(X, out)
            return out
        for start in range(0, len(X), CHUNK_ROWS):
            self._chunk(X[start : start + CHUNK_ROWS], out[start : start + CHUNK_ROWS])
        return out

    def _chunk(self, X: np.ndarray, out: np.ndarray) -> None:
        self._kernel(
            X,
            self._feature,
            self._threshold,
            self._categorical,
            self._default_left,
            self._missing,
            self._cat_start,
            self._cat_length,
            self._cat_bits,
            self._path_node,
            self._path_left,
            self._path_slot,
            self._path_length,
            self._leaf_width,
            self._slot_feature,
            self._table,
            self._table_start,
            self.expected_value,
            out,
        )


def _direct_call(kernel: Any) -> Any:
    """The kernel's one compiled overload as a plain callable, without numba's dispatcher: with
    19 arguments its type matching costs about a tenth of one lead's reasons. `TreeShap` always
    passes the declared types (float64 C arrays it made itself, which is what the dispatcher
    would check). The dispatcher itself when numba does not expose exactly one overload."""
    overloads = list(getattr(kernel, "overloads", {}).values())
    entry = getattr(overloads[0], "entry_point", None) if len(overloads) == 1 else None
    return entry if callable(entry) else kernel


def _count(node: dict[str, Any]) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])
