"""Per-feature contributions of an XGBoost model to a score: the reasons behind a decision.

These are XGBoost's approximate contributions (`predict(pred_contribs=True,
approx_contribs=True)`, the Saabas method): along each tree's decision path, every split
credits its feature with the change in the node's mean value. XGBoost recomputes the node
means on every call, which costs ~0.6 ms for a single row; here they are computed once per
model and every tree is walked at once in numpy (tests check equality with XGBoost's own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xgboost as xgb


@dataclass(frozen=True)
class _Forest:
    """All trees as padded (trees x nodes) arrays."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray  # float32, as XGBoost compares
    default_left: np.ndarray
    leaf: np.ndarray
    mean: np.ndarray  # cover-weighted mean of the leaf values below each node
    depth: int


class Contributions:
    """Computes per-feature contributions (in margin units) for rows of a model's inputs."""

    # From this many rows on, XGBoost's own call (its per-call setup amortised) is faster
    # than the numpy walk (benchmarks/reasons.py); both give the same contributions.
    XGBOOST_FROM_ROWS = 64

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster
        model = json.loads(booster.save_raw("json"))
        trees = model["learner"]["gradient_booster"]["model"]["trees"]
        self.n_features = int(model["learner"]["learner_model_param"]["num_feature"])
        self.forest = _pack(trees)
        self.bias = float(self.forest.mean[:, 0].sum())

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        """Contributions per row and feature (rows x features); their sum plus the bias is the margin."""
        if matrix.shape[0] >= self.XGBOOST_FROM_ROWS:
            return self.booster.predict(xgb.DMatrix(matrix, missing=np.nan, feature_names=self.booster.feature_names),
                                        pred_contribs=True, approx_contribs=True)[:, :-1]
        return self.walk(matrix)

    def walk(self, matrix: np.ndarray) -> np.ndarray:
        """The numpy walk of every tree at once (fast for a few rows)."""
        forest, rows = self.forest, matrix.shape[0]
        values = matrix.astype(np.float32)
        n_trees = forest.left.shape[0]
        tree = np.broadcast_to(np.arange(n_trees), (rows, n_trees))
        row = np.broadcast_to(np.arange(rows)[:, None], (rows, n_trees))
        node = np.zeros((rows, n_trees), dtype=np.int64)
        totals = np.zeros(rows * self.n_features, dtype=np.float64)
        for _ in range(forest.depth):
            active = ~forest.leaf[tree, node]
            feature = forest.feature[tree, node]
            x = values[row, feature]
            missing = np.isnan(x)
            go_left = np.where(missing, forest.default_left[tree, node], x < forest.threshold[tree, node])
            child = np.where(go_left, forest.left[tree, node], forest.right[tree, node])
            child = np.where(active, child, node)
            delta = forest.mean[tree, child] - forest.mean[tree, node]
            totals += np.bincount((row * self.n_features + feature)[active], weights=delta[active],
                                  minlength=rows * self.n_features)
            node = child
        return totals.reshape(rows, self.n_features)


def _pack(trees: list[dict]) -> _Forest:
    size = max(len(t["left_children"]) for t in trees)
    n = len(trees)
    left, right = np.zeros((n, size), np.int64), np.zeros((n, size), np.int64)
    feature = np.zeros((n, size), np.int64)
    threshold = np.zeros((n, size), np.float32)
    default_left = np.zeros((n, size), bool)
    leaf = np.ones((n, size), bool)
    mean = np.zeros((n, size), np.float64)
    depth = 0
    for i, tree in enumerate(trees):
        k = len(tree["left_children"])
        left[i, :k], right[i, :k] = tree["left_children"], tree["right_children"]
        feature[i, :k] = tree["split_indices"]
        threshold[i, :k] = np.asarray(tree["split_conditions"], dtype=np.float32)
        default_left[i, :k] = np.asarray(tree["default_left"], dtype=bool)
        leaf[i, :k] = left[i, :k] == -1
        mean[i, :k], tree_depth = _node_means(left[i, :k], right[i, :k], np.asarray(tree["split_conditions"]),
                                              np.asarray(tree["sum_hessian"], dtype=np.float64))
        depth = max(depth, tree_depth)
    left[left < 0], right[right < 0] = 0, 0  # leaves never descend; keep indices valid
    return _Forest(left, right, feature, threshold, default_left, leaf, mean, depth)


def _node_means(left: np.ndarray, right: np.ndarray, leaf_values: np.ndarray,
                cover: np.ndarray) -> tuple[np.ndarray, int]:
    """XGBoost's FillNodeMeanValues: a leaf's value; a split's children averaged by cover."""
    mean = np.zeros(len(left))

    def fill(node: int) -> int:
        if left[node] == -1:
            mean[node] = leaf_values[node]
            return 0
        depth = 1 + max(fill(left[node]), fill(right[node]))
        mean[node] = (mean[left[node]] * cover[left[node]] + mean[right[node]] * cover[right[node]]) / cover[node]
        return depth

    return mean, fill(0)
