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
tabulated once; a lead then costs one decision per split node and one table look-up per block.
Trees are at most `MAX_PATH_FEATURES` distinct features deep (leadml's LightGBM has depth 5);
for deeper trees `TreeShap.for_booster` returns None and LightGBM's own path is used.

The kernel walks each tree once (splits in walk order, a parent before its children): a split's
decision is made once, and the bits a lead fails on the way down are carried from a split to
the splits below it (a feature's slot is its first split on the path, the same for every leaf
below), so no leaf's path is checked again step by step. A block is what one split hands to the
leaves right below it: a leaf, or both children when both are leaves. Such a pair is tabulated
as one table (the two leaves' rows summed) indexed by the pattern above the split plus one bit,
"went left", so a lead reads one row for the two (X Education's model: 4,361 leaves in 2,688
blocks). One lead takes the splits, the bits and the blocks in separate loops without branches
on its values; many leads go split by split for all of them at once.

The decisions replay LightGBM's (numerical: missing-value handling per node, `<=` threshold;
categorical: category sets, negative and missing codes to the right), so the contributions agree
with `pred_contrib` to rounding (checked at load by `leadml.explain.Explainer`, tested to 1e-9).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float64]

#: Deepest path (in distinct features) tabulated: a leaf's table has 2^d rows of d numbers.
MAX_PATH_FEATURES = 8
#: LightGBM's missing-value types, as the dump names them.
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
#: The kind of a categorical split (beside the three missing-value types of a numerical one).
_CATEGORICAL = 3
#: A category code past every split's categories (and within int64 from a float).
_PAST_EVERY_CATEGORY = 1 << 30
#: LightGBM treats |x| <= this as zero for "Zero" missing handling (kZeroThreshold).
_ZERO = 1e-35
#: Leads per compiled call: bounds the kernel's field-major sums (fields x leads).
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
        array(i4, 1),  # feature: the splits in walk order, a parent before its children
        array(f8, 1),  # threshold
        array(i1, 1),  # kind
        array(b1, 1),  # default_left
        array(i4, 1),  # categorical_splits
        array(i4, 1),  # cat_start
        array(i4, 1),  # cat_length
        array(b1, 1),  # cat_bits
        array(i4, 1),  # parent
        array(b1, 1),  # side
        array(i4, 1),  # bit
        array(i1, 1),  # depth
        array(i4, 1),  # block_of: the blocks, in the walk order of their splits
        array(i4, 1),  # block_parent
        array(b1, 1),  # block_side
        array(i4, 1),  # block_bit
        array(i4, 1),  # block_rows
        array(i4, 1),  # block_width
        array(i4, 2),  # block_feature
        array(i8, 1),  # block_start
        array(f8, 1),  # table
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
    kind: np.ndarray,
    default_left: np.ndarray,
    categorical_splits: np.ndarray,
    cat_start: np.ndarray,
    cat_length: np.ndarray,
    cat_bits: np.ndarray,
    parent: np.ndarray,
    side: np.ndarray,
    bit: np.ndarray,
    depth: np.ndarray,
    block_of: np.ndarray,
    block_parent: np.ndarray,
    block_side: np.ndarray,
    block_bit: np.ndarray,
    block_rows: np.ndarray,
    block_width: np.ndarray,
    block_feature: np.ndarray,
    block_start: np.ndarray,
    table: np.ndarray,
    expected: float,
    out: np.ndarray,
) -> None:
    n_rows, n_columns = X.shape
    n_splits = feature.shape[0]
    n_blocks = block_parent.shape[0]
    if n_rows == 1:
        # One lead, one pass per kind of work, each without branches on the lead's values
        # (mispredicted, they cost more than the work): the decisions, the failed bits carried
        # down the walk, each block's table row, then the rows read and added up.
        lead = X[0]
        # Per column: the value with a missing one as 0, and whether LightGBM treats it as
        # missing for each kind of split ("None" never, "Zero", "NaN"; a categorical split
        # decides below).
        number = np.empty(n_columns)
        missing = np.zeros((n_columns, 4), dtype=np.bool_)
        # And its category code as LightGBM reads it (cast to int; a missing, negative or huge
        # one goes right): past every split's categories, where each split's bits end in a
        # False.
        code = np.empty(n_columns, dtype=np.int64)
        for column in range(n_columns):
            value = lead[column]
            code[column] = (
                int(value) if -1.0 < value < _PAST_EVERY_CATEGORY else _PAST_EVERY_CATEGORY
            )
            absent = np.isnan(value)
            value = 0.0 if absent else value
            number[column] = value
            missing[column, 1] = -_ZERO <= value <= _ZERO
            missing[column, 2] = absent
        # One more entry for the roots' parent: a root has nothing failed above it.
        went_left = np.zeros(n_splits + 1, dtype=np.bool_)
        for node in range(n_splits):
            column = feature[node]
            absent = missing[column, kind[node]]
            went_left[node] = (absent & default_left[node]) | (
                ~absent & (number[column] <= threshold[node])
            )
        for node in categorical_splits:
            at_most = min(code[feature[node]], cat_length[node])
            went_left[node] = cat_bits[cat_start[node] + at_most]
        failed = np.zeros(n_splits + 1, dtype=np.int32)
        for node in range(n_splits):  # a parent comes before its children
            up = parent[node]
            failed[node] = failed[up] | (bit[node] * (went_left[up] != side[node]))
        at = np.empty(n_blocks, dtype=np.int64)
        for block in range(n_blocks):
            up = block_parent[block]
            mask = failed[up] | (block_bit[block] * (went_left[up] != block_side[block]))
            at[block] = block_start[block] + (block_rows[block] & ~mask) * block_width[block]
        for block in range(n_blocks):
            row = at[block]
            for slot in range(block_width[block]):
                out[0, block_feature[block, slot]] += table[row + slot]
        out[0, out.shape[1] - 1] = expected
        return
    # Many leads: the same walk, split by split for all leads at once, keeping the decision and
    # the failed bits of each level of the current path; the sums field-major, so that a block
    # adds each of its columns to one contiguous row. Blocks are added in the same order as for
    # one lead: a lead gets the same numbers alone or in a batch.
    columns = np.ascontiguousarray(X.T)
    levels = depth.max() + 1 if n_splits else 1
    failed_at = np.zeros((levels, n_rows), dtype=np.int32)
    left_at = np.zeros((levels, n_rows), dtype=np.bool_)
    index = np.empty(n_rows, dtype=np.int64)
    sums = np.zeros((out.shape[1], n_rows))
    for node in range(n_splits):
        level = depth[node]
        masks = failed_at[level]
        lefts = left_at[level]
        if level > 0:
            step, wanted = bit[node], side[node]
            above, above_left = failed_at[level - 1], left_at[level - 1]
            for row in range(n_rows):
                masks[row] = above[row] | (step * (above_left[row] != wanted))
        else:
            masks[:] = 0
        values = columns[feature[node]]
        how = kind[node]
        if how == _CATEGORICAL:
            start, length = cat_start[node], cat_length[node]
            for row in range(n_rows):
                category = -1 if np.isnan(values[row]) else int(values[row])
                lefts[row] = 0 <= category < length and cat_bits[start + category]
        else:
            cut, fallback = threshold[node], default_left[node]
            for row in range(n_rows):
                value = values[row]
                absent = np.isnan(value)
                value = 0.0 if absent else value
                if (how == 1 and -_ZERO <= value <= _ZERO) or (how == 2 and absent):
                    lefts[row] = fallback
                else:
                    lefts[row] = value <= cut
        block = block_of[node]
        if block < 0:
            continue
        width, start = block_width[block], block_start[block]
        everything, step, wanted = block_rows[block], block_bit[block], block_side[block]
        for row in range(n_rows):
            mask = masks[row] | (step * (lefts[row] != wanted))
            index[row] = start + (everything & ~mask) * width
        for slot in range(width):
            target = sums[block_feature[block, slot]]
            for row in range(n_rows):
                target[row] += table[index[row] + slot]
    out[:, :] = sums.T
    out[:, out.shape[1] - 1] = expected


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
        splits = _Splits()
        leaves: list[_Leaf] = []
        expected = 0.0
        for tree in dump["tree_info"]:
            root = tree["tree_structure"]
            if "split_index" not in root:  # a single leaf: all of it is expected value
                expected += float(root["leaf_value"])
                continue
            total = float(root["internal_count"])
            # (node, its parent split or -1, went left from it, the features on the path in
            # slot order with their cover fractions)
            stack: list[tuple[dict[str, Any], int, bool, dict[int, float]]] = [
                (root, -1, False, {})
            ]
            while stack:
                node, parent, went_left, path = stack.pop()
                slot_bit = 0
                if parent >= 0:
                    above = splits.nodes[parent]
                    feature = int(above["split_feature"])
                    child = above["left_child"] if went_left else above["right_child"]
                    path = dict(path)
                    path[feature] = (
                        path.get(feature, 1.0) * _count(child) / float(above["internal_count"])
                    )
                    slot_bit = 1 << list(path).index(feature)
                if "split_index" not in node:
                    value = float(node["leaf_value"])
                    expected += value * _count(node) / total
                    leaves.append(_Leaf(parent, went_left, slot_bit, value, path))
                    continue
                index = splits.add(node, parent, went_left, slot_bit, len(path))
                stack.append((node["right_child"], index, False, path))
                stack.append((node["left_child"], index, True, path))
        width = max((len(leaf.path) for leaf in leaves), default=1)
        if width > MAX_PATH_FEATURES:
            raise ValueError(f"paths of {width} distinct features are too deep to tabulate")
        self._splits = splits.arrays()
        self._blocks = _blocks(leaves, splits, width)
        self._kernel = _direct_call(compile_kernels()[0])
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
        self._kernel(X, *self._splits, *self._blocks, self.expected_value, out)


def _direct_call(kernel: Any) -> Any:
    """The kernel's one compiled overload as a plain callable, without numba's dispatcher: with
    24 arguments its type matching costs about a tenth of one lead's reasons. `TreeShap` always
    passes the declared types (float64 C arrays it made itself, which is what the dispatcher
    would check). The dispatcher itself when numba does not expose exactly one overload."""
    overloads = list(getattr(kernel, "overloads", {}).values())
    entry = getattr(overloads[0], "entry_point", None) if len(overloads) == 1 else None
    return entry if callable(entry) else kernel


def _count(node: dict[str, Any]) -> float:
    return float(node["internal_count"] if "split_index" in node else node["leaf_count"])


@dataclass
class _Leaf:
    parent: int  # the split above it
    went_left: bool  # from that split
    slot_bit: int  # the slot of that split's feature on the leaf's path, as a bit
    value: float
    path: dict[int, float]  # the distinct features on its path, in slot order: cover fraction


class _Splits:
    """The split nodes of all trees in walk order (a node before the nodes below it)."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.parent: list[int] = []
        self.side: list[bool] = []
        self.bit: list[int] = []
        self.depth: list[int] = []
        self.slots: list[int] = []  # distinct features on the path to the split (above it)
        self.cat_start: list[int] = []
        self.cat_length: list[int] = []
        self.cat_bits: list[bool] = []

    def add(self, node: dict[str, Any], parent: int, side: bool, bit: int, slots: int) -> int:
        self.nodes.append(node)
        self.parent.append(parent)
        self.side.append(side)
        self.bit.append(bit)
        self.depth.append(0 if parent < 0 else self.depth[parent] + 1)
        self.slots.append(slots)
        if node["decision_type"] == "==":
            codes = [int(c) for c in str(node["threshold"]).split("||")]
            bits = np.zeros(max(codes) + 1, dtype=bool)
            bits[codes] = True
            self.cat_start.append(len(self.cat_bits))
            self.cat_length.append(len(bits))
            self.cat_bits.extend([*bits.tolist(), False])  # the False: every code past them
        else:
            self.cat_start.append(0)
            self.cat_length.append(0)
        return len(self.nodes) - 1

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The kernel's split arguments, feature to depth; a root's parent is the entry past the
        last split (the kernel keeps one there for "nothing failed above")."""
        n = len(self.nodes)
        categorical = [node["decision_type"] == "==" for node in self.nodes]
        return (
            np.asarray([int(node["split_feature"]) for node in self.nodes], dtype=np.int32),
            np.asarray(
                [
                    0.0 if c else float(node["threshold"])
                    for node, c in zip(self.nodes, categorical, strict=True)
                ],
                dtype=np.float64,
            ),
            np.asarray(
                [
                    _CATEGORICAL if c else _MISSING[str(node["missing_type"])]
                    for node, c in zip(self.nodes, categorical, strict=True)
                ],
                dtype=np.int8,
            ),
            np.asarray([bool(node["default_left"]) for node in self.nodes], dtype=np.bool_),
            np.flatnonzero(categorical).astype(np.int32),
            np.asarray(self.cat_start, dtype=np.int32),
            np.asarray(self.cat_length, dtype=np.int32),
            np.asarray(self.cat_bits or [False], dtype=np.bool_),
            np.asarray([n if p < 0 else p for p in self.parent], dtype=np.int32),
            np.asarray(self.side, dtype=np.bool_),
            np.asarray(self.bit, dtype=np.int32),
            np.asarray(self.depth, dtype=np.int8),
        )


def _blocks(leaves: list[_Leaf], splits: _Splits, width: int) -> tuple[np.ndarray, ...]:
    """The kernel's block arguments, block_of to the table.

    A block is what one split hands to the leaves right below it: one leaf, or its two children
    when both are leaves. A pair is tabulated as one table (the two leaves' rows summed for each
    pattern), indexed by the pattern above the split plus one more bit, "went left", so that a
    lead reads one row for the two leaves."""
    widths = np.asarray([len(leaf.path) for leaf in leaves], dtype=np.int64)
    sizes = (1 << widths) * widths
    leaf_start = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    leaf_table = np.zeros(int(sizes.sum()))
    zero = np.ones((len(leaves), width))
    for index, leaf in enumerate(leaves):
        zero[index, : len(leaf.path)] = list(leaf.path.values())
    compile_kernels()[1](
        np.asarray([leaf.value for leaf in leaves], dtype=np.float64),
        zero,
        widths,
        leaf_table,
        leaf_start,
    )

    def rows(leaf: int) -> np.ndarray:
        w = int(widths[leaf])
        return leaf_table[leaf_start[leaf] : leaf_start[leaf] + sizes[leaf]].reshape(-1, w)

    below: dict[int, list[int]] = {}
    for index, leaf in enumerate(leaves):
        below.setdefault(leaf.parent, []).append(index)
    block_of = np.full(len(splits.nodes), -1, dtype=np.int32)
    parents: list[int] = []
    sides: list[bool] = []
    bits: list[int] = []
    features: list[list[int]] = []
    tables: list[np.ndarray] = []
    for split in sorted(below):
        children = below[split]
        block_of[split] = len(tables)
        parents.append(split)
        first = leaves[children[0]]
        features.append(list(first.path))
        if len(children) == 1:
            sides.append(first.went_left)
            bits.append(first.slot_bit)
            tables.append(rows(children[0]))
            continue
        left, right = sorted(children, key=lambda leaf: not leaves[leaf].went_left)
        above = splits.slots[split]  # the pair's own bit comes after the slots above it
        pattern = np.arange(1 << (above + 1))
        upper = pattern & ((1 << above) - 1)
        went_left = (pattern >> above) & 1
        own = leaves[left].slot_bit
        if own == 1 << above:  # the split's feature is new on the path: its slot is that bit
            left_pattern = upper | (went_left << above)
            right_pattern = upper | ((1 - went_left) << above)
        else:  # a feature already on the path: the leaf follows it only if it went its way
            left_pattern = np.where(went_left == 1, upper, upper & ~own)
            right_pattern = np.where(went_left == 1, upper & ~own, upper)
        sides.append(True)
        bits.append(1 << above)
        tables.append(rows(left)[left_pattern] + rows(right)[right_pattern])
    block_width = np.asarray([len(f) for f in features], dtype=np.int32)
    block_feature = np.zeros((len(tables), width), dtype=np.int32)
    for block, owners in enumerate(features):
        block_feature[block, : len(owners)] = owners
    block_sizes = np.asarray([t.size for t in tables], dtype=np.int64)
    return (
        block_of,
        np.asarray(parents, dtype=np.int32),
        np.asarray(sides, dtype=np.bool_),
        np.asarray(bits, dtype=np.int32),
        np.asarray([len(t) - 1 for t in tables], dtype=np.int32),
        block_width,
        block_feature,
        np.r_[0, np.cumsum(block_sizes)[:-1]].astype(np.int64),
        np.concatenate([t.ravel() for t in tables]) if tables else np.zeros(1),
    )
